//! Session state, keyed by client id [MQTT-3.1.3-2]: subscriptions, the
//! outbound in-flight window and the queue behind it, and the inbound QoS 2
//! identifiers awaiting PUBREL (MQTT 3.1.1 §4.1).
//!
//! A session outlives its connection when CleanSession is 0
//! [MQTT-3.1.2-4]. It holds no socket: the broker attaches it to one
//! connection at a time.
//!
//! The in-flight window and acknowledgements are in `inflight`, the
//! collection of every session in `sessions`.

mod inflight;
mod sessions;

pub use sessions::Sessions;

use crate::keyed_list::{Keyed, KeyedList};
use crate::keys::ConnKey;
use crate::protocol::{Properties, QoS};
use crate::retained::Scans;
use crate::router::{Grant, SEVERAL_IDS};
use crate::{shared, topic};
use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// The in-flight window of a new connection: mosquitto's default
/// `max_inflight_messages`, so a client that never keeps up sees what it
/// would see there.
pub const START_WINDOW: usize = 20;

/// An application message as it travels through the broker: stored once and
/// shared by every subscriber it is delivered to. (The default, empty one
/// allocates nothing: routing takes a message out of its place with it.)
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub topic: Box<str>,
    pub payload: Bytes,
    /// MQTT 5 properties, forwarded to MQTT 5 subscribers as received
    /// (less the Topic Alias): none from 3.x publishers.
    pub properties: Properties,
    /// When it expires, in ms on the broker's clock (its Message Expiry
    /// Interval after it arrived); 0: never.
    pub expires_at: u64,
    /// The RETAIN flag it was published with, for Retain As Published.
    pub retain: bool,
}

impl Message {
    /// A message without properties or expiry.
    pub fn new(topic: Box<str>, payload: Bytes) -> Message {
        Message {
            topic,
            payload,
            properties: Properties::NONE,
            expires_at: 0,
            retain: false,
        }
    }

    /// Its fields, as a copy of it is written from.
    pub fn view(&self) -> MessageView<'_> {
        MessageView {
            topic: &self.topic,
            payload: &self.payload,
            properties: &self.properties,
            expires_at: self.expires_at,
            retain: self.retain,
            frame: Frame::NONE,
        }
    }

    /// True once its Message Expiry Interval has passed: it is no longer
    /// delivered [MQTT-3.3.2-5].
    pub fn expired(&self, now_ms: u64) -> bool {
        self.view().expired(now_ms)
    }
}

/// A message's fields as a copy of it is written from: a kept
/// [`Message`]'s, or those of a PUBLISH still in its publisher's read
/// buffer (which nothing has copied or allocated).
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub properties: &'a Properties,
    pub expires_at: u64,
    pub retain: bool,
    /// The PUBLISH it came in, when a copy may be written as those bytes.
    pub frame: Frame<'a>,
}

/// A client's QoS 0 PUBLISH as received, without DUP, RETAIN or
/// properties, its Remaining Length shortest: what the broker would write
/// for a QoS 0 copy without RETAIN to a client at the same protocol level
/// (3.x or 5) with nothing to add, byte for byte. Such a copy is these
/// bytes: one copy instead of encoding it again.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Empty if there is none.
    pub bytes: &'a [u8],
    /// In MQTT 5's layout (with its empty Property Length).
    pub v5: bool,
}

impl Frame<'_> {
    pub const NONE: Frame<'static> = Frame {
        bytes: &[],
        v5: false,
    };
}

impl MessageView<'_> {
    /// See [`Message::expired`].
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at != 0 && now_ms >= self.expires_at
    }

    /// The Message Expiry Interval left, in whole seconds rounded up, for
    /// a copy sent now [MQTT-3.3.2-6]; `None` if it never expires. At
    /// least 1: a QoS 2 message resent after its expiry (it no longer
    /// expires once sent [MQTT-4.3.3-7]) must not say 0.
    pub fn expiry_left(&self, now_ms: u64) -> Option<u32> {
        if self.expires_at == 0 {
            return None;
        }
        let left = self.expires_at.saturating_sub(now_ms).div_ceil(1000).max(1);
        Some(u32::try_from(left).unwrap_or(u32::MAX))
    }
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
    /// The Subscription Identifier to send it with (0: none,
    /// [`SEVERAL_IDS`]: those of every matching subscription).
    pub sub_id: u32,
    /// It came through a shared subscription: if the session leaves the
    /// group before its client has it, another member may get it.
    pub shared: bool,
}

