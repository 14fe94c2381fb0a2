//! Routing and delivering messages: the subscribers of a topic, then to a
//! connection at once, into a session's queue, to a host callback, or (flow
//! control) by pausing the publishers of a full queue; and moving queued
//! messages into the in-flight window as room appears.

use super::write::{fits, send_inflight, write_publish};
use super::*;

/// Slots of the retained store one refill of a session's owed messages
/// looks at (so at most this many messages are owed at once).
const SCAN_STEP: usize = 1024;
/// Slots of the retained store one `pump` looks at, at most: the loop's
/// work for a subscription matching many retained messages stays bounded.
const SCAN_BUDGET: usize = 16 * SCAN_STEP;

/// A message as a destination gets it: to read, and to keep a share of.
pub(super) trait Held {
    fn message(&self) -> MessageView<'_>;
    /// A share of it, for a destination that keeps it (a queue, the
    /// in-flight window, the retained store).
    fn share(&mut self) -> Arc<Message>;
}

impl Held for Arc<Message> {
    fn message(&self) -> MessageView<'_> {
        self.view()
    }

    fn share(&mut self) -> Arc<Message> {
        self.clone()
    }
}

/// A PUBLISH being routed: made a shared `Arc<Message>` only when a
/// destination keeps it. A QoS 0 message that only goes out to online
/// subscribers is written from its publisher's read buffer and never
/// shared: neither its topic nor its payload is copied, and nothing is
/// allocated for it.
pub(super) enum Routed<'a> {
    Fresh(Fresh<'a>),
    Shared(Arc<Message>),
}

/// A client's PUBLISH as received: its topic and payload still in the
/// publisher's read buffer.
pub(super) struct Fresh<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub properties: Properties,
    pub expires_at: u64,
    pub retain: bool,
    pub frame: Frame<'a>,
}

impl Held for Routed<'_> {
    fn message(&self) -> MessageView<'_> {
        match self {
            Routed::Fresh(f) => MessageView {
                topic: f.topic,
                payload: f.payload,
                properties: &f.properties,
                expires_at: f.expires_at,
                retain: f.retain,
                frame: f.frame,
            },
            Routed::Shared(m) => m.view(),
        }
    }

    fn share(&mut self) -> Arc<Message> {
        let shared = match self {
            Routed::Shared(m) => return m.clone(),
            // Kept: it gets its own copies (the read buffer is reused).
            Routed::Fresh(f) => Arc::new(Message {
                topic: f.topic.into(),
                payload: bytes::Bytes::copy_from_slice(f.payload),
                properties: std::mem::take(&mut f.properties),
                expires_at: f.expires_at,
                retain: f.retain,
            }),
        };
        *self = Routed::Shared(shared.clone());
        shared
    }
}

impl Engine {
    /// The QoS a message published (or retained) at `qos` is delivered at
    /// to a subscription granted `granted`: the lower [MQTT-3.8.4-6], or
    /// with `upgrade_outgoing_qos` the subscription's.
    pub(super) fn out_qos(&self, qos: QoS, granted: QoS) -> QoS {
        if self.config.upgrade_outgoing_qos {
            granted
        } else {
            qos.min(granted)
        }
    }

    /// Puts a message into every matching session [MQTT-4.5.0-1], at
    /// min(published, granted) QoS [MQTT-3.8.4-6], RETAIN cleared
    /// [MQTT-3.3.1-9] unless the subscription asked for it as published
    /// [MQTT-3.3.1-12]; not back to its publisher's session through a No
    /// Local subscription [MQTT-3.8.3-3]. Returns how many subscribers it
    /// matched.
    pub(super) fn route(&mut self, msg: &mut Routed<'_>, qos: QoS, from: Origin) -> usize {
        let outer = std::mem::replace(&mut self.origin, from);
        let mut routes = std::mem::take(&mut self.routes);
        self.router.route(msg.message().topic, &mut routes);
        for s in &routes {
            match s.destination() {
                Destination::Session(sid) => {
                    if s.no_local && self.published_by(sid) {
                        continue;
                    }
                    if s.filtered && !self.may_receive(sid, msg.message().topic) {
                        continue; // a topic the ACL denies this subscriber
                    }
                    let retain = s.retain_as_published && msg.message().retain;
                    let qos = self.out_qos(qos, s.qos);
                    self.deliver(sid, msg, qos, retain, s.id, false);
                }
                Destination::Host(key) => {
                    let qos = self.out_qos(qos, s.qos);
                    self.deliver_to_host(key, msg.message(), qos, false)
                }
                // One member's grant decides the QoS [MQTT-4.8.2-3].
                Destination::Group(key) => self.deliver_shared(key, msg, qos),
            }
        }
        let matched = routes.len();
        self.routes = routes;
        self.origin = outer;
        matched
    }

