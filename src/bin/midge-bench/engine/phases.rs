//! The run's phases (setup, warm-up, measurement, drain), the periodic
//! housekeeping and progress line, and the final report.

use super::*;

impl Bench {
    pub(super) fn phase_start_rate(&self) -> Instant {
        // The rate schedule starts with the warm-up.
        self.setup_end.unwrap_or(self.phase_start)
    }

    pub(super) fn housekeeping(&mut self) {
        let now = Instant::now();
        self.now = now;
        if let Some(e) = &self.fatal {
            if self.phase != Phase::Done {
                eprintln!("midge-bench: {e}");
                self.secs[phase_index(self.phase)] =
                    now.duration_since(self.phase_start).as_secs_f64();
                self.phase = Phase::Done;
            }
            return;
        }
        let in_phase = now.saturating_duration_since(self.phase_start);
        let quiet = now.saturating_duration_since(self.last_progress);
        let quiet_limit = if self.s.qos == 0 {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        };
        let all_delivered = self.total_behind == 0 && self.total_pending == 0;
        match self.phase {
            Phase::Setup => {
                if self.ready == self.total_clients {
                    self.setup_end = Some(now);
                    self.rss_connected = self.broker_mem();
                    if self.s.warmup.is_zero() {
                        self.start_measure(now);
                    } else {
                        self.next_phase(Phase::Warmup, now);
                    }
                    for p in 0..self.pubs.len() as u32 {
                        self.enqueue(p);
                    }
                } else if in_phase > self.s.setup_timeout {
                    self.fatal = Some(format!(
                        "setup timed out: {} of {} clients connected and subscribed after {:?}",
                        self.ready, self.total_clients, self.s.setup_timeout
                    ));
                }
            }
            Phase::Warmup => {
                if in_phase >= self.s.warmup {
                    self.start_measure(now);
                    for p in 0..self.pubs.len() as u32 {
                        self.enqueue(p);
                    }
                }
            }
            Phase::Measure => {
                let capped_done = self.cap_reached && (all_delivered || quiet >= quiet_limit);
                if in_phase >= self.s.duration || capped_done {
                    self.measure_end = self.c;
                    let gen = sys::cpu_seconds("self").unwrap_or(0.0) - self.cpu_at_measure.0;
                    let broker = match (self.broker_cpu(), self.cpu_at_measure.1) {
                        (Some(b), Some(a)) => Some(b - a),
                        _ => None,
                    };
                    self.cpu_measure = (gen, broker);
                    self.next_phase(Phase::Drain, now);
                }
            }
            Phase::Drain => {
                if all_delivered || quiet >= quiet_limit {
                    self.next_phase(Phase::Done, now);
                } else if in_phase >= DRAIN_MAX {
                    // Still arriving: what has not arrived is late, not lost.
                    self.drain_timed_out = true;
                    self.next_phase(Phase::Done, now);
                }
            }
            Phase::Done => {}
        }
        if self.publishing() && self.s.backlog > 0 {
            let stall = if self.s.qos == 0 {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(2)
            };
            if quiet >= stall {
                self.write_off();
            }
        }
        if now >= self.next_ping_check {
            self.next_ping_check = now + Duration::from_secs(1);
            self.keep_alive(now);
        }
        if now >= self.next_tick {
            self.next_tick += Duration::from_secs(1);
            if self.s.progress {
                self.progress(now);
            }
        }
    }

    pub(super) fn next_phase(&mut self, to: Phase, now: Instant) {
        self.secs[phase_index(self.phase)] = now.duration_since(self.phase_start).as_secs_f64();
        self.phase = to;
        self.phase_start = now;
        // Silence is measured within a phase.
        self.last_progress = now;
    }

    pub(super) fn start_measure(&mut self, now: Instant) {
        self.measure_base = self.c;
        self.cpu_at_measure = (sys::cpu_seconds("self").unwrap_or(0.0), self.broker_cpu());
        self.next_phase(Phase::Measure, now);
    }

    /// Nothing arrived for a while although publishers wait for subscribers
    /// to catch up: the broker dropped messages (QoS 0 under overload, or a
    /// bug). Forget what they were owed so the run goes on; the losses stay
    /// counted by sequence numbers.
    pub(super) fn write_off(&mut self) {
        let mut any = false;
        for s in 0..self.subs.len() {
            if !self.subs[s].waiters.is_empty() {
                self.subs[s].credit = self.subs[s].behind;
                self.wake_waiters(s);
                any = true;
            }
        }
        if any {
            self.stalls += 1;
            self.last_progress = self.now;
            if self.stalls <= 3 && self.s.qos > 0 {
                eprintln!(
                    "midge-bench: no delivery for a while with subscribers behind: stall #{}",
                    self.stalls
                );
            }
        }
    }