impl Keyed for (Arc<str>, Grant) {
    type Key = Arc<str>;
    fn key(&self) -> &Arc<str> {
        &self.0
    }
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
    /// Not resent yet since the client reconnected: its Receive Maximum
    /// allowed fewer messages in flight than the session had
    /// [MQTT-3.3.4-9]; it goes (same id, DUP) as acknowledgements make
    /// room.
    pub held: bool,
}

/// What happens when a message arrives for a session whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the incoming message (mosquitto's behaviour).
    DropNewest,
    /// Drop the oldest queued message to make room.
    DropOldest,
}

/// A session's traffic: everything that is empty while the session is
/// idle. Boxed in [`Session`] and freed when empty, so an idle session
/// costs 8 bytes for it instead of 150.
#[derive(Debug, Default)]
pub struct Flow {
    /// Outbound QoS 1/2 messages in the order they must be resent
    /// [MQTT-4.6.0-1]; PUBRELs in the order PUBRECs arrived [MQTT-4.6.0-4].
    pub inflight: VecDeque<Inflight>,
    /// Payload bytes in `inflight` (for `max_inflight_bytes`).
    inflight_bytes: usize,
    /// Entries of `inflight` held back at a reconnect ([`Inflight::held`]).
    held: usize,
    /// Retained messages owed to new subscriptions [MQTT-3.3.1-6], with
    /// the QoS to send them at: shares of the retained store's messages,
    /// sent (before `queue`, which holds what was published since) as the
    /// client's output drains, so none is dropped and none is copied.
    /// Refilled from `scans` a bounded batch at a time.
    pub owed: VecDeque<(Arc<Message>, QoS, u32)>,
    /// The retained store's scans for new subscriptions, oldest first.
    pub scans: Scans,
    /// Messages not yet sent, oldest first.
    pub queue: VecDeque<Delivery>,
    /// Payload bytes in `queue`.
    pub queued_bytes: usize,
    /// Connections (key, serial) whose PUBLISHes wait for this queue to
    /// drain (flow control, [`crate::config::QueueFull::Block`]).
    pub waiters: Vec<(ConnKey, u32)>,
    /// Since when (ms) messages have waited with none sent: the window
    /// full without an acknowledgement, or the socket not draining. The
    /// measure of a stalled subscriber (`stall_timeout`).
    pub stuck_since: Option<u64>,
    /// Inbound QoS 2 identifiers delivered but not yet released (method B:
    /// only the id is kept) [MQTT-4.3.3-2]. An `Option` so that
    /// [`NO_FLOW`] can be a constant.
    incoming_qos2: Option<HashSet<u16>>,
    /// The packet ids, first and last, of the messages that were in flight
    /// when packet ids last wrapped around to 1 (see
    /// [`Session::alloc_pkid`]); empty (0, 0) when there were none.
    old_pkids: (u16, u16),
}

impl Flow {
    fn is_empty(&self) -> bool {
        self.inflight.is_empty()
            && self.owed.is_empty()
            && self.scans.is_empty()
            && self.queue.is_empty()
            && self.waiters.is_empty()
            && self.incoming_qos2.as_ref().is_none_or(HashSet::is_empty)
    }
}

/// What an idle session's [`Session::flow`] reads as.
static NO_FLOW: Flow = Flow {
    inflight: VecDeque::new(),
    inflight_bytes: 0,
    held: 0,
    owed: VecDeque::new(),
    scans: Scans::new(),
    queue: VecDeque::new(),
    queued_bytes: 0,
    waiters: Vec::new(),
    stuck_since: None,
    incoming_qos2: None,
    old_pkids: (0, 0),
};