    /// The session of the client whose message is being routed.
    fn publisher_session(&self) -> Option<SessionKey> {
        let Origin::Client(key) = self.origin else {
            return None;
        };
        self.conns.get(key).and_then(Conn::session)
    }

    /// True if the message being routed comes from session `sid`.
    fn published_by(&self, sid: SessionKey) -> bool {
        self.publisher_session() == Some(sid)
    }

    /// Hands one message to one session: written now if the client is
    /// online and has room, queued otherwise, dropped (and counted) past
    /// the limits. `shared`: through a shared subscription. Always inlined:
    /// it is `route`'s hot path, and shared subscriptions' second call
    /// site would otherwise keep it out of line (13 instructions more per
    /// message, counted with callgrind).
    #[inline(always)]
    pub(super) fn deliver(
        &mut self,
        sid: SessionKey,
        msg: &mut impl Held,
        qos: QoS,
        retain: bool,
        sub_id: u32,
        shared: bool,
    ) {
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        // A QoS 1/2 message for a persistent session is stored under the
        // next sequence number of that session.
        let stored = self.store.is_some() && !sess.clean && qos != QoS::AtMostOnce;
        let seq = if stored {
            sess.next_seq += 1;
            sess.next_seq
        } else {
            0
        };
        // Only queued and in-flight messages need a Delivery (and a share
        // of the message); a QoS 0 message is written straight out.
        let delivery = |msg: &mut _| Delivery {
            msg: Held::share(msg),
            qos,
            retain,
            seq,
            sub_id,
            shared,
        };
        let online = sess
            .conn()
            .and_then(|k| self.conns.get_mut(k).map(|c| (k, c)));
        let Some((key, conn)) = online else {
            if stored && self.store_full() {
                self.stats.dropped_queue_full += 1;
                return;
            }
            if qos != QoS::AtMostOnce || self.config.queue_qos0 {
                self.enqueue(sid, delivery(msg));
            }
            return;
        };
        let room = conn.out_len() < self.config.max_outgoing_bytes;
        let now = self.now_ms;
        let copy = Copy {
            msg: msg.message(),
            qos,
            retain,
            pkid: 0,
            dup: false,
            sub_id,
        };
        if sess.owes() {
            self.enqueue(sid, delivery(msg)); // behind the owed retained messages
        } else if !fits(conn, sess, &copy, now) {
            self.stats.dropped_too_large += 1;
        } else if qos == QoS::AtMostOnce {
            if room {
                write_publish(conn, sess, copy, now, &mut self.stats);
                mark_dirty(conn, key, &mut self.dirty);
            } else {
                self.stats.dropped_qos0 += 1;
                if !sess.drop_logged {
                    sess.drop_logged = true;
                    warn!(
                        "{}: not reading fast enough: dropping QoS 0 messages",
                        sess.client_id
                    );
                }
            }
        } else if room
            && sess.flow().queue.is_empty()
            && sess.window_open(self.config.max_inflight_bytes)
        {
            let delivery = delivery(msg);
            let record = stored.then(|| {
                let client = sess.client_id.to_string();
                self.bodies.record(&mut self.next_body, client, &delivery)
            });
            let pkid = send_inflight(sess, conn, delivery, now, &mut self.stats);
            mark_dirty(conn, key, &mut self.dirty);
            if let Some(record) = record {
                let client = sess.client_id.to_string();
                self.persist(record);
                self.persist(Record::Sent { client, seq, pkid });
                self.hold(key);
            }
        } else {
            self.enqueue(sid, delivery(msg));
        }
    }

