//! Retained messages: the last retained message of each topic (§3.3.1.3).
//! They outlive every session [MQTT-3.1.2-7].

use crate::protocol::QoS;
use crate::session::Message;
use crate::topic;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

/// Kept in a slab so that a scan can stop at a position and resume there
/// later (see [`Retained::scan`]); the map finds a topic's slot.
#[derive(Debug, Default)]
pub struct Retained {
    by_topic: HashMap<Box<str>, usize>,
    slots: Slab<Entry>,
    /// (expiry time, slot) of the messages with a Message Expiry Interval,
    /// soonest first; an entry whose slot now holds another message is
    /// skipped when it comes up.
    expiring: BinaryHeap<Reverse<(u64, usize)>>,
    /// Payload bytes of every message held (for `$SYS`).
    payload_bytes: u64,
}

#[derive(Debug)]
struct Entry {
    msg: Arc<Message>,
    qos: QoS,
    source: Option<Source>,
}

/// The client that published a retained message, so that the message is
/// withheld once that client may no longer write to its topic (mosquitto's
/// `check_retain_source`, CVE-2018-12546). Kept here, beside the message:
/// every other message goes without it. `None` for the broker's own
/// messages ($SYS, the host's publishes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub client_id: Box<str>,
    pub username: Option<Box<str>>,
}

impl Retained {
    /// Applies a retained publish: an empty payload deletes the topic's
    /// message and is never stored [MQTT-3.3.1-10], [MQTT-3.3.1-11];
    /// anything else replaces it with its QoS [MQTT-3.3.1-5], [MQTT-3.3.1-7]
    /// and its publisher.
    pub fn set(&mut self, msg: &Arc<Message>, qos: QoS, source: Option<Source>) {
        if msg.payload.is_empty() {
            if let Some(slot) = self.by_topic.remove(&msg.topic) {
                if let Some(old) = self.slots.try_remove(slot) {
                    self.payload_bytes = self
                        .payload_bytes
                        .saturating_sub(old.msg.payload.len() as u64);
                }
            }
            return;
        }
        self.payload_bytes += msg.payload.len() as u64;
        let new = Entry {
            msg: msg.clone(),
            qos,
            source,
        };
        let slot = match self.by_topic.get(&msg.topic).copied() {
            Some(slot) => {
                if let Some(entry) = self.slots.get_mut(slot) {
                    let old = entry.msg.payload.len() as u64;
                    self.payload_bytes = self.payload_bytes.saturating_sub(old);
                    *entry = new;
                }
                slot
            }
            None => {
                let slot = self.slots.insert(new);
                self.by_topic.insert(msg.topic.clone(), slot);
                slot
            }
        };
        if msg.expires_at != 0 {
            self.expiring.push(Reverse((msg.expires_at, slot)));
        }
    }

    /// When the next retained message expires, if one does.
    pub fn next_expiry(&mut self) -> Option<u64> {
        while let Some(&Reverse((at, slot))) = self.expiring.peek() {
            if self.slots.get(slot).is_some_and(|e| e.msg.expires_at == at) {
                return Some(at);
            }
            self.expiring.pop(); // replaced or deleted since
        }
        None
    }

    /// Removes one retained message whose Message Expiry Interval has
    /// passed by `now` and returns its topic [MQTT-3.3.2-5].
    pub fn pop_expired(&mut self, now: u64) -> Option<Box<str>> {
        if self.next_expiry().is_none_or(|at| at > now) {
            return None;
        }
        let Reverse((_, slot)) = self.expiring.pop()?;
        let msg = self.slots.try_remove(slot)?.msg;
        self.by_topic.remove(&msg.topic);
        let len = msg.payload.len() as u64;
        self.payload_bytes = self.payload_bytes.saturating_sub(len);
        Some(msg.topic.clone())
    }

    /// Every retained message whose topic matches `filter` [MQTT-3.3.1-6].
    pub fn matching(&self, filter: &str, out: &mut Vec<(Arc<Message>, QoS)>) {
        let mut next = 0;
        self.scan(filter, &mut next, usize::MAX, |m, qos| {
            out.push((m.clone(), qos))
        });
    }

