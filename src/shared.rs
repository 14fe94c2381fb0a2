//! Shared subscriptions, `$share/GROUP/FILTER` (MQTT 5 §4.8.2; also taken
//! from 3.1 and 3.1.1 clients, as mosquitto does).
//!
//! A group is named by its full filter (GROUP and FILTER together): the
//! sessions subscribed to it are its members, and it exists while it has
//! one. The router holds one entry per group, on FILTER, for
//! [`Destination::Group`](crate::keys::Destination::Group); each message
//! routed to it goes to one member, chosen by [`Groups::pick`]: round robin
//! over the members, preferring one that can take the message now.

use crate::keyed_list::{Keyed, KeyedList};
use crate::keys::{GroupKey, SessionKey};
use crate::router::Grant;
use crate::topic;
use slab::Slab;
use std::collections::HashMap;
use std::sync::Arc;

/// What every shared subscription filter starts with.
pub const PREFIX: &str = "$share/";

/// A filter that starts with `$share/` but is not a valid shared one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// The parts of a valid `$share/GROUP/FILTER`: (GROUP, FILTER).
/// `Ok(None)` for a filter that is not a shared one; `Err` for one that
/// starts with `$share/` but is not valid: an empty GROUP [MQTT-4.8.2-1],
/// one with `+` or `#`, or no `/` and FILTER after it [MQTT-4.8.2-2], or a
/// FILTER that is not a valid topic filter.
pub fn parse(filter: &str) -> Result<Option<(&str, &str)>, Invalid> {
    let Some(rest) = filter.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let (group, inner) = rest.split_once('/').ok_or(Invalid)?;
    if group.is_empty() || group.contains(['+', '#']) || !topic::valid_filter(inner) {
        return Err(Invalid);
    }
    Ok(Some((group, inner)))
}

/// The filter an ACL is asked about for a subscription: FILTER for a
/// shared one (as mosquitto does), the filter itself otherwise.
pub fn acl_filter(filter: &str) -> &str {
    match parse(filter) {
        Ok(Some((_, inner))) => inner,
        _ => filter,
    }
}

/// True for a filter that names a shared subscription (valid or not).
pub fn is_shared(filter: &str) -> bool {
    filter.starts_with(PREFIX)
}

/// One session's membership of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub sid: SessionKey,
    /// Its own QoS and Subscription Identifier [MQTT-4.8.2-3].
    pub grant: Grant,
    /// The ACL denies it some of FILTER's topics (see
    /// [`crate::router::Sub::filtered`]).
    pub filtered: bool,
}

impl Keyed for Member {
    type Key = SessionKey;
    fn key(&self) -> &SessionKey {
        &self.sid
    }
}

/// Whether a member can take a message now, as [`Groups::pick`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Online, with room in its window and output for the message.
    Ready,
    /// Online, but it would have to queue the message.
    Busy,
    /// Its client is not connected: the session would queue it.
    Offline,
    /// Must not get it (the ACL denies it the topic; not online when only
    /// online members are wanted).
    Excluded,
}

#[derive(Debug)]
struct Group {
    /// `$share/GROUP/FILTER`, shared with the members' sessions.
    filter: Arc<str>,
    members: KeyedList<Member>,
    /// Where the next round-robin search starts.
    next: usize,
}

/// Every group, by key and by full filter.
#[derive(Debug, Default)]
pub struct Groups {
    slab: Slab<Group>,
    by_filter: HashMap<Arc<str>, GroupKey>,
    /// Memberships in all groups.
    members: usize,
}

/// What [`Groups::join`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub key: GroupKey,
    /// The group is new: the router needs its entry.
    pub new_group: bool,
    /// The session was not a member yet (else its grant was replaced).
    pub new_member: bool,
    /// The full filter, as stored here, for the session to share.
    pub filter: Arc<str>,
}

impl Groups {
    /// Memberships in all groups (each one a client's subscription).
    pub fn members(&self) -> usize {
        self.members
    }