#[derive(Debug)]
pub struct Session {
    pub client_id: Box<str>,
    /// The user name of the last accepted CONNECT (for ACL re-checks).
    pub username: Option<Box<str>>,
    /// The session ends with its connection (CleanSession 1, or an MQTT 5
    /// Session Expiry Interval of 0).
    pub clean: bool,
    /// Session Expiry Interval in seconds once offline (MQTT 5);
    /// `u32::MAX` never expires ([`crate::config::Config::session_expiry`]
    /// still applies, as for 3.x persistent sessions).
    pub expiry: u32,
    /// Whether a drop has been logged since the queue last drained, so a
    /// burst of drops is logged once.
    pub drop_logged: bool,
    next_pkid: u16,
    /// Outbound QoS 1/2 messages that may be unacknowledged at once (the
    /// in-flight window): [`START_WINDOW`] at each connect, then growing
    /// while the client keeps up.
    window: u16,
    /// An acknowledgement arrived while the window was full and messages
    /// waited behind it (see [`Session::grow_window`]).
    ack_while_full: bool,
    /// The connection (slab key) this session is attached to, if online.
    /// Stored as key + 1, so that "offline" costs no extra bytes.
    conn: Option<std::num::NonZeroU32>,
    /// Messages dropped because the queue was full.
    pub dropped: u64,
    /// Since when (milliseconds on the broker's clock) a persistent session
    /// has been offline, for expiry.
    pub offline_since: Option<u64>,
    /// Filter -> granted QoS: a bare list for the handful most clients
    /// hold (far less memory per idle client than a map), indexed once
    /// long, so that subscribing costs the same at any count. The filter
    /// strings are shared with the router.
    subscriptions: KeyedList<(Arc<str>, Grant)>,
    /// Last sequence number given to a stored message.
    pub next_seq: u64,
    /// `None` while idle: see [`Flow`].
    flow: Option<Box<Flow>>,
}

impl Session {
    pub fn new(client_id: Box<str>, clean: bool) -> Session {
        Session {
            client_id,
            username: None,
            clean,
            expiry: if clean { 0 } else { u32::MAX },
            drop_logged: false,
            next_pkid: 0,
            window: 1,
            ack_while_full: false,
            conn: None,
            dropped: 0,
            offline_since: None,
            subscriptions: KeyedList::default(),
            next_seq: 0,
            flow: None,
        }
    }

    /// The connection this session is attached to, if online.
    pub fn conn(&self) -> Option<ConnKey> {
        self.conn.map(|k| ConnKey::saturating(k.get() as usize - 1))
    }

    /// Attaches the session to connection `key` (slab keys are bounded by
    /// the connection limit, far below `u32::MAX`), or detaches it.
    pub fn set_conn(&mut self, key: Option<ConnKey>) {
        self.conn = key.and_then(|k| {
            let k = u32::try_from(k.index()).ok()?.checked_add(1)?;
            std::num::NonZeroU32::new(k)
        });
    }

    /// The in-flight window, queue and waiters (empty while idle).
    pub fn flow(&self) -> &Flow {
        self.flow.as_deref().unwrap_or(&NO_FLOW)
    }

    /// The traffic state for changing; allocated on first use.
    pub fn flow_mut(&mut self) -> &mut Flow {
        self.flow.get_or_insert_with(Box::default)
    }

    /// Frees the traffic state once nothing is in it. Called by the broker
    /// once per batch (after a connection's input is handled, after its
    /// output is flushed, when it closes) rather than after every ack, so a
    /// busy session does not allocate and free it for every message.
    pub fn tidy(&mut self) {
        if self.flow.as_ref().is_some_and(|f| f.is_empty()) {
            self.flow = None;
        }
    }

    /// Remembers an inbound QoS 2 id until its PUBREL; false if it was
    /// already remembered (a resent PUBLISH).
    pub fn qos2_insert(&mut self, pkid: u16) -> bool {
        let ids = self
            .flow_mut()
            .incoming_qos2
            .get_or_insert_with(HashSet::new);
        ids.insert(pkid)
    }

    /// True if an inbound QoS 2 id awaits its PUBREL.
    pub fn qos2_has(&self, pkid: u16) -> bool {
        let ids = self.flow().incoming_qos2.as_ref();
        ids.is_some_and(|ids| ids.contains(&pkid))
    }

    /// Forgets an inbound QoS 2 id (PUBREL); false if it was unknown.
    pub fn qos2_remove(&mut self, pkid: u16) -> bool {
        let flow = self.flow.as_mut();
        let removed = flow.is_some_and(|f| {
            f.incoming_qos2
                .as_mut()
                .is_some_and(|ids| ids.remove(&pkid))
        });
        removed
    }

