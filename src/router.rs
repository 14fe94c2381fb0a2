//! The subscription table: which sessions want a message published on a
//! topic.
//!
//! It is flat rather than a tree: exact filters live in one hash map keyed by
//! the topic itself, and wildcard filters in one hash map keyed by their
//! *anchor*: their literal prefix, the run of `+` after it and the next
//! level (`router/wild.rs`; this files the filters that begin with a wildcard too).
//! Routing a topic costs one exact lookup plus one lookup per filter shape
//! (prefix length, run length) present, whatever the number of
//! subscriptions; only filters whose literal levels line up with the topic
//! are ever compared. Subscribing and unsubscribing cost the same at any
//! number of subscriptions, per client or in all.
//!
//! A publish matching several filters of one destination is delivered
//! once, at the highest granted QoS [MQTT-3.3.5-1].

mod wild;

use crate::keyed_list::{Keyed, KeyedList, RandomState};
use crate::keys::Destination;
use crate::protocol::QoS;
use crate::topic;
use std::collections::HashMap;
use std::sync::Arc;
use wild::WildTable;

/// What a subscription was granted: its maximum QoS and, from MQTT 5
/// clients, its options and identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub qos: QoS,
    /// Not delivered to the session that published it [MQTT-3.8.3-3].
    pub no_local: bool,
    /// RETAIN as published instead of cleared [MQTT-3.3.1-12],
    /// [MQTT-3.3.1-13].
    pub retain_as_published: bool,
    /// The Subscription Identifier, 0 for none: sent with
    /// every message the subscription delivers [MQTT-3.3.4-3].
    pub id: u32,
}

impl Grant {
    /// A 3.x subscription: only a maximum QoS.
    pub fn qos(qos: QoS) -> Grant {
        Grant {
            qos,
            no_local: false,
            retain_as_published: false,
            id: 0,
        }
    }
}

impl From<QoS> for Grant {
    fn from(qos: QoS) -> Grant {
        Grant::qos(qos)
    }
}

/// [`Sub::id`] of a destination that several subscriptions with different
/// identifiers matched: the session looks them up (rare; identifiers are
/// at most 268,435,455).
pub const SEVERAL_IDS: u32 = u32::MAX;

/// One destination's interest in a filter. 12 bytes: the destination is
/// packed into 32 bits ([`Destination::pack`]), and there is one of these
/// per subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sub {
    target: u32,
    /// Subscription Identifier (0: none; [`SEVERAL_IDS`] after a merge).
    pub id: u32,
    pub qos: QoS,
    /// The ACL denies some of this filter's topics: each message is
    /// checked before delivery (see [`crate::auth::Verdict::Partial`]).
    pub filtered: bool,
    pub no_local: bool,
    pub retain_as_published: bool,
}

impl Keyed for Sub {
    type Key = u32;
    fn key(&self) -> &u32 {
        &self.target
    }
}

impl Sub {
    /// Who subscribed.
    pub fn destination(&self) -> Destination {
        Destination::unpack(self.target)
    }

    /// Folds another matching subscription of the same destination into
    /// this one: the message goes once [MQTT-3.3.5-1], at the highest QoS,
    /// unless every match is No Local, with every identifier.
    fn merge(&mut self, other: &Sub) {
        self.qos = self.qos.max(other.qos);
        // One matching subscription without denied topics is enough to
        // deliver unchecked.
        self.filtered &= other.filtered;
        self.no_local &= other.no_local;
        self.retain_as_published |= other.retain_as_published;
        if self.id != other.id && other.id != 0 {
            self.id = if self.id == 0 { other.id } else { SEVERAL_IDS };
        }
    }
}

/// The subscribers of one exact topic. Most topics have exactly one (a
/// device's own command topic, say): that one is kept inline, without a
/// heap allocation per topic. The list is boxed so that an entry of the
/// exact map stays 16 bytes.
#[derive(Debug)]
enum Subs {
    One(Sub),
    Many(Box<KeyedList<Sub>>),
}