    /// Number of groups (each one an entry of the router).
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// The group of a full `$share/GROUP/FILTER` filter, if it exists.
    pub fn find(&self, filter: &str) -> Option<GroupKey> {
        self.by_filter.get(filter).copied()
    }

    /// Adds `member` to the group of `filter` (a valid shared filter),
    /// creating the group if need be; a session already in it has its
    /// grant replaced. `None` only past 2^32 groups (unreachable).
    pub fn join(&mut self, filter: &str, member: Member) -> Option<Joined> {
        if let Some(key) = self.find(filter) {
            let group = self.slab.get_mut(key.index())?;
            let new_member = match group.members.get_mut(&member.sid) {
                Some(m) => {
                    *m = member;
                    false
                }
                None => {
                    group.members.push(member);
                    true
                }
            };
            self.members += usize::from(new_member);
            let filter = group.filter.clone();
            return Some(Joined {
                key,
                new_group: false,
                new_member,
                filter,
            });
        }
        let entry = self.slab.vacant_entry();
        let key = GroupKey::new(entry.key())?;
        let filter: Arc<str> = filter.into();
        let mut members = KeyedList::default();
        members.push(member);
        entry.insert(Group {
            filter: filter.clone(),
            members,
            next: 0,
        });
        self.by_filter.insert(filter.clone(), key);
        self.members += 1;
        Some(Joined {
            key,
            new_group: true,
            new_member: true,
            filter,
        })
    }

    /// Removes session `sid` from the group of `filter`. Returns the group
    /// it left and whether that group is now gone (it had no other member:
    /// its router entry must go too); `None` if it was not a member.
    pub fn leave(&mut self, filter: &str, sid: SessionKey) -> Option<(GroupKey, bool)> {
        let key = self.find(filter)?;
        let group = self.slab.get_mut(key.index())?;
        group.members.remove(&sid)?;
        self.members -= 1;
        let gone = group.members.is_empty();
        if gone {
            self.slab.remove(key.index());
            self.by_filter.remove(filter);
        }
        Some((key, gone))
    }

    /// True if some member of group `key` satisfies `pred`.
    pub fn any_member(&self, key: GroupKey, pred: impl FnMut(&Member) -> bool) -> bool {
        let group = self.slab.get(key.index());
        group.is_some_and(|g| g.members.as_slice().iter().any(pred))
    }

