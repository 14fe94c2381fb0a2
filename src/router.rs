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
//! A publish matching several filters of one session is delivered once, at
//! the highest granted QoS [MQTT-3.3.5-1].

use crate::codec::QoS;
use crate::topic;
use std::collections::HashMap;
use std::sync::Arc;

/// One session's interest in a filter. 8 bytes: session keys fit in u32
/// (every session costs memory), and there is one of these per
/// subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sub {
    session: u32,
    pub qos: QoS,
    /// The ACL denies some of this filter's topics: each message is
    /// checked before delivery (see [`crate::auth::Verdict::Partial`]).
    pub filtered: bool,
}

impl Sub {
    /// The subscribed session's key.
    pub fn session(&self) -> usize {
        self.session as usize
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

    /// Adds or updates `session`; true if it is new.
    fn upsert(&mut self, new: Sub) -> bool {
        match self {
            Subs::One(s) if s.session == new.session => {
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

    /// Removes `session`; true if it was there.
    fn remove(&mut self, session: u32) -> bool {
        match self {
            Subs::One(s) if s.session == session => {
                *self = Subs::Many(Box::default());
                true
            }
            Subs::One(_) => false,
            Subs::Many(v) => remove(v, session),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Subs::Many(v) if v.is_empty())
    }
}

/// A wildcard filter and everyone subscribed to it: the filter is matched
/// once, however many sessions share it.
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
    /// Per session index: (epoch, position in the output) for duplicate
    /// suppression in O(1) without clearing anything between routes.
    seen: Vec<(u32, u32)>,
    epoch: u32,
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
    match subs.iter_mut().find(|s| s.session == new.session) {
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

fn remove(subs: &mut Vec<Sub>, session: u32) -> bool {
    let before = subs.len();
    subs.retain(|s| s.session != session);
    subs.len() != before
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Number of (session, filter) subscriptions.
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
        session: usize,
        filter: &str,
        qos: QoS,
        filtered: bool,
    ) -> (bool, Arc<str>) {
        let Ok(session) = u32::try_from(session) else {
            return (false, filter.into()); // unreachable: see `Sub`
        };
        let sub = Sub {
            session,
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
    pub fn unsubscribe(&mut self, session: usize, filter: &str) -> bool {
        let Ok(session) = u32::try_from(session) else {
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
            let removed = remove(&mut list[pos].subs, session);
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
            let removed = subs.remove(session);
            if subs.is_empty() {
                self.exact.remove(filter);
            }
            removed
        };
        self.count -= removed as usize;
        removed
    }

    /// Collects into `out` every session subscribed to a filter matching
    /// `topic`, once each, with the highest QoS granted among its matches.
    pub fn route(&mut self, topic_name: &str, out: &mut Vec<Sub>) {
        out.clear();
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old marks could collide with the new epoch.
            self.seen.iter_mut().for_each(|m| *m = (0, 0));
            self.epoch = 1;
        }
        let mut collect = |subs: &[Sub], seen: &mut Vec<(u32, u32)>, epoch: u32| {
            for s in subs {
                let sid = s.session();
                if seen.len() <= sid {
                    seen.resize(sid + 1, (0, 0));
                }
                let mark = &mut seen[sid];
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
            collect(subs.as_slice(), &mut self.seen, self.epoch);
        }
        let mut scan = |entries: &[WildEntry], seen: &mut Vec<(u32, u32)>, epoch: u32| {
            for e in entries {
                if topic::matches(&e.filter, topic_name) {
                    collect(&e.subs, seen, epoch);
                }
            }
        };
        if !self.root.is_empty() {
            scan(&self.root, &mut self.seen, self.epoch);
        }
        if !self.wild.is_empty() {
            let ends = topic_name
                .match_indices('/')
                .map(|(i, _)| i)
                .chain(std::iter::once(topic_name.len()));
            for end in ends {
                if let Some(entries) = self.wild.get(&topic_name[..end]) {
                    scan(entries, &mut self.seen, self.epoch);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(r: &mut Router, topic: &str) -> Vec<(usize, QoS)> {
        let mut out = Vec::new();
        r.route(topic, &mut out);
        let mut v: Vec<_> = out.iter().map(|s| (s.session(), s.qos)).collect();
        v.sort();
        v
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
        r.subscribe(1, "a/b", QoS::AtMostOnce, false);
        r.subscribe(2, "a/+", QoS::AtLeastOnce, false);
        r.subscribe(3, "#", QoS::ExactlyOnce, false);
        r.subscribe(4, "a/b/#", QoS::AtLeastOnce, false);
        r.subscribe(5, "/+", QoS::AtMostOnce, false);
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
        assert!(r.unsubscribe(3, "#"));
        assert!(!r.unsubscribe(3, "#"));
        assert!(
            !r.unsubscribe(2, "a/b"),
            "no wildcard matching on unsubscribe"
        );
        assert_eq!(routed(&mut r, "a/c"), vec![(2, QoS::AtLeastOnce)]);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn exact_topics_go_from_one_subscriber_to_many_and_back() {
        let mut r = Router::new();
        assert!(r.subscribe(1, "x", QoS::AtMostOnce, false).0);
        assert!(
            !r.subscribe(1, "x", QoS::AtLeastOnce, false).0,
            "upgrade, not a new one"
        );
        let (new, shared) = r.subscribe(2, "x", QoS::AtMostOnce, false);
        assert!(new);
        assert_eq!(Arc::strong_count(&shared), 2, "one string, shared");
        assert_eq!(
            routed(&mut r, "x"),
            vec![(1, QoS::AtLeastOnce), (2, QoS::AtMostOnce)]
        );
        assert!(!r.unsubscribe(3, "x"));
        assert!(r.unsubscribe(1, "x") && r.unsubscribe(2, "x"));
        assert!(r.exact.is_empty() && r.is_empty());
        assert!(r.subscribe(4, "x", QoS::ExactlyOnce, false).0);
        assert!(
            !r.unsubscribe(5, "x"),
            "another session's inline entry stays"
        );
        assert_eq!(routed(&mut r, "x"), vec![(4, QoS::ExactlyOnce)]);
    }

    #[test]
    fn overlapping_filters_deliver_once_at_highest_qos() {
        let mut r = Router::new();
        r.subscribe(7, "a/#", QoS::AtMostOnce, false);
        r.subscribe(7, "a/b", QoS::ExactlyOnce, false);
        r.subscribe(7, "+/b", QoS::AtLeastOnce, false);
        assert_eq!(routed(&mut r, "a/b"), vec![(7, QoS::ExactlyOnce)]);
        // Re-subscribing replaces the QoS instead of adding a subscription.
        assert!(!r.subscribe(7, "a/b", QoS::AtMostOnce, false).0);
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
            r.subscribe(i, &f, QoS::AtMostOnce, false);
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