    /// Hands one message to a subscription of the host program.
    pub(super) fn deliver_to_host(
        &mut self,
        key: HostKey,
        msg: MessageView,
        qos: QoS,
        retain: bool,
    ) {
        let publisher = self.publisher_session();
        let publisher = publisher.and_then(|sid| self.sessions.get(sid));
        if let Some(host) = self.host_subs.get_mut(key.index()) {
            (host.callback)(&HostMessage {
                topic: msg.topic,
                payload: msg.payload,
                qos,
                retain,
                publisher: publisher.map(|s| &*s.client_id),
                properties: msg.properties,
            });
        }
    }

    pub(super) fn enqueue(&mut self, sid: SessionKey, delivery: Delivery) {
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        if sess.conn().is_some() {
            sess.note_waiting(self.now_ms); // see `stall`
        }
        let (max, max_bytes) = (self.config.max_queued, self.config.max_queued_bytes);
        let full = sess.queue_full(delivery.msg.payload.len(), max, max_bytes);
        // An online subscriber's full queue pauses the publisher instead of
        // dropping what it was promised.
        // Kept (an Arc clone) to be recorded once the delivery is queued:
        // only then, since the record may name a body that later records
        // refer to.
        let stored = (delivery.seq > 0).then(|| delivery.clone());
        if full && sess.conn().is_some() && self.pause_publisher(sid) {
            if let Some(sess) = self.sessions.get_mut(sid) {
                sess.push(delivery);
            }
            self.persist_queued(sid, stored);
            return;
        }
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        let mut evicted = Vec::new();
        let queued = sess.enqueue(
            delivery,
            (max, max_bytes),
            self.config.queue_overflow,
            &mut evicted,
        );
        // `durable` copies the client id: only for stored evictions.
        let stored_evicted = evicted.iter().any(|&s| s > 0);
        if let Some(client) = stored_evicted.then(|| self.durable(sid)).flatten() {
            for seq in evicted.iter().copied().filter(|&s| s > 0) {
                self.persist(Record::Done {
                    client: client.clone(),
                    seq,
                });
            }
        }
        if queued {
            self.persist_queued(sid, stored);
        }
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        if !queued || !evicted.is_empty() {
            self.stats.dropped_queue_full += (!queued) as u64 + evicted.len() as u64;
            if !sess.drop_logged {
                sess.drop_logged = true;
                warn!(
                    "{}: queue full ({} messages): dropping messages ({} so far)",
                    sess.client_id, self.config.max_queued, sess.dropped
                );
            }
        }
    }

    /// Flow control: the current publisher's further PUBLISHes wait until
    /// session `sid`'s queue drains. The message being routed is still
    /// queued, so a queue overshoots its limit by at most one message per
    /// publisher. False (drop instead) when the policy is to drop or there
    /// is no publishing connection (a Will).
    pub(super) fn pause_publisher(&mut self, sid: SessionKey) -> bool {
        if self.config.queue_full != QueueFull::Block {
            return false;
        }
        if self.stalled(sid) {
            // A subscriber that takes nothing holds no one back: it is
            // disconnected (see `stall`), and its queue drops meanwhile.
            self.stalled_subscribers.push(sid);
            return false;
        }
        self.watch_stall(sid);
        let key = match self.origin {
            Origin::Client(key) => key,
            Origin::Host => return self.pause_host(sid),
            Origin::Broker => return false, // a Will, $SYS: nobody to hold back
        };
        let (Some(conn), Some(sess)) = (self.conns.get_mut(key), self.sessions.get_mut(sid)) else {
            return false;
        };
        let waiters = &mut sess.flow_mut().waiters;
        if !waiters.iter().any(|&(k, _)| k == key) {
            waiters.push((key, conn.serial));
        }
        if !conn.blocked {
            conn.blocked = true;
            self.stats.publishers_paused += 1;
            debug!("{}: paused: queue of {} is full", conn.addr, sess.client_id);
        }
        true
    }

    /// Records a delivery that entered `sid`'s queue (`None`: not stored).
    fn persist_queued(&mut self, sid: SessionKey, stored: Option<Delivery>) {
        let (Some(d), Some(sess)) = (stored, self.sessions.get(sid)) else {
            return;
        };
        let client = sess.client_id.to_string();
        let record = self.bodies.record(&mut self.next_body, client, &d);
        self.persist(record);
    }

    /// Lets the publishers waiting on `sid` go on.
    pub(super) fn wake_waiters(&mut self, sid: SessionKey) {
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        for (key, serial) in sess.take_waiters() {
            if key == embed::host_publisher() {
                self.host.resume();
            } else {
                self.unblock(key, serial);
            }
        }
    }

