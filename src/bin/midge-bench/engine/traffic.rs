//! What the generator does with each packet: acknowledgements, deliveries
//! checked against what was sent, and publishers refilled as the flow
//! control in the module documentation allows.

use super::*;
use crate::stats::Seen;
use midge::protocol::{
    self, Ack, AckKind, Packet, PacketRef, Properties, PublishFlags, QoS, ReasonCode,
};

fn qos_of(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtMostOnce)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

impl Bench {
    pub(super) fn handle(
        &mut self,
        key: usize,
        packet: PacketRef<'_>,
        at: u64,
    ) -> Result<(), String> {
        let packet = match packet {
            PacketRef::Publish(p) => {
                return self.on_publish(key, p.qos, p.pkid, p.retain, p.payload, at)
            }
            PacketRef::Other(packet) => packet,
        };
        let role = self.clients[key].role;
        let level = self.s.level;
        match packet {
            Packet::ConnAck(ack) => self.on_connack(key, ack)?,
            Packet::SubAck(ack) => self.on_suback(key, ack)?,
            Packet::PubRel(Ack { pkid, .. }) => {
                let wbuf = &mut self.clients[key].wbuf;
                protocol::encode_ack(wbuf, level, AckKind::PubComp, pkid, ReasonCode::Success);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
            Packet::PubAck(ack) => self.on_ack(role, ack, 1, "PUBACK")?,
            Packet::PubComp(ack) => self.on_ack(role, ack, 2, "PUBCOMP")?,
            Packet::PubRec(Ack { pkid, reason, .. }) => {
                let Role::Pub(p) = role else {
                    return Err("a subscriber received PUBREC".into());
                };
                if reason.is_error() {
                    return Err(refused_publish("PUBREC", reason));
                }
                match self.pubs[p as usize].pending.get_mut(&pkid) {
                    Some(pd) if pd.stage == 1 && pd.qos == 2 => {
                        pd.stage = 2;
                        self.last_progress = self.now;
                    }
                    _ => return Err(format!("PUBREC for unknown packet id {pkid}")),
                }
                let wbuf = &mut self.clients[key].wbuf;
                protocol::encode_ack(wbuf, level, AckKind::PubRel, pkid, ReasonCode::Success);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
            Packet::Disconnect(d) => {
                return Err(format!(
                    "the broker sent DISCONNECT 0x{:02X} ({})",
                    d.reason as u8,
                    super::connect::reason_text(d.reason)
                ))
            }
            Packet::UnsubAck(_) | Packet::PingResp => {}
            other => return Err(format!("unexpected {} from the broker", other.name())),
        }
        Ok(())
    }

    /// PUBACK (`stage` 1, for QoS 1) or PUBCOMP (2, for QoS 2).
    fn on_ack(&mut self, role: Role, ack: Ack, stage: u8, name: &str) -> Result<(), String> {
        let Role::Pub(p) = role else {
            return Err(format!("a subscriber received {name}"));
        };
        if ack.reason.is_error() {
            return Err(refused_publish(name, ack.reason));
        }
        let publ = &mut self.pubs[p as usize];
        match publ.pending.get(&ack.pkid) {
            Some(pd) if pd.stage == stage && pd.qos == stage => {
                publ.pending.remove(&ack.pkid);
                self.total_pending -= 1;
                self.c.acked += 1;
                self.last_progress = self.now;
                self.enqueue(p);
                Ok(())
            }
            _ => Err(format!("{name} for unknown packet id {}", ack.pkid)),
        }
    }

    /// A message for a subscriber: acknowledged as its QoS asks, then
    /// checked and timed.
    fn on_publish(
        &mut self,
        key: usize,
        qos: QoS,
        pkid: u16,
        retain: bool,
        payload: &[u8],
        at: u64,
    ) -> Result<(), String> {
        let level = self.s.level;
        let c = &mut self.clients[key];
        let Role::Sub(s) = c.role else {
            return Err("a publisher received a PUBLISH".into());
        };
        let ok = ReasonCode::Success;
        match qos {
            QoS::AtLeastOnce => protocol::encode_ack(&mut c.wbuf, level, AckKind::PubAck, pkid, ok),
            QoS::ExactlyOnce => protocol::encode_ack(&mut c.wbuf, level, AckKind::PubRec, pkid, ok),
            QoS::AtMostOnce => {}
        }
        if qos != QoS::AtMostOnce {
            Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
        }
        if retain {
            // Sent because we subscribed, from an earlier message (live
            // deliveries carry RETAIN 0): not part of this run's streams.
            self.subs[s as usize].retained += 1;
            return Ok(());
        }
        self.on_delivery(s, payload, at);
        Ok(())
    }

    fn on_delivery(&mut self, s: u32, payload: &[u8], at: u64) {
        self.c.delivered += 1;
        self.last_progress = self.now;
        let sub = &mut self.subs[s as usize];
        sub.publishes += 1;
        if payload.len() < HEADER || le_u32(payload, 0) != self.shared.tag {
            sub.unexpected += 1;
            return;
        }
        let stream = le_u32(payload, 4);
        let seq = le_u64(payload, 8);
        let sent_at = le_u64(payload, 16);
        let Some(track) = sub.tracks.get_mut(&stream) else {
            sub.unexpected += 1;
            return;
        };
        match track.see(seq) {
            Seen::InOrder { skipped } => {
                self.flow.add(s, -(skipped as i64 + 1));
                if !sub.waiters.is_empty() && self.flow.owed(&self.shared, s) <= self.s.backlog / 2
                {
                    self.wake_waiters(s);
                }
            }
            Seen::OutOfOrder => sub.ooo += 1,
            Seen::Duplicate => sub.dup += 1,
        }
        let latency = at.saturating_sub(sent_at);
        if self.s.latency_timeline {
            self.tick_hist.record(latency);
        }
        if self.phase == Phase::Measure {
            let group = self.subs[s as usize].group as usize;
            if let Some(h) = self.group_hist.get_mut(group) {
                h.record(latency);
            }
            self.hist.record(latency);
        }
    }

    pub(super) fn wake_waiters(&mut self, s: u32) {
        let mut waiters = std::mem::take(&mut self.subs[s as usize].waiters);
        for &p in &waiters {
            if self.pubs[p as usize].blocked_on == Some(s) {
                self.pubs[p as usize].blocked_on = None;
                self.enqueue(p);
            }
        }
        waiters.clear();
        if self.subs[s as usize].waiters.is_empty() {
            self.subs[s as usize].waiters = waiters;
        }
    }

    /// Publishers waiting on a subscriber whose deliveries this thread does
    /// not see (another thread's) are woken by looking again.
    pub(super) fn recheck_blocked(&mut self) {
        if self.blocked_subs.is_empty() {
            return;
        }
        let half = self.s.backlog / 2;
        let mut blocked = std::mem::take(&mut self.blocked_subs);
        blocked.retain(|&s| {
            let keep =
                !self.subs[s as usize].waiters.is_empty() && self.flow.owed(&self.shared, s) > half;
            if !keep {
                self.wake_waiters(s);
                self.subs[s as usize].listed = false;
            }
            keep
        });
        self.blocked_subs = blocked;
    }

    pub(super) fn enqueue(&mut self, p: u32) {
        let publ = &mut self.pubs[p as usize];
        if !publ.queued && publ.blocked_on.is_none() && !publ.rate_wait {
            publ.queued = true;
            self.runnable.push_back(p);
        }
    }

    pub(super) fn pump(&mut self) {
        let now_ns = elapsed_ns(self.epoch, Instant::now());
        while let Some(&Reverse((due, p))) = self.timers.peek() {
            if due > now_ns {
                break;
            }
            self.timers.pop();
            self.pubs[p as usize].rate_wait = false;
            self.enqueue(p);
        }
        for _ in 0..self.runnable.len() {
            let Some(p) = self.runnable.pop_front() else {
                break;
            };
            self.pubs[p as usize].queued = false;
            if self.publishing() {
                self.fill(p as usize);
            }
        }
    }

    /// When message `k` of a rate-limited publisher is due, in ns since the
    /// epoch: its schedule starts with the warm-up.
    fn due(&self, p: &Publisher, k: u64) -> u64 {
        let start = p.schedule.unwrap_or(0);
        // (A float too large for u64 becomes u64::MAX: never due.)
        start.saturating_add(((k as f64 + p.offset) / p.rate * 1e9) as u64)
    }

    /// Writes as many messages as flow control allows into the publisher's
    /// output buffer.
    fn fill(&mut self, p: usize) {
        let now_ns = elapsed_ns(self.epoch, Instant::now());
        let cap = if self.cap > 0 && self.phase == Phase::Measure {
            self.measure_base.sent + self.cap
        } else {
            u64::MAX
        };
        let Some(key) = self.pubs[p].client else {
            return;
        };
        if self.clients[key].state != CState::Ready || self.pubs[p].blocked_on.is_some() {
            return;
        }
        if self.pubs[p].schedule.is_none() {
            // Everyone's schedule starts together, or during a ramp-up
            // each publisher's when it first may publish.
            self.pubs[p].schedule = Some(self.shared.start_ns().unwrap_or(now_ns));
        }
        let mut wrote = false;
        loop {
            if self.c.sent >= cap {
                self.cap_reached = true;
                break;
            }
            let publ = &self.pubs[p];
            if publ.streams.is_empty() {
                break;
            }
            let due = (publ.rate > 0.0).then(|| self.due(publ, publ.rate_sent));
            if let Some(due) = due.filter(|&d| d > now_ns) {
                // On schedule: wait for the next message's time.
                let publ = &mut self.pubs[p];
                publ.rate_wait = true;
                publ.late = false;
                self.timers.push(Reverse((due, p as u32)));
                break;
            }
            let sid = publ.streams[publ.next_stream];
            if publ.pending.len() >= publ.inflight
                || self.clients[key].wbuf.len() >= CHUNK
                || self.wait_for_subscribers(p, sid)
            {
                // Held back by the broker (acks, socket, deliveries) with a
                // message due: the messages sent when it lets go carry the
                // times they were due, so the wait counts as latency.
                self.pubs[p].late = due.is_some();
                break;
            }
            // Not held back, the message goes out now and is stamped now:
            // the generator's own timer slack is not the broker's latency.
            let ts = match due {
                Some(due) if self.pubs[p].late => due,
                _ => now_ns,
            };
            self.publish_one(p, key, sid, ts);
            wrote = true;
        }
        if wrote {
            Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
        }
    }

    /// Whether a subscriber of stream `sid` is `backlog` messages behind;
    /// if so the publisher waits for it.
    fn wait_for_subscribers(&mut self, p: usize, sid: u32) -> bool {
        if self.s.backlog <= 0 {
            return false;
        }
        let st = &self.streams[sid as usize];
        let full = st
            .subs
            .iter()
            .copied()
            .find(|&x| self.flow.owed(&self.shared, x) >= self.s.backlog);
        let Some(full) = full else {
            return false;
        };
        self.pubs[p].blocked_on = Some(full);
        let sub = &mut self.subs[full as usize];
        sub.waiters.push(p as u32);
        if !sub.listed {
            sub.listed = true;
            self.blocked_subs.push(full);
        }
        true
    }

    /// One message of stream `sid`, stamped `ts`, into the client's buffer.
    fn publish_one(&mut self, p: usize, key: usize, sid: u32, ts: u64) {
        let size = self.size_for(self.streams[sid as usize].size);
        let st = &mut self.streams[sid as usize];
        let publ = &mut self.pubs[p];
        let seq = st.sent;
        st.sent += 1;
        let payload = &mut self.payload[..size];
        payload[0..4].copy_from_slice(&self.shared.tag.to_le_bytes());
        payload[4..8].copy_from_slice(&sid.to_le_bytes());
        payload[8..16].copy_from_slice(&seq.to_le_bytes());
        payload[16..24].copy_from_slice(&ts.to_le_bytes());
        let qos = qos_of(st.qos);
        let mut pkid = 0;
        if qos != QoS::AtMostOnce {
            loop {
                publ.next_pkid = publ.next_pkid % u16::MAX + 1;
                if !publ.pending.contains_key(&publ.next_pkid) {
                    break;
                }
            }
            pkid = publ.next_pkid;
            let pending = Pending {
                stream: sid,
                seq,
                stage: 1,
                qos: st.qos,
            };
            publ.pending.insert(pkid, pending);
            self.total_pending += 1;
        }
        let flags = PublishFlags {
            qos,
            pkid,
            dup: false,
            retain: st.retain,
        };
        let wbuf = &mut self.clients[key].wbuf;
        protocol::encode_publish(
            wbuf,
            self.s.level,
            &st.topic,
            payload,
            &Properties::NONE,
            flags,
        );
        for &x in &st.subs {
            self.flow.add(x, 1);
        }
        self.c.sent += 1;
        publ.rate_sent += 1;
        publ.next_stream = (publ.next_stream + 1) % publ.streams.len();
    }
}

/// An MQTT 5 ack that refuses the message.
fn refused_publish(name: &str, reason: ReasonCode) -> String {
    format!(
        "the broker refused a message: {name} 0x{:02X} ({})",
        reason as u8,
        super::connect::reason_text(reason)
    )
}