    /// Visits the retained messages matching `filter` in at most `budget`
    /// slots from `*next` on, and moves `*next` past them; true when the
    /// scan is complete. A message stored after the scan began is visited
    /// if it lands in a slot still ahead (it is then also delivered live:
    /// seen twice, the newer value last), else not (it arrives live).
    pub fn scan(
        &self,
        filter: &str,
        next: &mut usize,
        budget: usize,
        mut visit: impl FnMut(&Arc<Message>, QoS),
    ) -> bool {
        if !topic::has_wildcard(filter) {
            if *next == 0 {
                if let Some((m, qos)) = self.get_ref(filter) {
                    visit(m, qos);
                }
            }
            *next = 1;
            return true;
        }
        let end = self.slots.capacity();
        let stop = next.saturating_add(budget).min(end);
        for slot in *next..stop {
            if let Some(e) = self.slots.get(slot) {
                if topic::matches(filter, &e.msg.topic) {
                    visit(&e.msg, e.qos);
                }
            }
        }
        *next = stop;
        stop >= end
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Payload bytes of all retained messages.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    fn entry(&self, topic: &str) -> Option<&Entry> {
        self.slots.get(*self.by_topic.get(topic)?)
    }

    fn get_ref(&self, topic: &str) -> Option<(&Arc<Message>, QoS)> {
        self.entry(topic).map(|e| (&e.msg, e.qos))
    }

    /// Who published the retained message of `topic`.
    pub fn source(&self, topic: &str) -> Option<&Source> {
        self.entry(topic)?.source.as_ref()
    }

    /// The retained message of one topic.
    pub fn get(&self, topic: &str) -> Option<(Arc<Message>, QoS)> {
        self.get_ref(topic).map(|(m, qos)| (m.clone(), qos))
    }

    /// Every topic with a retained message.
    pub fn topics(&self) -> impl Iterator<Item = Box<str>> + '_ {
        self.by_topic.keys().cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// A scan of the retained store for a new subscription (see
/// [`Retained::scan`]): what it matches and where it is.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The filter, shared with the router (one allocation per filter).
    pub filter: Arc<str>,
    /// The QoS granted.
    pub qos: QoS,
    /// Each topic must be checked against the ACL (a partly denied filter).
    pub filtered: bool,
    /// The subscription's identifier (MQTT 5; 0: none).
    pub sub_id: u32,
    /// The next slot of the store to look at.
    pub next: usize,
}

/// A session's scans under way, oldest first, with an index by filter so
/// that a filter subscribed again restarts its scan in O(1) instead of
/// adding one: at most one scan per subscription.
#[derive(Debug, Default)]
pub struct Scans {
    list: VecDeque<Scan>,
    /// Scans taken off the front so far: the index holds positions counted
    /// from the first scan ever, which stay valid as the front goes.
    popped: u64,
    /// The filter's address (the router's shared string, kept alive by the
    /// scan) -> position. `None` until the first scan (a constant empty).
    index: Option<HashMap<usize, u64>>,
}

fn addr(filter: &Arc<str>) -> usize {
    Arc::as_ptr(filter) as *const u8 as usize
}

impl Scans {
    pub const fn new() -> Scans {
        Scans {
            list: VecDeque::new(),
            popped: 0,
            index: None,
        }
    }

    /// Starts the scan of a new subscription, or restarts the one of the
    /// same filter still under way [MQTT-3.8.4-3].
    pub fn start(&mut self, filter: Arc<str>, qos: QoS, filtered: bool, sub_id: u32) {
        let index = self.index.get_or_insert_with(HashMap::new);
        let at = index.get(&addr(&filter)).copied();
        let existing = at.and_then(|at| usize::try_from(at.checked_sub(self.popped)?).ok());
        if let Some(scan) = existing.and_then(|i| self.list.get_mut(i)) {
            (scan.qos, scan.filtered, scan.next) = (qos, filtered, 0);
            scan.sub_id = sub_id;
            return;
        }
        index.insert(addr(&filter), self.popped + self.list.len() as u64);
        self.list.push_back(Scan {
            filter,
            qos,
            filtered,
            sub_id,
            next: 0,
        });
    }

    /// Ends the scan of an unsubscribed filter: nothing more is found.
    pub fn cancel(&mut self, filter: &Arc<str>) {
        let at = self.index.as_ref().and_then(|i| i.get(&addr(filter)));
        let i = at.and_then(|&at| usize::try_from(at.checked_sub(self.popped)?).ok());
        if let Some(scan) = i.and_then(|i| self.list.get_mut(i)) {
            scan.next = usize::MAX;
        }
    }

    pub fn front(&self) -> Option<&Scan> {
        self.list.front()
    }

    pub fn front_mut(&mut self) -> Option<&mut Scan> {
        self.list.front_mut()
    }

