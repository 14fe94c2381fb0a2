//! Retained messages: the last retained message of each topic (§3.3.1.3).
//! They outlive every session [MQTT-3.1.2-7].

use crate::protocol::QoS;
use crate::session::Message;
use crate::topic;
use slab::Slab;
use std::collections::HashMap;
use std::sync::Arc;

/// Kept in a slab so that a scan can stop at a position and resume there
/// later (see [`Retained::scan`]); the map finds a topic's slot.
#[derive(Debug, Default)]
pub struct Retained {
    by_topic: HashMap<Box<str>, usize>,
    slots: Slab<(Arc<Message>, QoS)>,
}

impl Retained {
    /// Applies a retained publish: an empty payload deletes the topic's
    /// message and is never stored [MQTT-3.3.1-10], [MQTT-3.3.1-11];
    /// anything else replaces it with its QoS [MQTT-3.3.1-5], [MQTT-3.3.1-7].
    pub fn set(&mut self, msg: &Arc<Message>, qos: QoS) {
        if msg.payload.is_empty() {
            if let Some(slot) = self.by_topic.remove(&msg.topic) {
                self.slots.try_remove(slot);
            }
            return;
        }
        match self
            .by_topic
            .get(&msg.topic)
            .and_then(|&s| self.slots.get_mut(s))
        {
            Some(entry) => *entry = (msg.clone(), qos),
            None => {
                let slot = self.slots.insert((msg.clone(), qos));
                self.by_topic.insert(msg.topic.clone(), slot);
            }
        }
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
            if let Some((m, qos)) = self.slots.get(slot) {
                if topic::matches(filter, &m.topic) {
                    visit(m, *qos);
                }
            }
        }
        *next = stop;
        stop >= end
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn get_ref(&self, topic: &str) -> Option<(&Arc<Message>, QoS)> {
        let slot = *self.by_topic.get(topic)?;
        self.slots.get(slot).map(|(m, qos)| (m, *qos))
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
        })
    }

    #[test]
    fn a_scan_resumes_where_it_stopped() {
        let mut r = Retained::default();
        for i in 0..10 {
            r.set(&msg(&format!("a/{i}"), b"x"), QoS::AtMostOnce);
        }
        r.set(&msg("b", b"y"), QoS::AtMostOnce);
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
        r.set(&msg("a/1", b"x"), QoS::AtLeastOnce);
        r.set(&msg("a/2", b"y"), QoS::AtMostOnce);
        r.set(&msg("$SYS/v", b"1"), QoS::AtMostOnce);
        r.set(&msg("a/1", b"z"), QoS::ExactlyOnce);
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
        r.set(&msg("a/1", b""), QoS::AtMostOnce);
        out.clear();
        r.matching("a/1", &mut out);
        assert!(out.is_empty());
        assert_eq!(r.len(), 2);
    }
}
