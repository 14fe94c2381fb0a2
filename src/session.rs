//! Session state, keyed by client id [MQTT-3.1.3-2]: subscriptions, the
//! outbound in-flight window and the queue behind it, and the inbound QoS 2
//! identifiers awaiting PUBREL (MQTT 3.1.1 §4.1).
//!
//! A session outlives its connection when CleanSession is 0
//! [MQTT-3.1.2-4]. It holds no socket: the broker attaches it to one
//! connection at a time.

use crate::codec::QoS;
use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// An application message as it travels through the broker: stored once and
/// shared by every subscriber it is delivered to.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: Box<str>,
    pub payload: Bytes,
}

/// A message waiting for its turn in a session's queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    pub qos: QoS,
    /// Set only for retained messages sent because of a new subscription
    /// [MQTT-3.3.1-8]; live forwarding clears it [MQTT-3.3.1-9].
    pub retain: bool,
    /// Position in a persistent session's stream, naming the message in
    /// the store (0 when not stored).
    pub seq: u64,
}

/// Where an outbound QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent,
    /// PUBREL sent; waiting for PUBCOMP. The PUBLISH is never resent now
    /// [MQTT-4.3.3-1].
    Released,
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub pkid: u16,
    pub delivery: Delivery,
    pub stage: Stage,
}

/// What happens when a message arrives for a session whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the incoming message (mosquitto's behaviour).
    DropNewest,
    /// Drop the oldest queued message to make room.
    DropOldest,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: String,
    /// The user name of the last accepted CONNECT (for ACL re-checks).
    pub username: Option<String>,
    pub clean: bool,
    /// A subscription of the embedding host program: deliveries go to its
    /// callback instead of a connection.
    pub host: bool,
    /// The connection (slab key) this session is attached to, if online.
    pub conn: Option<usize>,
    /// Since when a persistent session has been offline (for expiry).
    pub offline_since: Option<std::time::Instant>,
    /// Filter -> granted QoS. A short list: most clients hold a handful,
    /// and a list costs far less memory per idle client than a map.
    pub subscriptions: Vec<(Box<str>, QoS)>,
    /// Outbound QoS 1/2 messages in the order they must be resent
    /// [MQTT-4.6.0-1]; PUBRELs in the order PUBRECs arrived [MQTT-4.6.0-4].
    pub inflight: VecDeque<Inflight>,
    /// Messages not yet sent, oldest first.
    pub queue: VecDeque<Delivery>,
    /// Inbound QoS 2 identifiers delivered but not yet released (method B:
    /// only the id is kept) [MQTT-4.3.3-2].
    /// Boxed: most sessions never receive QoS 2, and an empty set inline
    /// would cost every idle session 48 bytes instead of 8.
    #[allow(clippy::box_collection)]
    incoming_qos2: Option<Box<HashSet<u16>>>,
    next_pkid: u16,
    /// Last sequence number given to a stored message.
    pub next_seq: u64,
    /// Payload bytes in `queue`.
    pub queued_bytes: usize,
    /// Messages dropped because the queue was full.
    pub dropped: u64,
    /// Connections (key, serial) whose PUBLISHes wait for this queue to
    /// drain (flow control, [`crate::config::QueueFull::Block`]).
    pub waiters: Vec<(usize, u64)>,
    /// Whether a drop has been logged since the queue last drained, so a
    /// burst of drops is logged once.
    pub drop_logged: bool,
}

impl Session {
    pub fn new(client_id: String, clean: bool) -> Session {
        Session {
            client_id,
            username: None,
            clean,
            host: false,
            conn: None,
            offline_since: None,
            subscriptions: Vec::new(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            incoming_qos2: None,
            next_pkid: 0,
            next_seq: 0,
            queued_bytes: 0,
            dropped: 0,
            waiters: Vec::new(),
            drop_logged: false,
        }
    }

    /// Remembers an inbound QoS 2 id until its PUBREL; false if it was
    /// already remembered (a resent PUBLISH).
    pub fn qos2_insert(&mut self, pkid: u16) -> bool {
        self.incoming_qos2
            .get_or_insert_with(Box::default)
            .insert(pkid)
    }

    /// Forgets an inbound QoS 2 id (PUBREL); false if it was unknown.
    pub fn qos2_remove(&mut self, pkid: u16) -> bool {
        let Some(ids) = self.incoming_qos2.as_mut() else {
            return false;
        };
        let removed = ids.remove(&pkid);
        if ids.is_empty() {
            self.incoming_qos2 = None;
        }
        removed
    }

    /// Inbound QoS 2 ids awaiting PUBREL.
    pub fn qos2_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.incoming_qos2
            .iter()
            .flat_map(|ids| ids.iter().copied())
    }