impl Subs {
    /// Adds or updates `new.target`; true if it is new.
    fn upsert(&mut self, new: Sub) -> bool {
        match self {
            Subs::One(s) if s.target == new.target => {
                *s = new;
                false
            }
            Subs::One(s) => {
                let mut many = KeyedList::default();
                many.push(*s);
                many.push(new);
                *self = Subs::Many(Box::new(many));
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
            Subs::Many(v) => v.remove(&target).is_some(),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Subs::Many(v) if v.is_empty())
    }
}

/// Filters are stored as `Arc<str>` and handed to the subscribing session
/// ([`Router::subscribe`]), so each filter string exists once however many
/// sessions hold it.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<Arc<str>, Subs, RandomState>,
    wild: WildTable,
    count: usize,
    seen: Seen,
}

/// Per destination: (epoch, position in the output) of its last match, for
/// duplicate suppression in O(1) without clearing anything between routes.
/// One table per kind of destination, by [`Destination::packed_slot`].
#[derive(Debug, Default)]
struct Seen {
    marks: [Vec<(u32, u32)>; Destination::KINDS],
    epoch: u32,
}

impl Seen {
    /// Starts a new route: earlier marks no longer count.
    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old marks could collide with the new epoch.
            for marks in &mut self.marks {
                marks.iter_mut().for_each(|m| *m = (0, 0));
            }
            self.epoch = 1;
        }
    }

    /// Marks what `out` holds so far as matched, at its positions.
    fn mark_all(&mut self, out: &[Sub]) {
        let epoch = self.epoch;
        for (i, s) in out.iter().enumerate() {
            *self.mark(s.target) = (epoch, i as u32);
        }
    }

    /// The mark of a packed destination, grown into place on first use.
    #[inline]
    fn mark(&mut self, target: u32) -> &mut (u32, u32) {
        let (kind, index) = Destination::packed_slot(target);
        let marks = &mut self.marks[kind % Destination::KINDS];
        if marks.len() <= index {
            marks.resize(index + 1, (0, 0));
        }
        &mut marks[index]
    }
}