    /// Chooses the member of group `key` to get the next message: round
    /// robin from where the last choice left off, taking the first
    /// [`Readiness::Ready`] member; if none is, the first busy one (it
    /// queues the message), else the first offline one (its session keeps
    /// the message until its client is back, or hands it on if it ends).
    /// `readiness` is asked about each member at most once: the cost is
    /// one call while the next member is ready, and at most the group's
    /// size.
    pub fn pick(
        &mut self,
        key: GroupKey,
        mut readiness: impl FnMut(&Member) -> Readiness,
    ) -> Option<Member> {
        let group = self.slab.get_mut(key.index())?;
        let members = group.members.as_slice();
        let n = members.len();
        let (mut busy, mut offline) = (None, None);
        for i in 0..n {
            let at = (group.next + i) % n;
            let Some(m) = members.get(at) else {
                continue;
            };
            match readiness(m) {
                Readiness::Ready => {
                    group.next = at + 1;
                    return Some(*m);
                }
                Readiness::Busy => {
                    busy.get_or_insert(at);
                }
                Readiness::Offline => {
                    offline.get_or_insert(at);
                }
                Readiness::Excluded => {}
            }
        }
        let at = busy.or(offline)?;
        group.next = at + 1;
        members.get(at).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::QoS;

    fn member(i: usize) -> Member {
        Member {
            sid: SessionKey::new(i).expect("small key"),
            grant: Grant::qos(QoS::AtLeastOnce),
            filtered: false,
        }
    }

    #[test]
    fn shared_filters_are_parsed_and_checked() {
        assert_eq!(parse("$share/g/a/+"), Ok(Some(("g", "a/+"))));
        // [MQTT-4.8.2-1] and its example: the filter is "/finance".
        assert_eq!(
            parse("$share/consumer1//finance"),
            Ok(Some(("consumer1", "/finance")))
        );
        assert_eq!(parse("a/b"), Ok(None));
        assert_eq!(parse("$share"), Ok(None));
        // [MQTT-4.8.2-1], [MQTT-4.8.2-2]
        for bad in [
            "$share//t",
            "$share/g",
            "$share/g/",
            "$share/g+/t",
            "$share/#/t",
        ] {
            assert_eq!(parse(bad), Err(Invalid), "{bad}");
        }
        assert_eq!(parse("$share/g/a/#/b"), Err(Invalid));
        assert_eq!(acl_filter("$share/g/a/#"), "a/#");
        assert_eq!(acl_filter("a/#"), "a/#");
    }

    #[test]
    fn groups_exist_while_they_have_members() {
        let mut g = Groups::default();
        let first = g.join("$share/g/t", member(1)).expect("joined");
        assert!(first.new_group && first.new_member);
        let again = g.join("$share/g/t", member(1)).expect("joined");
        assert!(!again.new_group && !again.new_member);
        let second = g.join("$share/g/t", member(2)).expect("joined");
        assert_eq!((second.key, second.new_member), (first.key, true));
        let other = g.join("$share/h/t", member(1)).expect("joined");
        assert_ne!(other.key, first.key);
        assert_eq!((g.len(), g.members()), (2, 3));
        assert_eq!(
            g.leave("$share/g/t", member(1).sid),
            Some((first.key, false))
        );
        assert_eq!(g.leave("$share/g/t", member(1).sid), None);
        assert_eq!(
            g.leave("$share/g/t", member(2).sid),
            Some((first.key, true))
        );
        assert_eq!(g.find("$share/g/t"), None);
        assert_eq!((g.len(), g.members()), (1, 1));
    }

    /// Round robin over the ready members; busy ones only when none is
    /// ready, offline ones only when none is online, excluded ones never.
    #[test]
    fn picks_go_round_and_prefer_members_with_room() {
        let mut g = Groups::default();
        let key = g.join("$share/g/t", member(0)).expect("joined").key;
        for i in 1..4 {
            g.join("$share/g/t", member(i));
        }
        let pick = |g: &mut Groups, state: &dyn Fn(usize) -> Readiness| {
            g.pick(key, |m| state(m.sid.index())).map(|m| m.sid.index())
        };
        let ready = |_| Readiness::Ready;
        let picks: Vec<_> = (0..8).map(|_| pick(&mut g, &ready)).collect();
        let want: Vec<_> = [0, 1, 2, 3, 0, 1, 2, 3].map(Some).to_vec();
        assert_eq!(picks, want);
        let one_ready = |i| {
            if i == 2 {
                Readiness::Ready
            } else {
                Readiness::Busy
            }
        };
        assert_eq!(pick(&mut g, &one_ready), Some(2));
        assert_eq!(pick(&mut g, &one_ready), Some(2));
        let busy_or_offline = |i| {
            if i % 2 == 0 {
                Readiness::Offline
            } else {
                Readiness::Busy
            }
        };
        assert_eq!(pick(&mut g, &busy_or_offline), Some(3));
        assert_eq!(pick(&mut g, &busy_or_offline), Some(1));
        let offline = |i| {
            if i == 1 {
                Readiness::Excluded
            } else {
                Readiness::Offline
            }
        };
        let picks: Vec<_> = (0..3).map(|_| pick(&mut g, &offline)).collect();
        assert_eq!(picks, vec![Some(2), Some(3), Some(0)]);
        assert_eq!(pick(&mut g, &|_| Readiness::Excluded), None);
    }
}