    pub(super) fn keep_alive(&mut self, now: Instant) {
        if self.s.keep_alive == 0 {
            return;
        }
        let half = Duration::from_secs(self.s.keep_alive as u64 / 2);
        for (key, c) in self.clients.iter_mut() {
            if c.connected && now.saturating_duration_since(c.last_tx) >= half {
                c.wbuf.extend_from_slice(&[0xC0, 0x00]);
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(key);
                }
            }
        }
    }

    pub(super) fn progress(&mut self, now: Instant) {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let secs = now.duration_since(self.epoch).as_secs_f64();
        let phase = format!("{:?}", self.phase).to_lowercase();
        let c = self.c;
        let t = self.tick_base;
        self.tick_base = c;
        let behind: i64 = self.total_behind;
        eprintln!(
            "[{secs:6.1}s] {phase:<7} clients {}/{}  sent {}/s  acked {}/s  delivered {}/s  in flight {}  behind {}",
            self.ready,
            self.total_clients,
            d(c.sent, t.sent),
            d(c.acked, t.acked),
            d(c.delivered, t.delivered),
            self.total_pending,
            behind
        );
    }

    pub(super) fn finish(mut self) -> Outcome {
        let rss_end = self.broker_mem();
        // Say goodbye: DISCONNECT, then close at once, so that this side
        // closes first and keeps the TIME_WAIT (the kernel reuses those for
        // loopback connects). Left to the broker, a later run could meet its
        // TIME_WAIT for a reused port and lose a second to a SYN retry.
        for mut c in self.clients.drain() {
            if c.connected {
                c.wbuf.extend_from_slice(&[0xE0, 0x00]);
                let _ = c.sock.write(&c.wbuf);
            }
            let _ = self.poll.registry().deregister(&mut c.sock);
        }
        let qos = self.s.qos;
        let mut per_sub = Vec::with_capacity(self.subs.len());
        // Skipped-over messages are lost. Those after the last one received
        // are lost too, unless the drain stopped while messages were still
        // arriving: then they are only late.
        let tail_lost = !self.drain_timed_out;
        let (mut lost, mut late, mut dup, mut ooo, mut unexpected) = (0, 0, 0, 0, 0);
        for sub in &self.subs {
            let (mut sub_lost, mut sub_late) = (0, 0);
            for (id, t) in &sub.tracks {
                let tail = t.tail(self.streams[*id as usize].sent);
                sub_lost += t.in_gaps() + if tail_lost { tail } else { 0 };
                sub_late += if tail_lost { 0 } else { tail };
            }
            lost += sub_lost;
            late += sub_late;
            dup += sub.dup;
            ooo += sub.ooo;
            unexpected += sub.unexpected;
            let mut filters = sub
                .filters
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            if sub.filters.len() > 2 {
                filters.push_str(" ...");
            }
            per_sub.push(SubReport {
                filters,
                received: sub.publishes,
                lost: sub_lost,
                dup: sub.dup,
                ooo: sub.ooo,
            });
        }
        // Lost messages the broker never acknowledged are not its fault.
        let mut unacked_lost = 0;
        let mut unacked_end = 0;
        for publ in &self.pubs {
            for pd in publ.pending.values() {
                if pd.stage == 1 {
                    unacked_end += 1;
                    for &s in &self.streams[pd.stream as usize].subs {
                        if let Some(t) = self.subs[s as usize].tracks.get(&pd.stream) {
                            if t.in_gap(pd.seq) || (tail_lost && pd.seq >= t.next) {
                                unacked_lost += 1;
                            }
                        }
                    }
                }
            }
        }
        let lost_acked = if qos > 0 { lost - unacked_lost } else { 0 };
        let m = (
            self.measure_end.sent - self.measure_base.sent,
            self.measure_end.acked - self.measure_base.acked,
            self.measure_end.delivered - self.measure_base.delivered,
        );
        let wall_total = self.epoch.elapsed().as_secs_f64();
        Outcome {
            fatal: self.fatal.take(),
            clients: self.total_clients,
            setup_secs: self.secs[0],
            warmup_secs: self.secs[1],
            measure_secs: self.secs[2],
            drain_secs: self.secs[3],
            measured: m,
            totals: (self.c.sent, self.c.acked, self.c.delivered),
            latency: std::mem::replace(&mut self.hist, Histogram::new()),
            per_sub,
            lost,
            lost_acked,
            late,
            dup,
            ooo,
            unexpected,
            unacked_end,
            stalls: self.stalls,
            disconnects: self.disconnects,
            rss_before: self.rss_before,
            rss_connected: self.rss_connected,
            rss_end,
            gen_cpu_measure: self.cpu_measure.0,
            gen_cpu_total: sys::cpu_seconds("self").unwrap_or(0.0),
            wall_total,
            broker_cpu_measure: self.cpu_measure.1,
        }
    }
}

pub(super) fn phase_index(p: Phase) -> usize {
    match p {
        Phase::Setup => 0,
        Phase::Warmup => 1,
        Phase::Measure => 2,
        Phase::Drain | Phase::Done => 3,
    }
}