/// Adds or updates `new.target`; true if it is new.
fn upsert(subs: &mut KeyedList<Sub>, new: Sub) -> bool {
    match subs.get_mut(&new.target) {
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

/// Adds `new` to everyone who matched so far, or raises the QoS of its
/// earlier match.
fn collect(subs: &[Sub], seen: &mut Seen, out: &mut Vec<Sub>) {
    for s in subs {
        let epoch = seen.epoch;
        let mark = seen.mark(s.target);
        if mark.0 == epoch {
            if let Some(prev) = out.get_mut(mark.1 as usize) {
                prev.merge(s);
            }
        } else {
            *mark = (epoch, out.len() as u32);
            out.push(*s);
        }
    }
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

    /// Adds or replaces a subscription (`filtered`: see [`Sub`]). Returns
    /// whether it is new, and the filter as stored here, for the session's
    /// own list to share.
    pub fn subscribe(
        &mut self,
        to: Destination,
        filter: &str,
        grant: impl Into<Grant>,
        filtered: bool,
    ) -> (bool, Arc<str>) {
        let grant = grant.into();
        let Some(target) = to.pack() else {
            return (false, filter.into()); // unreachable: see `Sub`
        };
        let sub = Sub {
            target,
            id: grant.id,
            qos: grant.qos,
            filtered,
            no_local: grant.no_local,
            retain_as_published: grant.retain_as_published,
        };
        let (added, stored) = if topic::has_wildcard(filter) {
            let Some(entry) = self.wild.entry(filter) else {
                return (false, filter.into()); // unreachable: see `entry`
            };
            (upsert(&mut entry.subs, sub), entry.filter.clone())
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
            let remove = |e: &mut wild::WildEntry| e.subs.remove(&target).is_some();
            self.wild.update(filter, remove).unwrap_or(false)
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
        // The exact filter's subscribers are distinct (one entry each), so
        // they are taken as they are: duplicates are looked for only once
        // a wildcard filter matches too (a topic with subscribers of one
        // filter only, the common case, skips the marks: ~60 instructions
        // per message, counted with callgrind).
        match self.exact.get(topic_name) {
            Some(Subs::One(s)) => out.push(*s),
            Some(Subs::Many(subs)) => out.extend_from_slice(subs.as_slice()),
            None => {}
        }
        if self.wild.is_empty() {
            return;
        }
        let seen = &mut self.seen;
        let mut marked = false;
        self.wild.matching(topic_name, |subs| {
            if !marked {
                marked = true;
                seen.next_epoch();
                seen.mark_all(out);
            }
            collect(subs, seen, out)
        });
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
                Destination::Host(_) | Destination::Group(_) => None,
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

    /// A shared subscription group is a destination of its own: matched
    /// once per route beside a session and a host with the same index.
    #[test]
    fn a_group_is_not_the_session_or_host_with_the_same_index() {
        let mut r = Router::new();
        let group = Destination::Group(crate::keys::GroupKey::new(1).expect("small key"));
        let host = Destination::Host(HostKey::new(1).expect("small key"));
        r.subscribe(group, "a/+", QoS::ExactlyOnce, false);
        r.subscribe(group, "a/#", QoS::ExactlyOnce, false);
        r.subscribe(sess(1), "a/b", QoS::AtMostOnce, false);
        r.subscribe(host, "a/b", QoS::AtMostOnce, false);
        let mut out = Vec::new();
        r.route("a/b", &mut out);
        let mut got: Vec<_> = out.iter().map(|s| s.destination().pack()).collect();
        got.sort();
        let mut want: Vec<_> = [group, host, sess(1)].map(Destination::pack).to_vec();
        want.sort();
        assert_eq!(got, want, "each once");
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

    /// Every filter shape the table files differently, with leading
    /// wildcards, `$` topics [MQTT-4.7.2-1] and removals.
    #[test]
    fn many_subscriptions_agree_with_brute_force() {
        let mut r = Router::new();
        let mut all = Vec::new();
        for i in 0..600usize {
            let f = match i % 15 {
                0 => format!("s/{}/t", i % 17),
                1 => format!("s/+/t{}", i % 3),
                2 => format!("s/{}/#", i % 11),
                3 => "+/+/t".to_string(),
                4 => format!("s/{i}"),
                5 => format!("+/t{}", i % 7),
                6 => format!("+/t{}/#", i % 5),
                7 => ["#", "+", "+/#", "+/+", "+/+/#"][i % 5].to_string(),
                8 => format!("+/+/t{}/+", i % 4),
                9 => ["/+", "/#", "+/", "s/+/+", "s/+/#"][i % 5].to_string(),
                10 => format!("$SYS/{}", ["#", "+", "+/x", "b/#"][i % 4]),
                11 => format!("+/s/+/t{}", i % 3),
                12 => format!("s/+/t{}/+/#", i % 3),
                13 => format!("s/t{}/+", i % 5),
                _ => format!("+/+/+/t{}", i % 3),
            };
            r.subscribe(sess(i), &f, QoS::AtMostOnce, false);
            all.push((i, f));
        }
        let topics = [
            "s/3/t",
            "s/5/t1",
            "s/10",
            "x/y/t",
            "s/0/t/u",
            "s",
            "x/t3",
            "a/t1/b",
            "x/y/t2/z",
            "/",
            "/x",
            "x",
            "x/",
            "$SYS/b",
            "$SYS/b/x",
            "$SYS/x",
            "y/s/q/t1",
            "s/q/t2/w/v",
            "s/t4/a",
            "a/b/c/t0",
            "a/b/c/t0/d",
            "s/t1/+",
        ];
        let check = |r: &mut Router, all: &[(usize, String)]| {
            for t in topics {
                let want: Vec<usize> = all
                    .iter()
                    .filter(|(_, f)| topic::matches(f, t))
                    .map(|(i, _)| *i)
                    .collect();
                let got: Vec<usize> = routed(r, t).into_iter().map(|(i, _)| i).collect();
                assert_eq!(got, want, "topic {t}");
            }
        };
        check(&mut r, &all);
        let (gone, kept): (Vec<_>, Vec<_>) = all.into_iter().partition(|(i, _)| i % 3 == 0);
        for (i, f) in &gone {
            assert!(r.unsubscribe(sess(*i), f), "{f}");
        }
        assert_eq!(r.len(), kept.len());
        check(&mut r, &kept);
        for (i, f) in &kept {
            assert!(r.unsubscribe(sess(*i), f), "{f}");
        }
        assert!(r.is_empty() && r.wild.is_empty() && r.exact.is_empty());
    }

    /// Least time `f` takes over a few runs (the least is the least noisy).
    fn least_time(mut f: impl FnMut()) -> std::time::Duration {
        (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    }

    /// Routing a topic that no filter can match costs the same with 20 or
    /// 20,000 filters starting with a wildcard (they were all compared
    /// with every topic: 280x slower).
    #[test]
    fn leading_wildcard_filters_do_not_slow_unrelated_topics() {
        let time_with = |n: usize| {
            let mut r = Router::new();
            for i in 0..n {
                r.subscribe(sess(i), &format!("+/t{i}"), QoS::AtMostOnce, false);
                r.subscribe(sess(i), &format!("+/+/t{i}/#"), QoS::AtMostOnce, false);
            }
            let mut out = Vec::new();
            least_time(|| {
                for _ in 0..200 {
                    r.route("sensors/42/temp", &mut out);
                }
            })
        };
        let (few, many) = (time_with(20), time_with(20_000));
        assert!(many < few * 10, "20 filters: {few:?}, 20,000: {many:?}");
    }

    /// One destination's subscribe and unsubscribe cost the same with
    /// 1,000 or 40,000 subscriptions already in place, on one wildcard
    /// prefix and on one filter shared by all (both were scanned).
    #[test]
    fn subscribing_costs_the_same_at_any_count() {
        let time_at = |n: usize| {
            let mut r = Router::new();
            for i in 0..n {
                r.subscribe(sess(0), &format!("w/+/{i}"), QoS::AtMostOnce, false);
                r.subscribe(sess(i + 1), "shared/#", QoS::AtMostOnce, false);
            }
            let extra: Vec<String> = (0..500).map(|i| format!("w/+/x{i}")).collect();
            least_time(|| {
                for (i, f) in extra.iter().enumerate() {
                    r.subscribe(sess(0), f, QoS::AtMostOnce, false);
                    r.subscribe(sess(n + 1 + i), "shared/#", QoS::AtMostOnce, false);
                }
                for (i, f) in extra.iter().enumerate() {
                    r.unsubscribe(sess(0), f);
                    r.unsubscribe(sess(n + 1 + i), "shared/#");
                }
            })
        };
        let (few, many) = (time_at(1_000), time_at(40_000));
        assert!(many < few * 5, "at 1,000: {few:?}, at 40,000: {many:?}");
    }

    /// Routing cost grows with a topic's length, not with its square: every
    /// prefix used to be hashed from scratch.
    #[test]
    fn deep_topics_cost_linear_time() {
        let mut r = Router::new();
        r.subscribe(sess(1), "a/+", QoS::AtMostOnce, false);
        r.subscribe(sess(2), "a/a/#", QoS::AtMostOnce, false);
        let mut out = Vec::new();
        let mut time_at = |levels: usize| {
            let topic = vec!["a"; levels].join("/");
            least_time(|| r.route(&topic, &mut out))
        };
        let (short, long) = (time_at(1_000), time_at(30_000));
        assert!(
            long < short * 120,
            "1,000 levels: {short:?}, 30,000: {long:?}"
        );
        assert_eq!(routed(&mut r, "a/a/a"), vec![(2, QoS::AtMostOnce)]);
    }

    #[test]
    fn overlapping_matches_merge_options_and_identifiers() {
        let mut r = Router::new();
        let grant = |qos, no_local, id| Grant {
            qos,
            no_local,
            retain_as_published: false,
            id,
        };
        r.subscribe(sess(1), "a/+", grant(QoS::AtMostOnce, true, 7), false);
        r.subscribe(sess(1), "a/b", grant(QoS::AtLeastOnce, false, 0), false);
        r.subscribe(sess(2), "a/#", grant(QoS::AtMostOnce, true, 3), false);
        r.subscribe(sess(2), "+/b", grant(QoS::AtMostOnce, true, 4), false);
        let mut out = Vec::new();
        r.route("a/b", &mut out);
        out.sort_by_key(|s| s.target);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].qos, out[0].no_local, out[0].id),
            (QoS::AtLeastOnce, false, 7)
        );
        assert_eq!((out[1].no_local, out[1].id), (true, SEVERAL_IDS));
    }
}