    pub fn pop_front(&mut self) {
        if let Some(scan) = self.list.pop_front() {
            self.popped += 1;
            if let Some(index) = self.index.as_mut() {
                index.remove(&addr(&scan.filter));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scan> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Scan> {
        self.list.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message::new(topic.into(), Bytes::from_static(payload)))
    }

    #[test]
    fn a_scan_resumes_where_it_stopped() {
        let mut r = Retained::default();
        for i in 0..10 {
            r.set(&msg(&format!("a/{i}"), b"x"), QoS::AtMostOnce, None);
        }
        r.set(&msg("b", b"y"), QoS::AtMostOnce, None);
        let (mut next, mut seen) = (0, Vec::new());
        let mut steps = 0;
        while !r.scan("a/+", &mut next, 3, |m, _| seen.push(m.topic.clone())) {
            steps += 1;
        }
        assert!(steps >= 3, "{steps} steps of 3 slots");
        seen.sort();
        let want: Vec<Box<str>> = (0..10).map(|i| format!("a/{i}").into()).collect();
        assert_eq!(seen, want);
        let (mut next, mut seen) = (0, 0);
        assert!(r.scan("b", &mut next, 1, |_, _| seen += 1));
        assert!(r.scan("b", &mut next, 1, |_, _| seen += 1));
        assert_eq!(seen, 1, "an exact filter's one lookup");
    }

    #[test]
    fn set_replace_delete_and_match() {
        let mut r = Retained::default();
        r.set(&msg("a/1", b"x"), QoS::AtLeastOnce, None);
        r.set(&msg("a/2", b"y"), QoS::AtMostOnce, None);
        r.set(&msg("$SYS/v", b"1"), QoS::AtMostOnce, None);
        r.set(&msg("a/1", b"z"), QoS::ExactlyOnce, None);
        let mut out = Vec::new();
        r.matching("a/+", &mut out);
        out.sort_by(|a, b| a.0.topic.cmp(&b.0.topic));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (&out[0].0.payload[..], out[0].1),
            (&b"z"[..], QoS::ExactlyOnce)
        );
        out.clear();
        r.matching("#", &mut out);
        assert_eq!(out.len(), 2, "# does not match $SYS");
        r.set(&msg("a/1", b""), QoS::AtMostOnce, None);
        out.clear();
        r.matching("a/1", &mut out);
        assert!(out.is_empty());
        assert_eq!(r.len(), 2);
        assert_eq!(r.payload_bytes(), 2, "y and 1");
    }

    #[test]
    fn expired_messages_leave_the_store_at_their_time() {
        let mut r = Retained::default();
        let expiring = |topic: &str, at| {
            let mut m = Message::new(topic.into(), Bytes::from_static(b"x"));
            m.expires_at = at;
            Arc::new(m)
        };
        r.set(&expiring("a", 100), QoS::AtMostOnce, None);
        r.set(&expiring("b", 50), QoS::AtMostOnce, None);
        r.set(&msg("c", b"forever"), QoS::AtMostOnce, None);
        r.set(&expiring("b", 300), QoS::AtMostOnce, None); // replaced: later
        assert_eq!(r.next_expiry(), Some(100));
        assert_eq!(r.pop_expired(99), None);
        assert_eq!(r.pop_expired(100).as_deref(), Some("a"));
        assert_eq!(r.pop_expired(299), None, "b's first expiry is stale");
        assert_eq!(r.next_expiry(), Some(300));
        assert_eq!(r.pop_expired(1000).as_deref(), Some("b"));
        assert_eq!((r.next_expiry(), r.len()), (None, 1));
        assert!(r.get("c").is_some());
        assert_eq!(r.payload_bytes(), 7, "c's payload alone");
    }

    #[test]
    fn a_replaced_message_takes_its_publisher_with_it() {
        let mut r = Retained::default();
        let src = |id: &str| Source {
            client_id: id.into(),
            username: None,
        };
        r.set(&msg("a", b"1"), QoS::AtMostOnce, Some(src("one")));
        assert_eq!(r.source("a"), Some(&src("one")));
        r.set(&msg("a", b"2"), QoS::AtMostOnce, None);
        assert_eq!(r.source("a"), None, "the broker's own message");
        r.set(&msg("a", b"3"), QoS::AtMostOnce, Some(src("two")));
        r.set(&msg("a", b""), QoS::AtMostOnce, Some(src("two")));
        assert_eq!(r.source("a"), None, "deleted with its message");
    }
}