    /// Adds or replaces a subscription.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) {
        match self.subscriptions.iter_mut().find(|(f, _)| &**f == filter) {
            Some(entry) => entry.1 = qos,
            None => {
                // Grow one entry at a time: most clients hold one or two.
                self.subscriptions.reserve_exact(1);
                self.subscriptions.push((filter.into(), qos));
            }
        }
    }

    /// Removes a subscription; true if there was one.
    pub fn unsubscribe(&mut self, filter: &str) -> bool {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|(f, _)| &**f != filter);
        self.subscriptions.len() != before
    }

    /// A packet identifier not in flight in this session [MQTT-2.3.1-4].
    /// The in-flight window is far smaller than 65,535, so a free id exists.
    pub fn alloc_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid == 0 {
                continue;
            }
            let id = self.next_pkid;
            if !self.inflight.iter().any(|f| f.pkid == id) {
                return id;
            }
        }
    }

    fn find(&self, pkid: u16, qos: QoS, stage: Stage) -> Option<usize> {
        // Acks usually arrive in order: the front is the likely hit.
        self.inflight
            .iter()
            .position(|f| f.pkid == pkid && f.delivery.qos == qos && f.stage == stage)
    }

    /// PUBACK from the client: the completed QoS 1 delivery, if any.
    pub fn puback(&mut self, pkid: u16) -> Option<Inflight> {
        let i = self.find(pkid, QoS::AtLeastOnce, Stage::Sent)?;
        self.inflight.remove(i)
    }

    /// PUBREC from the client: the message is now released. It moves to the
    /// back so PUBRELs are resent in PUBREC order [MQTT-4.6.0-4]. Returns
    /// whether the id was known (a PUBREL is sent either way) and the
    /// sequence of a message released just now.
    pub fn pubrec(&mut self, pkid: u16) -> (bool, Option<u64>) {
        if let Some(i) = self.find(pkid, QoS::ExactlyOnce, Stage::Sent) {
            if let Some(mut f) = self.inflight.remove(i) {
                f.stage = Stage::Released;
                let seq = f.delivery.seq;
                self.inflight.push_back(f);
                return (true, Some(seq));
            }
        }
        (
            self.find(pkid, QoS::ExactlyOnce, Stage::Released).is_some(),
            None,
        )
    }

    /// PUBCOMP from the client: the completed QoS 2 delivery, if any.
    pub fn pubcomp(&mut self, pkid: u16) -> Option<Inflight> {
        let i = self.find(pkid, QoS::ExactlyOnce, Stage::Released)?;
        self.inflight.remove(i)
    }

    /// True if one more message of `len` payload bytes would exceed the
    /// queue's bounds (`max_bytes` 0: no byte bound).
    pub fn queue_full(&self, len: usize, max: usize, max_bytes: usize) -> bool {
        self.queue.len() >= max || (max_bytes > 0 && self.queued_bytes + len > max_bytes)
    }

    /// Appends to the queue without checking its bounds.
    pub fn push(&mut self, d: Delivery) {
        self.queued_bytes += d.msg.payload.len();
        self.queue.push_back(d);
    }

    /// Takes the oldest queued message.
    pub fn pop(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.msg.payload.len();
        Some(d)
    }

    /// Queues a delivery behind the in-flight window within the bounds.
    /// Returns whether it was queued; `evicted` gets the sequence numbers of
    /// older messages dropped to make room (drop-oldest policy).
    pub fn enqueue(
        &mut self,
        d: Delivery,
        (max, max_bytes): (usize, usize),
        overflow: Overflow,
        evicted: &mut Vec<u64>,
    ) -> bool {
        let len = d.msg.payload.len();
        if !self.queue_full(len, max, max_bytes) {
            self.push(d);
            return true;
        }
        if overflow == Overflow::DropOldest {
            while !self.queue.is_empty() && self.queue_full(len, max, max_bytes) {
                evicted.extend(self.pop().map(|old| old.seq));
            }
            if !self.queue_full(len, max, max_bytes) {
                self.dropped += evicted.len() as u64;
                self.push(d);
                return true;
            }
        }
        self.dropped += 1 + evicted.len() as u64;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: "t".into(),
                payload: Bytes::new(),
            }),
            qos,
            retain: false,
            seq: 0,
        }
    }

    #[test]
    fn pkids_skip_zero_and_ids_in_flight() {
        let mut s = Session::new("c".into(), false);
        s.next_pkid = u16::MAX - 1;
        let a = s.alloc_pkid();
        assert_eq!(a, u16::MAX);
        s.inflight.push_back(Inflight {
            pkid: 1,
            delivery: delivery(QoS::AtLeastOnce),
            stage: Stage::Sent,
        });
        assert_eq!(s.alloc_pkid(), 2, "0 and the in-flight 1 are skipped");
    }

    #[test]
    fn pubrec_moves_to_the_back_in_arrival_order() {
        let mut s = Session::new("c".into(), false);
        for pkid in [1, 2] {
            s.inflight.push_back(Inflight {
                pkid,
                delivery: delivery(QoS::ExactlyOnce),
                stage: Stage::Sent,
            });
        }
        assert_eq!(s.pubrec(2), (true, Some(0)));
        assert_eq!(s.pubrec(1), (true, Some(0)));
        assert_eq!(s.pubrec(1), (true, None), "already released");
        let order: Vec<u16> = s.inflight.iter().map(|f| f.pkid).collect();
        assert_eq!(order, vec![2, 1]);
        assert!(
            s.puback(1).is_none(),
            "a QoS 2 id is not completed by PUBACK"
        );
        assert!(s.pubcomp(1).is_some() && s.pubcomp(2).is_some());
        assert!(s.inflight.is_empty());
    }

    #[test]
    fn queue_bound_and_overflow_policies() {
        let mut s = Session::new("c".into(), false);
        let mut evicted = Vec::new();
        let mut d = delivery(QoS::AtLeastOnce);
        d.seq = 1;
        assert!(s.enqueue(d, (1, 0), Overflow::DropNewest, &mut evicted));
        let newest = delivery(QoS::AtLeastOnce);
        assert!(!s.enqueue(newest, (1, 0), Overflow::DropNewest, &mut evicted));
        let oldest = delivery(QoS::AtLeastOnce);
        assert!(s.enqueue(oldest, (1, 0), Overflow::DropOldest, &mut evicted));
        assert_eq!((s.queue.len(), s.dropped, evicted), (1, 2, vec![1]));
    }
}
