//! Retained messages: the last retained message of each topic (§3.3.1.3).
//! They outlive every session [MQTT-3.1.2-7].

use crate::protocol::QoS;
use crate::session::Message;
use crate::topic;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Retained {
    by_topic: HashMap<Box<str>, (Arc<Message>, QoS)>,
}

impl Retained {
    /// Applies a retained publish: an empty payload deletes the topic's
    /// message and is never stored [MQTT-3.3.1-10], [MQTT-3.3.1-11];
    /// anything else replaces it with its QoS [MQTT-3.3.1-5], [MQTT-3.3.1-7].
    pub fn set(&mut self, msg: &Arc<Message>, qos: QoS) {
        if msg.payload.is_empty() {
            self.by_topic.remove(&msg.topic);
        } else {
            self.by_topic.insert(msg.topic.clone(), (msg.clone(), qos));
        }
    }

    /// Every retained message whose topic matches `filter` [MQTT-3.3.1-6].
    pub fn matching(&self, filter: &str, out: &mut Vec<(Arc<Message>, QoS)>) {
        if !topic::has_wildcard(filter) {
            out.extend(self.by_topic.get(filter).cloned());
            return;
        }
        out.extend(
            self.by_topic
                .iter()
                .filter(|(t, _)| topic::matches(filter, t))
                .map(|(_, m)| m.clone()),
        );
    }

    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// The retained message of one topic.
    pub fn get(&self, topic: &str) -> Option<(Arc<Message>, QoS)> {
        self.by_topic.get(topic).cloned()
    }

    /// Every topic with a retained message.
    pub fn topics(&self) -> impl Iterator<Item = Box<str>> + '_ {
        self.by_topic.keys().cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
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