    /// Inbound QoS 2 ids awaiting PUBREL.
    pub fn qos2_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.flow().incoming_qos2.iter().flatten().copied()
    }

    /// The subscriptions: filter and what was granted.
    pub fn subscriptions(&self) -> &[(Arc<str>, Grant)] {
        self.subscriptions.as_slice()
    }

    /// Adds or replaces a subscription.
    pub fn subscribe(&mut self, filter: Arc<str>, grant: Grant) {
        match self.subscriptions.get_mut(&*filter) {
            Some(entry) => entry.1 = grant,
            None => self.subscriptions.push((filter, grant)),
        }
    }

    /// Calls `f` with the Subscription Identifiers to send a message on
    /// `topic` with, for a delivery's `sub_id` (see [`Delivery::sub_id`]):
    /// no allocation but when several subscriptions matched.
    pub fn with_subscription_ids<R>(
        &self,
        sub_id: u32,
        topic: &str,
        f: impl FnOnce(&[u32]) -> R,
    ) -> R {
        match sub_id {
            0 => f(&[]),
            SEVERAL_IDS => {
                // Only non-shared subscriptions merge their identifiers: a
                // shared one delivers its own copy, with its own.
                let matching = self.subscriptions.as_slice().iter();
                let matching = matching.filter(|(flt, _)| !shared::is_shared(flt));
                let ids = matching.filter(|(flt, g)| g.id != 0 && topic::matches(flt, topic));
                let mut ids: Vec<u32> = ids.map(|(_, g)| g.id).collect();
                ids.sort_unstable();
                ids.dedup();
                f(&ids)
            }
            id => f(&[id]),
        }
    }

    /// Removes a subscription; true if there was one.
    pub fn unsubscribe(&mut self, filter: &str) -> bool {
        let removed = self.subscriptions.remove(filter);
        if let (Some((filter, _)), Some(flow)) = (&removed, self.flow.as_mut()) {
            flow.scans.cancel(filter);
        }
        removed.is_some()
    }

    /// True if one more message of `len` payload bytes would exceed the
    /// queue's bounds (`max` 0: no bound on messages, `max_bytes` 0: none
    /// on bytes, as in mosquitto).
    pub fn queue_full(&self, len: usize, max: usize, max_bytes: usize) -> bool {
        let flow = self.flow();
        (max > 0 && flow.queue.len() >= max)
            || (max_bytes > 0 && flow.queued_bytes + len > max_bytes)
    }

    /// Starts owing the retained messages of a new subscription (see
    /// [`Scans::start`]).
    pub fn start_scan(&mut self, filter: Arc<str>, qos: QoS, filtered: bool, sub_id: u32) {
        self.flow_mut().scans.start(filter, qos, filtered, sub_id);
    }

    /// The QoS of the message to send next: an owed retained message
    /// first, then the queue's oldest; none while owed messages are still
    /// to be found.
    pub fn next_qos(&self) -> Option<QoS> {
        let flow = self.flow();
        match flow.owed.front() {
            Some(&(_, qos, _)) => Some(qos),
            // More owed messages are still to be found: they go first.
            None if !flow.scans.is_empty() => None,
            None => flow.queue.front().map(|d| d.qos),
        }
    }

    /// True while retained messages are owed: later messages queue behind
    /// them, so a subscriber never gets a topic's retained message after
    /// a newer one.
    pub fn owes(&self) -> bool {
        let flow = self.flow();
        !flow.owed.is_empty() || !flow.scans.is_empty()
    }

    /// Takes the next owed retained message.
    pub fn pop_owed(&mut self) -> Option<(Arc<Message>, QoS, u32)> {
        self.flow.as_mut()?.owed.pop_front()
    }

    /// Appends to the queue without checking its bounds.
    pub fn push(&mut self, d: Delivery) {
        let flow = self.flow_mut();
        flow.queued_bytes += d.msg.payload.len();
        flow.queue.push_back(d);
    }

    /// Takes the oldest queued message.
    pub fn pop(&mut self) -> Option<Delivery> {
        let flow = self.flow.as_mut()?;
        let d = flow.queue.pop_front()?;
        flow.queued_bytes -= d.msg.payload.len();
        Some(d)
    }

    /// Keeps the owed, queued and sent-but-unacknowledged messages `keep`
    /// accepts; returns the sequence numbers of the others (0 for those
    /// not stored). Messages past PUBREC (only their PUBREL is pending) are
    /// delivered already: kept. Scans of the retained store still under
    /// way check each message they find from now on (`Scan::filtered`).
    pub fn retain_deliveries(&mut self, mut keep: impl FnMut(&Message) -> bool) -> Vec<u64> {
        let mut dropped = Vec::new();
        let Some(flow) = self.flow.as_mut() else {
            return dropped;
        };
        let mut freed = 0;
        flow.inflight.retain(|f| {
            let kept = f.stage == Stage::Released || keep(&f.delivery.msg);
            if !kept {
                dropped.push(f.delivery.seq);
                freed += f.delivery.msg.payload.len();
            }
            kept
        });
        flow.inflight_bytes -= freed;
        flow.held = flow.inflight.iter().filter(|f| f.held).count();
        let mut freed = 0;
        flow.scans.iter_mut().for_each(|s| s.filtered = true);
        flow.owed.retain(|(msg, _, _)| {
            let kept = keep(msg);
            if !kept {
                dropped.push(0);
            }
            kept
        });
        flow.queue.retain(|d| {
            let kept = keep(&d.msg);
            if !kept {
                dropped.push(d.seq);
                freed += d.msg.payload.len();
            }
            kept
        });
        flow.queued_bytes -= freed;
        dropped
    }

    /// Notes whether the last attempt to send made progress: `sent`
    /// something, or left nothing waiting; otherwise the client is stuck
    /// from `now` on (if it was not already).
    pub fn note_progress(&mut self, sent: bool, now: u64) {
        let waiting = !self.flow().queue.is_empty() || self.owes();
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if sent || !waiting {
            flow.stuck_since = None;
        } else if flow.stuck_since.is_none() {
            flow.stuck_since = Some(now);
        }
    }

    /// A message waits for an online client: it is stuck from `now` on,
    /// unless it already was (or until something is sent).
    pub fn note_waiting(&mut self, now: u64) {
        let flow = self.flow_mut();
        flow.stuck_since.get_or_insert(now);
    }

    /// Takes the messages of shared subscriptions that `movable` accepts
    /// and another member may still get: those queued, and QoS 1 ones
    /// sent but not acknowledged. A QoS 2 message sent once stays: only
    /// this client may complete it [MQTT-4.8.2-4].
    pub fn take_shared(&mut self, mut movable: impl FnMut(&Message) -> bool) -> Vec<Delivery> {
        let Some(flow) = self.flow.as_mut() else {
            return Vec::new();
        };
        let mut take = |d: &Delivery| d.shared && movable(&d.msg);
        let inflight = std::mem::take(&mut flow.inflight).into_iter();
        let (sent, kept): (VecDeque<_>, VecDeque<_>) =
            inflight.partition(|f| f.delivery.qos == QoS::AtLeastOnce && take(&f.delivery));
        let (queued, queue): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut flow.queue)
            .into_iter()
            .partition(|d| take(d));
        (flow.inflight, flow.queue) = (kept, queue);
        flow.inflight_bytes = flow
            .inflight
            .iter()
            .map(|f| f.delivery.msg.payload.len())
            .sum();
        flow.held = flow.inflight.iter().filter(|f| f.held).count();
        flow.queued_bytes = flow.queue.iter().map(|d| d.msg.payload.len()).sum();
        sent.into_iter().map(|f| f.delivery).chain(queued).collect()
    }

    /// Takes the connections waiting for this queue to drain.
    pub fn take_waiters(&mut self) -> Vec<(ConnKey, u32)> {
        match self.flow.as_mut() {
            Some(flow) => std::mem::take(&mut flow.waiters),
            None => Vec::new(),
        }
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
        // A message too large for even an empty queue is dropped alone:
        // evicting older messages for it would lose them for nothing.
        let fits_empty = max > 0 && (max_bytes == 0 || len <= max_bytes);
        if overflow == Overflow::DropOldest && fits_empty {
            while !self.flow().queue.is_empty() && self.queue_full(len, max, max_bytes) {
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
#[path = "session_tests.rs"]
mod tests;
