//! What the generator does with each packet: acknowledgements, deliveries
//! checked against what was sent, and publishers refilled as the flow
//! control in the module documentation allows.

use super::*;

impl Bench {
    pub(super) fn handle(
        &mut self,
        key: usize,
        packet: PacketRef<'_>,
        at: u64,
    ) -> Result<(), String> {
        let packet = match packet {
            PacketRef::Publish(p) => return self.on_publish(key, p.qos, p.pkid, p.payload, at),
            PacketRef::Other(packet) => packet,
        };
        let (role, state) = {
            let c = &self.clients[key];
            (c.role, c.state)
        };
        let is_comp = matches!(packet, Packet::PubComp(_));
        match packet {
            Packet::ConnAck(ack) => {
                if state != CState::WaitConnack {
                    return Err("unexpected CONNACK".into());
                }
                if ack.code != ReasonCode::Success {
                    return Err(format!(
                        "CONNACK refused the connection with code {}",
                        ack.code.v3_connack_code()
                    ));
                }
                match role {
                    Role::Pub(_) => {
                        self.clients[key].state = CState::Ready;
                        self.on_ready();
                    }
                    Role::Sub(s) => {
                        let qos = qos_of(self.s.qos);
                        let filters = &self.subs[s as usize].filters;
                        let c = &mut self.clients[key];
                        let mut packets = 0;
                        for (i, chunk) in filters.chunks(FILTERS_PER_SUBSCRIBE).enumerate() {
                            let options = SubscriptionOptions::qos(qos);
                            let subscribe = Packet::Subscribe(Subscribe {
                                pkid: i as u16 + 1,
                                filters: chunk.iter().map(|f| (f.clone(), options)).collect(),
                                properties: Properties::NONE,
                            });
                            protocol::encode(&subscribe, LEVEL, &mut c.wbuf)
                                .map_err(|e| format!("cannot encode SUBSCRIBE: {e}"))?;
                            packets += 1;
                        }
                        c.state = CState::WaitSuback(packets);
                        Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
                    }
                }
            }
            Packet::SubAck(ack) => {
                let CState::WaitSuback(left) = state else {
                    return Err("unexpected SUBACK".into());
                };
                if let Some(bad) = ack.codes.iter().find(|c| c.is_error()) {
                    return Err(format!("SUBACK refused a subscription ({bad:?})"));
                }
                if ack.codes.iter().any(|&c| (c as u8) < self.s.qos) {
                    return Err(format!(
                        "SUBACK granted {:?}, below the requested QoS {}",
                        ack.codes, self.s.qos
                    ));
                }
                if left <= 1 {
                    self.clients[key].state = CState::Ready;
                    self.on_ready();
                } else {
                    self.clients[key].state = CState::WaitSuback(left - 1);
                }
            }
            Packet::PubRel(Ack { pkid, .. }) => {
                let (wbuf, comp) = (&mut self.clients[key].wbuf, AckKind::PubComp);
                protocol::encode_ack(wbuf, LEVEL, comp, pkid, ReasonCode::Success);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
            Packet::PubAck(Ack { pkid, .. }) | Packet::PubComp(Ack { pkid, .. }) => {
                let Role::Pub(p) = role else {
                    return Err("a subscriber received an ack".into());
                };
                let want = if self.s.qos == 2 { 2 } else { 1 };
                let publ = &mut self.pubs[p as usize];
                match publ.pending.get(&pkid) {
                    Some(pd) if pd.stage == want && is_comp == (self.s.qos == 2) => {
                        publ.pending.remove(&pkid);
                        self.total_pending -= 1;
                        self.c.acked += 1;
                        self.last_progress = self.now;
                        self.enqueue(p);
                    }
                    _ => return Err(format!("ack for unknown packet id {pkid}")),
                }
            }
            Packet::PubRec(Ack { pkid, .. }) => {
                let Role::Pub(p) = role else {
                    return Err("a subscriber received PUBREC".into());
                };
                match self.pubs[p as usize].pending.get_mut(&pkid) {
                    Some(pd) if pd.stage == 1 && self.s.qos == 2 => {
                        pd.stage = 2;
                        self.last_progress = self.now;
                    }
                    _ => return Err(format!("PUBREC for unknown packet id {pkid}")),
                }
                let (wbuf, rel) = (&mut self.clients[key].wbuf, AckKind::PubRel);
                protocol::encode_ack(wbuf, LEVEL, rel, pkid, ReasonCode::Success);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
            Packet::UnsubAck(_) | Packet::PingResp => {}
            other => return Err(format!("unexpected {} from the broker", other.name())),
        }
        Ok(())
    }

    /// A message for a subscriber: acknowledged as its QoS asks, then
    /// checked and timed.
    pub(super) fn on_publish(
        &mut self,
        key: usize,
        qos: QoS,
        pkid: u16,
        payload: &[u8],
        at: u64,
    ) -> Result<(), String> {
        let c = &mut self.clients[key];
        let Role::Sub(s) = c.role else {
            return Err("a publisher received a PUBLISH".into());
        };
        let ok = ReasonCode::Success;
        match qos {
            QoS::AtLeastOnce => protocol::encode_ack(&mut c.wbuf, LEVEL, AckKind::PubAck, pkid, ok),
            QoS::ExactlyOnce => protocol::encode_ack(&mut c.wbuf, LEVEL, AckKind::PubRec, pkid, ok),
            QoS::AtMostOnce => {}
        }
        if qos != QoS::AtMostOnce {
            Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
        }
        self.on_delivery(s as usize, payload, at);
        Ok(())
    }

    pub(super) fn on_delivery(&mut self, s: usize, payload: &[u8], at: u64) {
        self.c.delivered += 1;
        self.last_progress = self.now;
        let sub = &mut self.subs[s];
        sub.publishes += 1;
        if payload.len() < HEADER {
            sub.unexpected += 1;
            return;
        }
        let stream = u32::from_le_bytes(payload[0..4].try_into().unwrap());
        let seq = u64::from_le_bytes(payload[4..12].try_into().unwrap());
        let sent_at = u64::from_le_bytes(payload[12..20].try_into().unwrap());
        let Some(track) = sub.tracks.get_mut(&stream) else {
            sub.unexpected += 1;
            return;
        };
        match track.see(seq) {
            Seen::InOrder { skipped } => {
                let advance = skipped as i64 + 1;
                sub.behind -= advance;
                self.total_behind -= advance;
                if !sub.waiters.is_empty() && sub.behind - sub.credit <= self.s.backlog / 2 {
                    self.wake_waiters(s);
                }
            }
            Seen::OutOfOrder => sub.ooo += 1,
            Seen::Duplicate => sub.dup += 1,
        }
        if self.phase == Phase::Measure {
            self.hist.record(at.saturating_sub(sent_at));
        }
    }

    pub(super) fn wake_waiters(&mut self, s: usize) {
        let waiters = std::mem::take(&mut self.subs[s].waiters);
        for &p in &waiters {
            if self.pubs[p as usize].blocked_on == Some(s as u32) {
                self.pubs[p as usize].blocked_on = None;
                self.enqueue(p);
            }
        }
        let mut waiters = waiters;
        waiters.clear();
        if self.subs[s].waiters.is_empty() {
            self.subs[s].waiters = waiters;
        }
    }

    pub(super) fn enqueue(&mut self, p: u32) {
        let publ = &mut self.pubs[p as usize];
        if !publ.queued && publ.blocked_on.is_none() && !publ.rate_wait {
            publ.queued = true;
            self.runnable.push_back(p);
        }
    }

    pub(super) fn pump(&mut self) {
        if !self.rate_waiters.is_empty() {
            for p in std::mem::take(&mut self.rate_waiters) {
                self.pubs[p as usize].rate_wait = false;
                self.enqueue(p);
            }
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

    /// Writes as many messages as flow control allows into the publisher's
    /// output buffer.
    pub(super) fn fill(&mut self, p: usize) {
        let now = Instant::now();
        let ts = elapsed_ns(self.epoch, now);
        let rate_allowed = if self.rate_per_pub > 0.0 {
            let secs = now
                .saturating_duration_since(self.phase_start_rate())
                .as_secs_f64();
            (secs * self.rate_per_pub) as u64 + 1
        } else {
            u64::MAX
        };
        let cap = if self.s.count > 0 && self.phase == Phase::Measure {
            self.measure_base.sent + self.s.count
        } else {
            u64::MAX
        };
        let Bench {
            pubs,
            subs,
            streams,
            clients,
            s,
            c,
            payload,
            cap_reached,
            rate_waiters,
            total_pending,
            total_behind,
            dirty,
            ..
        } = self;
        let publ = &mut pubs[p];
        let Some(key) = publ.client else {
            return;
        };
        let client = &mut clients[key];
        if client.state != CState::Ready || publ.blocked_on.is_some() {
            return;
        }
        let qos = qos_of(s.qos);
        let mut wrote = false;
        loop {
            if c.sent >= cap {
                *cap_reached = true;
                break;
            }
            if qos != QoS::AtMostOnce && publ.pending.len() >= s.inflight {
                break;
            }
            if publ.rate_sent >= rate_allowed {
                publ.rate_wait = true;
                rate_waiters.push(p as u32);
                break;
            }
            if client.wbuf.len() >= CHUNK {
                break;
            }
            let sid = publ.streams[publ.next_stream];
            let st = &mut streams[sid as usize];
            if s.backlog > 0 {
                if let Some(&full) = st.subs.iter().find(|&&x| {
                    let sub = &subs[x as usize];
                    sub.behind - sub.credit >= s.backlog
                }) {
                    publ.blocked_on = Some(full);
                    subs[full as usize].waiters.push(p as u32);
                    break;
                }
            }
            let seq = st.sent;
            st.sent += 1;
            payload[0..4].copy_from_slice(&sid.to_le_bytes());
            payload[4..12].copy_from_slice(&seq.to_le_bytes());
            payload[12..20].copy_from_slice(&ts.to_le_bytes());
            let mut pkid = 0;
            if qos != QoS::AtMostOnce {
                loop {
                    publ.next_pkid = publ.next_pkid % u16::MAX + 1;
                    if !publ.pending.contains_key(&publ.next_pkid) {
                        break;
                    }
                }
                pkid = publ.next_pkid;
                publ.pending.insert(
                    pkid,
                    Pending {
                        stream: sid,
                        seq,
                        stage: 1,
                    },
                );
                *total_pending += 1;
            }
            let flags = PublishFlags {
                qos,
                pkid,
                dup: false,
                retain: false,
            };
            let none = &Properties::NONE;
            protocol::encode_publish(&mut client.wbuf, LEVEL, &st.topic, payload, none, flags);
            for &x in &st.subs {
                subs[x as usize].behind += 1;
            }
            *total_behind += st.subs.len() as i64;
            c.sent += 1;
            publ.rate_sent += 1;
            publ.next_stream = (publ.next_stream + 1) % publ.streams.len();
            wrote = true;
        }
        if wrote {
            Self::mark_dirty(clients, dirty, key);
        }
    }
}
