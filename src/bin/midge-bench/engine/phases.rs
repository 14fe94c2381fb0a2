//! The run's phases (setup, warm-up, measurement, drain), kept in step
//! across threads by the shared start time; the periodic housekeeping,
//! the once-a-second timeline and progress line; and this thread's part
//! of the result.

use super::merge::{Part, SubPart, TickRaw};
use super::*;
use crate::sys;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;

impl Bench {
    pub(super) fn housekeeping(&mut self) {
        let now = Instant::now();
        self.now = now;
        if self.fatal.is_none() && self.shared.abort.load(Relaxed) {
            self.fatal = Some("stopped: another worker thread failed".into());
        }
        if self.fatal.is_some() {
            if self.phase != Phase::Done {
                self.secs[phase_index(self.phase)] =
                    now.duration_since(self.phase_start).as_secs_f64();
                self.phase = Phase::Done;
            }
            return;
        }
        if self.shared.threads > 1 {
            // Progress anywhere counts: acks and deliveries may all happen
            // on other threads.
            let all = self
                .shared
                .activity(self.worker, self.c.acked + self.c.delivered);
            if all != self.seen_activity {
                self.seen_activity = all;
                self.last_progress = now;
            }
        }
        let in_phase = now.saturating_duration_since(self.phase_start);
        let quiet = now.saturating_duration_since(self.last_progress);
        let quiet_limit = if self.max_qos() == 0 {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        };
        // Nothing more can come once every thread stopped publishing (one
        // thread that reached its --count has).
        let stopped = self.shared.all_stopped() || (self.shared.threads == 1 && self.cap_reached);
        let all_delivered = || self.total_pending == 0 && stopped && self.owed_to_mine() == 0;
        // Phase ends are fixed from the shared start, so threads agree.
        let start = self.setup_end.unwrap_or(now);
        match self.phase {
            Phase::Setup => self.setup_step(now, in_phase),
            Phase::Warmup => {
                if now >= start + self.s.warmup {
                    self.start_measure(now);
                }
            }
            Phase::Measure => {
                let capped_done = self.cap_reached && (quiet >= quiet_limit || all_delivered());
                if now >= start + self.s.warmup + self.s.duration || capped_done {
                    self.end_measure(now);
                }
            }
            Phase::Drain => {
                if quiet >= quiet_limit || all_delivered() {
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
            let stall = if self.max_qos() == 0 {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(2)
            };
            if quiet >= stall {
                self.write_off();
            }
        }
        if now >= self.next_check {
            self.next_check = now + Duration::from_secs(1);
            self.keep_alive(now);
            if self.phase == Phase::Setup {
                self.check_connect_timeouts(now);
            }
        }
        if now >= self.next_tick {
            self.next_tick += Duration::from_secs(1);
            self.tick(now, false);
        }
    }

    fn max_qos(&self) -> u8 {
        self.streams.iter().map(|s| s.qos).max().unwrap_or(0)
    }

    /// Messages owed to this thread's subscribers (every thread has
    /// flushed once publishing stopped, so this reaches 0 when all arrived).
    fn owed_to_mine(&self) -> i64 {
        (0..self.subs.len() as u32)
            .filter(|&s| self.subs[s as usize].owned)
            .map(|s| self.flow.behind(&self.shared, s))
            .sum()
    }

    fn setup_step(&mut self, now: Instant, in_phase: Duration) {
        if !self.ramp_go && self.publishing() {
            // A ramp-up: connected publishers start once every subscriber
            // is subscribed (what they send is then all accounted for).
            self.ramp_go = true;
            for p in 0..self.pubs.len() as u32 {
                if self.pubs[p as usize].owned {
                    self.enqueue(p);
                }
            }
        }
        if self.ready == self.total_clients && !self.setup_reported {
            self.setup_reported = true;
            self.shared.setup_finished(elapsed_ns(self.epoch, now));
        }
        if let Some(start) = self.shared.start_ns() {
            let start = self.epoch + Duration::from_nanos(start);
            self.setup_end = Some(start);
            if self.worker == 0 {
                self.rss_connected = self.broker_mem();
            }
            if self.s.warmup.is_zero() {
                self.start_measure(now);
            } else {
                self.next_phase(Phase::Warmup, now);
            }
            for p in 0..self.pubs.len() as u32 {
                if self.pubs[p as usize].owned {
                    self.enqueue(p);
                }
            }
        } else if in_phase > self.s.setup_timeout {
            let (ready, total) = (self.ready, self.total_clients);
            let why = if ready == total {
                format!(
                    "setup timed out after {:?} waiting for the other worker threads",
                    self.s.setup_timeout
                )
            } else {
                format!(
                    "setup timed out: {ready} of {total} clients connected and subscribed after {:?}",
                    self.s.setup_timeout
                )
            };
            self.fail(why);
        }
    }

    fn broker_cpu(&self) -> Option<f64> {
        let pid = self.s.broker_pid.filter(|_| self.worker == 0)?;
        sys::cpu_seconds(&pid.to_string())
    }

    fn broker_mem(&self) -> Option<(u64, u64)> {
        self.s
            .broker_pid
            .filter(|_| self.worker == 0)
            .and_then(sys::memory_kib)
    }

    fn next_phase(&mut self, to: Phase, now: Instant) {
        self.secs[phase_index(self.phase)] = now.duration_since(self.phase_start).as_secs_f64();
        self.phase = to;
        self.phase_start = now;
        // Silence is measured within a phase.
        self.last_progress = now;
    }

    fn start_measure(&mut self, now: Instant) {
        self.measure_base = self.c;
        self.window.0 = now.duration_since(self.epoch).as_secs_f64();
        self.cpu_at_measure = (sys::cpu_seconds("self").unwrap_or(0.0), self.broker_cpu());
        self.next_phase(Phase::Measure, now);
        for p in 0..self.pubs.len() as u32 {
            if self.pubs[p as usize].owned {
                self.enqueue(p);
            }
        }
    }

    fn end_measure(&mut self, now: Instant) {
        self.measure_end = self.c;
        self.window.1 = now.duration_since(self.epoch).as_secs_f64();
        let gen = sys::cpu_seconds("self").unwrap_or(0.0) - self.cpu_at_measure.0;
        let broker = match (self.broker_cpu(), self.cpu_at_measure.1) {
            (Some(b), Some(a)) => Some(b - a),
            _ => None,
        };
        self.cpu_measure = (gen, broker);
        self.flow.flush(&self.shared);
        self.shared.publishing_stopped();
        self.next_phase(Phase::Drain, now);
    }

    /// Nothing arrived for a while although publishers wait for subscribers
    /// to catch up: the broker dropped messages (QoS 0 under overload, or a
    /// bug). Forget what they were owed so the run goes on; the losses stay
    /// counted by sequence numbers.
    fn write_off(&mut self) {
        let mut any = false;
        for s in 0..self.subs.len() as u32 {
            if !self.subs[s as usize].waiters.is_empty() {
                self.shared.set_credit(s, self.flow.behind(&self.shared, s));
                self.wake_waiters(s);
                any = true;
            }
        }
        if any {
            self.stalls += 1;
            self.last_progress = self.now;
            if self.stalls <= 3 && self.max_qos() > 0 {
                eprintln!(
                    "midge-bench: no delivery for a while with subscribers behind: stall #{}",
                    self.stalls
                );
            }
        }
    }

    fn keep_alive(&mut self, now: Instant) {
        for (key, c) in self.clients.iter_mut() {
            if c.keep_alive == 0 || !c.connected {
                continue;
            }
            let half = Duration::from_secs(c.keep_alive as u64 / 2);
            if now.saturating_duration_since(c.last_tx) >= half {
                c.wbuf.extend_from_slice(&[0xC0, 0x00]);
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(key);
                }
            }
        }
    }

    /// Once a second: a point of the timeline, and the progress line.
    /// `partial`: the run's last, unfinished second (counted as the second
    /// it falls in, and not printed).
    fn tick(&mut self, now: Instant, partial: bool) {
        let c = self.c;
        let d = c.minus(self.tick_base);
        self.tick_base = c;
        let index = now.saturating_duration_since(self.epoch).as_secs() as u32 + u32::from(partial);
        self.timeline.push(TickRaw {
            index,
            counts: d,
            latency: self.tick_hist.sparse(),
        });
        self.tick_hist.clear();
        let mine = [
            c.sent,
            c.acked,
            c.delivered,
            self.ready as u64,
            self.total_pending as u64,
        ];
        self.shared.report(self.worker, mine);
        if self.s.progress && self.worker == 0 && !partial {
            // All threads' counters, each as of its own last tick (they
            // tick at the same whole seconds, so within a few ms).
            let [sent, acked, delivered, ready, in_flight] = self.shared.reported();
            let all = Counters {
                sent,
                acked,
                delivered,
            };
            let d = all.minus(self.progress_base);
            self.progress_base = all;
            let secs = now.duration_since(self.epoch).as_secs_f64();
            let phase = format!("{:?}", self.phase).to_lowercase();
            eprintln!(
                "[{secs:6.1}s] {phase:<7} clients {ready}/{}  sent {}/s  acked {}/s  delivered {}/s  in flight {in_flight}",
                self.shared.clients, d.sent, d.acked, d.delivered
            );
        }
    }

    pub(super) fn finish(mut self) -> Part {
        // Say goodbye: clear the retained messages this run left, send
        // DISCONNECT, then close at once, so that this side closes first and
        // keeps the TIME_WAIT (the kernel reuses those for loopback
        // connects). Left to the broker, a later run could meet its
        // TIME_WAIT for a reused port and lose a second to a SYN retry.
        if self.tick_base.sent != self.c.sent || self.tick_base.delivered != self.c.delivered {
            // The last, partial second of the timeline.
            self.tick(Instant::now(), true);
        }
        self.shared
            .finish_together(DRAIN_MAX + Duration::from_secs(5));
        let level = self.s.level;
        for (_, c) in self.clients.iter_mut() {
            if !c.connected || c.state != CState::Ready {
                continue;
            }
            if let Role::Pub(p) = c.role {
                for &sid in &self.pubs[p as usize].streams {
                    let st = &self.streams[sid as usize];
                    if st.retain {
                        let flags = midge::protocol::PublishFlags {
                            qos: midge::protocol::QoS::AtMostOnce,
                            pkid: 0,
                            dup: false,
                            retain: true,
                        };
                        let none = &midge::protocol::Properties::NONE;
                        midge::protocol::encode_publish(
                            &mut c.wbuf,
                            level,
                            &st.topic,
                            &[],
                            none,
                            flags,
                        );
                    }
                }
            }
            c.wbuf.extend_from_slice(&[0xE0, 0x00]);
            let _ = c.sock.write(&c.wbuf);
        }
        for mut c in self.clients.drain() {
            let _ = self.poll.registry().deregister(&mut c.sock);
        }
        let mut subs = Vec::new();
        for (i, sub) in self.subs.iter_mut().enumerate() {
            if sub.owned {
                subs.push(SubPart {
                    id: i as u32,
                    tracks: std::mem::take(&mut sub.tracks).into_iter().collect(),
                    received: sub.publishes,
                    dup: sub.dup,
                    ooo: sub.ooo,
                    unexpected: sub.unexpected,
                    retained: sub.retained,
                });
            }
        }
        let mut sent = Vec::new();
        let mut unacked = Vec::new();
        for publ in self.pubs.iter().filter(|p| p.owned) {
            sent.extend(
                publ.streams
                    .iter()
                    .map(|&s| (s, self.streams[s as usize].sent)),
            );
            let waiting = publ.pending.values().filter(|pd| pd.stage == 1);
            unacked.extend(waiting.map(|pd| (pd.stream, pd.seq)));
        }
        Part {
            fatal: self.fatal.take(),
            setup_done: self.setup_end.is_some(),
            secs: self.secs,
            measured: self.measure_end.minus(self.measure_base),
            totals: self.c,
            hist: std::mem::replace(&mut self.hist, Histogram::new()),
            group_hist: std::mem::take(&mut self.group_hist),
            timeline: std::mem::take(&mut self.timeline),
            subs,
            sent,
            unacked,
            stalls: self.stalls,
            disconnects: self.disconnects,
            drain_timed_out: self.drain_timed_out,
            window: self.window,
            rss_connected: self.rss_connected,
            rss_end: self.broker_mem(),
            cpu_measure: self.cpu_measure,
        }
    }
}

fn phase_index(p: Phase) -> usize {
    match p {
        Phase::Setup => 0,
        Phase::Warmup => 1,
        Phase::Measure => 2,
        Phase::Drain | Phase::Done => 3,
    }
}
