//! The subscription table: which sessions want a message published on a
//! topic.
//!
//! It is flat rather than a tree: exact filters live in one hash map keyed by
//! the topic itself, and wildcard filters in a second hash map keyed by their
//! literal prefix (everything before the first wildcard level). Routing a
//! topic of L levels costs one exact lookup plus L prefix lookups, whatever
//! the total number of subscriptions; only filters whose prefix matches the
//! topic are ever compared. Filters that begin with a wildcard (`#`, `+/x`)
//! sit in a separate root list.
//!
//! A publish matching several filters of one destination is delivered
//! once, at the highest granted QoS [MQTT-3.3.5-1].

use crate::keys::Destination;
use crate::protocol::QoS;
use crate::topic;
use std::collections::HashMap;
use std::sync::Arc;

/// One destination's interest in a filter. 8 bytes: the destination is
/// packed into 32 bits ([`Destination::pack`]), and there is one of these
/// per subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sub {
    target: u32,
    pub qos: QoS,
    /// The ACL denies some of this filter's topics: each message is
    /// checked before delivery (see [`crate::auth::Verdict::Partial`]).
    pub filtered: bool,
}

impl Sub {
    /// Who subscribed.
    pub fn destination(&self) -> Destination {
        Destination::unpack(self.target)
    }
}

/// The subscribers of one exact topic. Most topics have exactly one (a
/// device's own command topic, say): that one is kept inline, without a
/// heap allocation per topic. The list is boxed so that an entry of the
/// exact map stays 16 bytes.
#[derive(Debug)]
enum Subs {
    One(Sub),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Sub>>),
}

impl Subs {
    fn as_slice(&self) -> &[Sub] {
        match self {
            Subs::One(s) => std::slice::from_ref(s),
            Subs::Many(v) => v,
        }
    }

    /// Adds or updates `new.target`; true if it is new.
    fn upsert(&mut self, new: Sub) -> bool {
        match self {
            Subs::One(s) if s.target == new.target => {
                *s = new;
                false
            }
            Subs::One(s) => {
                *self = Subs::Many(Box::new(vec![*s, new]));
                true
            }
            Subs::Many(v) => upsert(v, new),
        }
    }

    /// Removes `target`; true if it was there.
    fn remove(&mut self, target: u32) -> bool {
        match self {
            Subs::One(s) if s.target == target => {
                *self = Subs::Many(Box::default());
                true
            }
            Subs::One(_) => false,
            Subs::Many(v) => remove(v, target),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Subs::Many(v) if v.is_empty())
    }
}

/// A wildcard filter and everyone subscribed to it: the filter is matched
/// once, however many destinations share it.
#[derive(Debug)]
struct WildEntry {
    filter: Arc<str>,
    subs: Vec<Sub>,
}

/// Filters are stored as `Arc<str>` and handed to the subscribing session
/// ([`Router::subscribe`]), so each filter string exists once however many
/// sessions hold it.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<Arc<str>, Subs>,
    wild: HashMap<Box<str>, Vec<WildEntry>>,
    root: Vec<WildEntry>,
    count: usize,
    seen: Seen,
}

/// Per destination: (epoch, position in the output) of its last match, for
/// duplicate suppression in O(1) without clearing anything between routes.
#[derive(Debug, Default)]
struct Seen {
    sessions: Vec<(u32, u32)>,
    hosts: Vec<(u32, u32)>,
    epoch: u32,
}

impl Seen {
    /// Starts a new route: earlier marks no longer count.
    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old marks could collide with the new epoch.
            self.sessions.iter_mut().for_each(|m| *m = (0, 0));
            self.hosts.iter_mut().for_each(|m| *m = (0, 0));
            self.epoch = 1;
        }
    }

    /// The mark of a packed destination, grown into place on first use.
    #[inline]
    fn mark(&mut self, target: u32) -> &mut (u32, u32) {
        let (host, index) = Destination::packed_slot(target);
        let marks = if host {
            &mut self.hosts
        } else {
            &mut self.sessions
        };
        if marks.len() <= index {
            marks.resize(index + 1, (0, 0));
        }
        &mut marks[index]
    }
}