    pub(super) fn unblock(&mut self, key: ConnKey, serial: u32) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.serial != serial {
                return;
            }
            conn.blocked = false;
            let Some(sid) = conn.session() else {
                return;
            };
            let Some(mut p) = conn.unpark() else {
                break;
            };
            let v5 = self.conns.get(key).is_some_and(|c| c.v5.is_some());
            let before = self.store_appended();
            if let Err(reason) = self.on_publish(key, sid, p.view(), v5) {
                return self.close(key, reason);
            }
            self.hold_output(key, before);
            if self.conns.get(key).is_some_and(|c| c.blocked) {
                return; // blocked again on another full queue
            }
        }
        // Resume reading: bytes may wait in rbuf and in the socket, and an
        // edge-triggered socket will not report them again.
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.read_pending {
                conn.read_pending = true;
                self.pending_reads.push(key);
            }
        }
    }

    /// Frees a session's traffic state if it is empty (see
    /// [`Session::tidy`]).
    pub(super) fn tidy_session(&mut self, sid: Option<SessionKey>) {
        if let Some(sess) = sid.and_then(|sid| self.sessions.get_mut(sid)) {
            sess.tidy();
        }
    }

    /// Refills session `sid`'s owed retained messages, when none are left,
    /// from its oldest scan of the retained store, looking at no more than
    /// `*budget` slots (taken off it). False if the budget ran out before
    /// anything was found while scans remain.
    fn refill_owed(&mut self, sid: SessionKey, budget: &mut usize) -> bool {
        loop {
            let Some(sess) = self.sessions.get(sid) else {
                return true;
            };
            let flow = sess.flow();
            let Some(scan) = flow.scans.front().filter(|_| flow.owed.is_empty()) else {
                return true;
            };
            if *budget == 0 {
                return false;
            }
            let mut scan = scan.clone();
            let step = (*budget).min(SCAN_STEP);
            let from = scan.next;
            let upgrade = self.config.upgrade_outgoing_qos;
            let now = self.now_ms;
            let mut found = std::mem::take(&mut self.found);
            let done = self
                .retained
                .scan(&scan.filter, &mut scan.next, step, |m, stored| {
                    if m.expired(now) {
                        return; // [MQTT-3.3.2-5]
                    }
                    if !scan.filtered || self.may_receive(sid, &m.topic) {
                        let qos = if upgrade {
                            scan.qos
                        } else {
                            stored.min(scan.qos)
                        };
                        found.push((m.clone(), qos, scan.sub_id));
                    }
                });
            self.drop_revoked_retained(&mut found, |f| &f.0);
            // What was looked at (at least one step, so a run of scans of
            // an empty store ends too).
            *budget -= scan.next.saturating_sub(from).clamp(1, step);
            if let Some(sess) = self.sessions.get_mut(sid) {
                let flow = sess.flow_mut();
                flow.owed.extend(found.drain(..));
                if done {
                    flow.scans.pop_front();
                } else if let Some(front) = flow.scans.front_mut() {
                    front.next = scan.next;
                }
            }
            self.found = found;
        }
    }

    /// Moves owed retained messages, then queued ones, into the in-flight
    /// window while the client has room: at most `max_outgoing_bytes` of
    /// output and [`SCAN_BUDGET`] slots of the retained store per call;
    /// more as output drains (see `flush_dirty`), or next iteration if the
    /// scan budget ran out (`pending_scans`).
    pub(super) fn pump(&mut self, sid: SessionKey) {
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(key) = sess.conn() else {
            return;
        };
        let cap = self.window_cap(key);
        if let Some(sess) = self.sessions.get_mut(sid) {
            sess.grow_window(cap);
        }
        let Some(sess) = self.sessions.get(sid) else {
            return;
        };
        let scanning = !sess.flow().scans.is_empty();
        // Store records of what was sent, in order: the body of an owed
        // message stored now, then every `Sent`.
        let mut records = Vec::new();
        let wake = if scanning {
            self.send_while_scanning(sid, key, &mut records)
        } else {
            self.send_some(sid, key, &mut records)
        };
        if !records.is_empty() {
            for record in records {
                self.persist(record);
            }
            self.hold(key); // what was sent to a persistent session
        }
        if wake {
            self.wake_waiters(sid);
        }
    }

    /// `pump`'s writing while scans of the retained store are under way:
    /// refills and sends until the client has no room or the scan budget
    /// is spent (then the session goes on next iteration).
    fn send_while_scanning(
        &mut self,
        sid: SessionKey,
        key: ConnKey,
        records: &mut Vec<Record>,
    ) -> bool {
        let mut budget = SCAN_BUDGET;
        loop {
            if !self.refill_owed(sid, &mut budget) {
                self.pending_scans.push(sid);
                return false;
            }
            let wake = self.send_some(sid, key, records);
            let refill = self.sessions.get(sid).is_some_and(|s| {
                let flow = s.flow();
                flow.owed.is_empty() && !flow.scans.is_empty()
            });
            let room = self
                .conns
                .get(key)
                .is_some_and(|c| c.out_len() < self.config.max_outgoing_bytes);
            if !(refill && room) {
                return wake;
            }
        }
    }

    /// `pump`'s writing: owed messages, then queued ones, while there is
    /// room and nothing owed is still to be found. True if publishers
    /// waiting for the queue may go on.
    fn send_some(&mut self, sid: SessionKey, key: ConnKey, records: &mut Vec<Record>) -> bool {
        let (Some(sess), Some(conn)) = (self.sessions.get_mut(sid), self.conns.get_mut(key)) else {
            return false;
        };
        let durable = self.store.is_some() && !sess.clean;
        let now = self.now_ms;
        let mut wrote = false;
        // Messages held back at the reconnect go first, as room appears.
        while conn.out_len() < self.config.max_outgoing_bytes {
            let Some(f) = sess.unhold().cloned() else {
                break;
            };
            if resend_inflight(conn, sess, &f, now, &mut self.stats) {
                wrote = true;
            } else {
                records.extend(drop_unsent(sess, &f, durable, &mut self.stats));
            }
        }
        while conn.out_len() < self.config.max_outgoing_bytes {
            let Some(qos) = sess.next_qos() else {
                break;
            };
            if qos != QoS::AtMostOnce && !sess.window_open(self.config.max_inflight_bytes) {
                break;
            }
            let d = match sess.pop_owed() {
                Some((msg, qos, sub_id)) => {
                    let copy = Copy {
                        msg: msg.view(),
                        qos,
                        retain: true,
                        pkid: 0,
                        dup: false,
                        sub_id,
                    };
                    if msg.expired(now) || !fits(conn, sess, &copy, now) {
                        continue;
                    }
                    let stored = durable && qos != QoS::AtMostOnce;
                    let seq = if stored {
                        sess.next_seq += 1;
                        sess.next_seq
                    } else {
                        0
                    };
                    let d = Delivery {
                        msg,
                        qos,
                        retain: true,
                        seq,
                        sub_id,
                        shared: false,
                    };
                    if stored {
                        let client = sess.client_id.to_string();
                        records.push(self.bodies.record(&mut self.next_body, client, &d));
                    }
                    d
                }
                None => match sess.pop() {
                    Some(d) => d,
                    None => break,
                },
            };
            // [MQTT-3.3.2-5]: an expired message is not sent; nor one
            // larger than the client takes [MQTT-3.1.2-25].
            if d.msg.expired(now) || !fits(conn, sess, &Copy::of(&d, 0), now) {
                if d.seq > 0 && durable {
                    let client = sess.client_id.to_string();
                    records.push(Record::Done { client, seq: d.seq });
                }
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                write_publish(conn, sess, Copy::of(&d, 0), now, &mut self.stats);
            } else {
                let seq = d.seq;
                let pkid = send_inflight(sess, conn, d, now, &mut self.stats);
                if seq > 0 && durable {
                    let client = sess.client_id.to_string();
                    records.push(Record::Sent { client, seq, pkid });
                }
            }
            wrote = true;
        }
        if wrote {
            mark_dirty(conn, key, &mut self.dirty);
        }
        sess.note_progress(wrote, now);
        let flow = sess.flow();
        if flow.queue.is_empty() {
            sess.drop_logged = false;
        }
        let (max, max_bytes) = (self.config.max_queued, self.config.max_queued_bytes);
        !sess.flow().waiters.is_empty() && !sess.queue_full(0, max, max_bytes)
    }
}