/// Where a wildcard filter is filed: its literal levels before the first
/// wildcard, or `None` if the filter starts with one.
fn prefix(filter: &str) -> Option<&str> {
    if filter.starts_with(['+', '#']) {
        return None;
    }
    let wildcard_level = filter.find("/+").into_iter().chain(filter.find("/#")).min();
    Some(&filter[..wildcard_level.unwrap_or(filter.len())])
}

fn upsert(subs: &mut Vec<Sub>, new: Sub) -> bool {
    match subs.iter_mut().find(|s| s.target == new.target) {
        Some(s) => {
            *s = new;
            false
        }
        None => {
            subs.push(new);
            true
        }
    }
}

fn remove(subs: &mut Vec<Sub>, target: u32) -> bool {
    let before = subs.len();
    subs.retain(|s| s.target != target);
    subs.len() != before
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Number of (destination, filter) subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn wild_list(&mut self, filter: &str) -> &mut Vec<WildEntry> {
        match prefix(filter) {
            None => &mut self.root,
            Some(p) => self.wild.entry(p.into()).or_default(),
        }
    }

    /// Adds or replaces a subscription (`filtered`: see [`Sub`]). Returns
    /// whether it is new, and the filter as stored here, for the session's
    /// own list to share.
    pub fn subscribe(
        &mut self,
        to: Destination,
        filter: &str,
        qos: QoS,
        filtered: bool,
    ) -> (bool, Arc<str>) {
        let Some(target) = to.pack() else {
            return (false, filter.into()); // unreachable: see `Sub`
        };
        let sub = Sub {
            target,
            qos,
            filtered,
        };
        let (added, stored) = if topic::has_wildcard(filter) {
            let list = self.wild_list(filter);
            match list.iter_mut().find(|e| &*e.filter == filter) {
                Some(entry) => (upsert(&mut entry.subs, sub), entry.filter.clone()),
                None => {
                    let filter: Arc<str> = filter.into();
                    list.push(WildEntry {
                        filter: filter.clone(),
                        subs: vec![sub],
                    });
                    (true, filter)
                }
            }
        } else {
            match self.exact.get_key_value(filter) {
                Some((key, _)) => {
                    let key = key.clone();
                    let added = self
                        .exact
                        .get_mut(filter)
                        .is_some_and(|subs| subs.upsert(sub));
                    (added, key)
                }
                None => {
                    let key: Arc<str> = filter.into();
                    self.exact.insert(key.clone(), Subs::One(sub));
                    (true, key)
                }
            }
        };
        self.count += added as usize;
        (added, stored)
    }

    /// Removes a subscription (filters compared literally [MQTT-3.10.4-1]);
    /// true if there was one.
    pub fn unsubscribe(&mut self, to: Destination, filter: &str) -> bool {
        let Some(target) = to.pack() else {
            return false;
        };
        let removed = if topic::has_wildcard(filter) {
            let key = prefix(filter);
            let list = match key {
                None => Some(&mut self.root),
                Some(p) => self.wild.get_mut(p),
            };
            let Some(list) = list else { return false };
            let Some(pos) = list.iter().position(|e| &*e.filter == filter) else {
                return false;
            };
            let removed = remove(&mut list[pos].subs, target);
            if list[pos].subs.is_empty() {
                list.swap_remove(pos);
            }
            if let (Some(p), true) = (key, list.is_empty()) {
                self.wild.remove(p);
            }
            removed
        } else {
            let Some(subs) = self.exact.get_mut(filter) else {
                return false;
            };
            let removed = subs.remove(target);
            if subs.is_empty() {
                self.exact.remove(filter);
            }
            removed
        };
        self.count -= removed as usize;
        removed
    }

    /// Collects into `out` every destination subscribed to a filter
    /// matching `topic`, once each, with the highest QoS granted among its
    /// matches.
    pub fn route(&mut self, topic_name: &str, out: &mut Vec<Sub>) {
        out.clear();
        self.seen.next_epoch();
        let collect = |subs: &[Sub], seen: &mut Seen, out: &mut Vec<Sub>| {
            for s in subs {
                let epoch = seen.epoch;
                let mark = seen.mark(s.target);
                if mark.0 == epoch {
                    let prev = &mut out[mark.1 as usize];
                    prev.qos = prev.qos.max(s.qos);
                    // One matching subscription without denied topics is
                    // enough to deliver unchecked.
                    prev.filtered &= s.filtered;
                } else {
                    *mark = (epoch, out.len() as u32);
                    out.push(*s);
                }
            }
        };
        if let Some(subs) = self.exact.get(topic_name) {
            collect(subs.as_slice(), &mut self.seen, out);
        }
        let scan = |entries: &[WildEntry], seen: &mut Seen, out: &mut Vec<Sub>| {
            for e in entries {
                if topic::matches(&e.filter, topic_name) {
                    collect(&e.subs, seen, out);
                }
            }
        };
        if !self.root.is_empty() {
            scan(&self.root, &mut self.seen, out);
        }
        if !self.wild.is_empty() {
            let ends = topic_name
                .match_indices('/')
                .map(|(i, _)| i)
                .chain(std::iter::once(topic_name.len()));
            for end in ends {
                if let Some(entries) = self.wild.get(&topic_name[..end]) {
                    scan(entries, &mut self.seen, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{HostKey, SessionKey};

    fn sess(i: usize) -> Destination {
        Destination::Session(SessionKey::new(i).expect("small key"))
    }

    /// Routed sessions' indexes and QoS, sorted (hosts are left out).
    fn routed(r: &mut Router, topic: &str) -> Vec<(usize, QoS)> {
        let mut out = Vec::new();
        r.route(topic, &mut out);
        let mut v: Vec<_> = out
            .iter()
            .filter_map(|s| match s.destination() {
                Destination::Session(k) => Some((k.index(), s.qos)),
                Destination::Host(_) => None,
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_host_subscription_is_not_the_session_with_the_same_index() {
        let mut r = Router::new();
        let host = Destination::Host(HostKey::new(1).expect("small key"));
        r.subscribe(sess(1), "a/#", QoS::AtMostOnce, false);
        r.subscribe(host, "a/+", QoS::ExactlyOnce, false);
        r.subscribe(host, "a/b", QoS::AtLeastOnce, false);
        let mut out = Vec::new();
        r.route("a/b", &mut out);
        let got: Vec<_> = out.iter().map(|s| (s.destination(), s.qos)).collect();
        assert_eq!(
            got,
            vec![(host, QoS::ExactlyOnce), (sess(1), QoS::AtMostOnce)],
            "one delivery each, the host's at its highest QoS"
        );
        assert!(r.unsubscribe(host, "a/+") && r.unsubscribe(host, "a/b"));
        assert_eq!(routed(&mut r, "a/b"), vec![(1, QoS::AtMostOnce)]);
        assert!(!r.unsubscribe(host, "a/#"), "the session's, not the host's");
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix("#"), None);
        assert_eq!(prefix("+/x"), None);
        assert_eq!(prefix("a/+/c"), Some("a"));
        assert_eq!(prefix("a/b/#"), Some("a/b"));
        assert_eq!(prefix("/+"), Some(""));
        assert_eq!(prefix("a/b/+/d/#"), Some("a/b"));
    }

    #[test]
    fn exact_wildcard_and_root_filters() {
        let mut r = Router::new();
        r.subscribe(sess(1), "a/b", QoS::AtMostOnce, false);
        r.subscribe(sess(2), "a/+", QoS::AtLeastOnce, false);
        r.subscribe(sess(3), "#", QoS::ExactlyOnce, false);
        r.subscribe(sess(4), "a/b/#", QoS::AtLeastOnce, false);
        r.subscribe(sess(5), "/+", QoS::AtMostOnce, false);
        assert_eq!(r.len(), 5);
        assert_eq!(
            routed(&mut r, "a/b"),
            vec![
                (1, QoS::AtMostOnce),
                (2, QoS::AtLeastOnce),
                (3, QoS::ExactlyOnce),
                (4, QoS::AtLeastOnce)
            ]
        );
        assert_eq!(
            routed(&mut r, "/x"),
            vec![(3, QoS::ExactlyOnce), (5, QoS::AtMostOnce)]
        );
        assert_eq!(routed(&mut r, "$SYS/x"), vec![]);
        assert!(r.unsubscribe(sess(3), "#"));
        assert!(!r.unsubscribe(sess(3), "#"));
        assert!(
            !r.unsubscribe(sess(2), "a/b"),
            "no wildcard matching on unsubscribe"
        );
        assert_eq!(routed(&mut r, "a/c"), vec![(2, QoS::AtLeastOnce)]);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn exact_topics_go_from_one_subscriber_to_many_and_back() {
        let mut r = Router::new();
        assert!(r.subscribe(sess(1), "x", QoS::AtMostOnce, false).0);
        assert!(
            !r.subscribe(sess(1), "x", QoS::AtLeastOnce, false).0,
            "upgrade, not a new one"
        );
        let (new, shared) = r.subscribe(sess(2), "x", QoS::AtMostOnce, false);
        assert!(new);
        assert_eq!(Arc::strong_count(&shared), 2, "one string, shared");
        assert_eq!(
            routed(&mut r, "x"),
            vec![(1, QoS::AtLeastOnce), (2, QoS::AtMostOnce)]
        );
        assert!(!r.unsubscribe(sess(3), "x"));
        assert!(r.unsubscribe(sess(1), "x") && r.unsubscribe(sess(2), "x"));
        assert!(r.exact.is_empty() && r.is_empty());
        assert!(r.subscribe(sess(4), "x", QoS::ExactlyOnce, false).0);
        assert!(
            !r.unsubscribe(sess(5), "x"),
            "another session's inline entry stays"
        );
        assert_eq!(routed(&mut r, "x"), vec![(4, QoS::ExactlyOnce)]);
    }

    #[test]
    fn overlapping_filters_deliver_once_at_highest_qos() {
        let mut r = Router::new();
        r.subscribe(sess(7), "a/#", QoS::AtMostOnce, false);
        r.subscribe(sess(7), "a/b", QoS::ExactlyOnce, false);
        r.subscribe(sess(7), "+/b", QoS::AtLeastOnce, false);
        assert_eq!(routed(&mut r, "a/b"), vec![(7, QoS::ExactlyOnce)]);
        // Re-subscribing replaces the QoS instead of adding a subscription.
        assert!(!r.subscribe(sess(7), "a/b", QoS::AtMostOnce, false).0);
        assert_eq!(routed(&mut r, "a/b"), vec![(7, QoS::AtLeastOnce)]);
    }

    #[test]
    fn many_subscriptions_agree_with_brute_force() {
        let mut r = Router::new();
        let mut all = Vec::new();
        for i in 0..300usize {
            let f = match i % 5 {
                0 => format!("s/{}/t", i % 17),
                1 => format!("s/+/t{}", i % 3),
                2 => format!("s/{}/#", i % 11),
                3 => "+/+/t".to_string(),
                _ => format!("s/{i}"),
            };
            r.subscribe(sess(i), &f, QoS::AtMostOnce, false);
            all.push((i, f));
        }
        for t in ["s/3/t", "s/5/t1", "s/10", "x/y/t", "s/0/t/u", "s"] {
            let want: Vec<usize> = all
                .iter()
                .filter(|(_, f)| topic::matches(f, t))
                .map(|(i, _)| *i)
                .collect();
            let got: Vec<usize> = routed(&mut r, t).into_iter().map(|(i, _)| i).collect();
            assert_eq!(got, want, "topic {t}");
        }
    }
}
