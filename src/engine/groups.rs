//! Shared subscriptions in the broker: joining and leaving groups beside
//! ordinary subscriptions, choosing the member that gets each message, and
//! handing a leaving member's messages to the others.
//!
//! Distribution (see the README): round robin over the members whose
//! client is online, skipping those that would have to queue the message
//! while another has room; with no member online, round robin over the
//! offline ones, whose sessions keep the message. When a member's session
//! ends, its queued messages and its unacknowledged QoS 1 ones go to
//! another member; when only its client disconnects, they go to members
//! that are online, if any. A QoS 2 message sent once stays with its
//! client [MQTT-4.8.2-4] and ends with its session [MQTT-4.8.2-5].

use super::access::session_may_read;
use super::write::fits;
use super::*;
use crate::keys::GroupKey;
use crate::shared::{self, Member, Readiness};
use std::collections::HashSet;

impl Engine {
    /// Adds or replaces session `sid`'s subscription to `filter`: in the
    /// router, or for `$share/GROUP/FILTER` in its group (whose router
    /// entry on FILTER comes with its first member). Returns whether it is
    /// new and the filter as stored, for the session's own list to share;
    /// `None` for an invalid shared filter (only from a damaged store:
    /// SUBSCRIBE checks them first).
    pub(super) fn add_subscription(
        &mut self,
        sid: SessionKey,
        filter: &str,
        grant: Grant,
        filtered: bool,
    ) -> Option<(bool, Arc<str>)> {
        let inner = match shared::parse(filter) {
            Ok(None) => {
                let dest = Destination::Session(sid);
                return Some(self.router.subscribe(dest, filter, grant, filtered));
            }
            Ok(Some((_, inner))) => inner,
            Err(shared::Invalid) => return None,
        };
        let member = Member {
            sid,
            grant,
            filtered,
        };
        let joined = self.groups.join(filter, member)?;
        if joined.new_group {
            // QoS and options are the chosen member's (`deliver_shared`).
            let to = Destination::Group(joined.key);
            self.router.subscribe(to, inner, QoS::ExactlyOnce, false);
        }
        Some((joined.new_member, joined.filter))
    }

    /// Removes session `sid`'s subscription to `filter` from the router or
    /// its group (and the group's router entry with its last member); true
    /// if there was one.
    pub(super) fn remove_subscription(&mut self, sid: SessionKey, filter: &str) -> bool {
        let Ok(Some((_, inner))) = shared::parse(filter) else {
            return self.router.unsubscribe(Destination::Session(sid), filter);
        };
        match self.groups.leave(filter, sid) {
            Some((key, gone)) => {
                if gone {
                    self.router.unsubscribe(Destination::Group(key), inner);
                }
                true
            }
            None => false,
        }
    }

    /// Subscriptions as clients count them: each membership of a group is
    /// one, where the router has one entry per group.
    pub(super) fn subscription_count(&self) -> usize {
        let group_entries = self.groups.len();
        self.router.len().saturating_sub(group_entries) + self.groups.members()
    }

    /// A message routed to group `key` goes to one member, at the QoS
    /// that member was granted [MQTT-4.8.2-3], with its own Subscription
    /// Identifier. Kept out of `route`, whose ordinary deliveries are the
    /// hot path.
    #[inline(never)]
    pub(super) fn deliver_shared(&mut self, key: GroupKey, msg: &mut Routed<'_>, published: QoS) {
        if let Some(m) = self.pick_member(key, msg.message(), published, false) {
            self.deliver_to_member(m, msg, published);
        }
    }

    fn deliver_to_member(&mut self, m: Member, msg: &mut impl Held, published: QoS) {
        let qos = self.out_qos(published, m.grant.qos);
        let retain = m.grant.retain_as_published && msg.message().retain;
        self.deliver(m.sid, msg, qos, retain, m.grant.id, true);
    }

    /// The member of group `key` to get `msg` (see [`shared::Groups::pick`]):
    /// one that can take it now if there is one, never one that may not
    /// read its topic or whose MQTT 5 client takes no packet that large;
    /// `online_only` leaves out members whose client is not connected.
    fn pick_member(
        &mut self,
        key: GroupKey,
        msg: MessageView,
        published: QoS,
        online_only: bool,
    ) -> Option<Member> {
        let (sessions, conns, acl, config) = (&self.sessions, &self.conns, &self.acl, &self.config);
        let now = self.now_ms;
        self.groups.pick(key, |m| {
            let Some(sess) = sessions.get(m.sid) else {
                return Readiness::Excluded;
            };
            if m.filtered && !session_may_read(acl, sess, msg.topic) {
                return Readiness::Excluded; // a topic the ACL denies it
            }
            let Some(conn) = sess.conn().and_then(|k| conns.get(k)) else {
                return if online_only {
                    Readiness::Excluded
                } else {
                    Readiness::Offline
                };
            };
            let qos = if config.upgrade_outgoing_qos {
                m.grant.qos
            } else {
                published.min(m.grant.qos)
            };
            let copy = Copy {
                msg,
                qos,
                retain: false,
                pkid: 0,
                dup: false,
                sub_id: m.grant.id,
            };
            if !fits(conn, sess, &copy, now) {
                // Larger than its Maximum Packet Size: another member may
                // take it (MQTT 5 §4.8.2).
                return Readiness::Excluded;
            }
            // What `deliver` needs to write the message at once.
            let room = conn.out_len() < config.max_outgoing_bytes
                && !sess.owes()
                && (qos == QoS::AtMostOnce
                    || (sess.flow().queue.is_empty()
                        && sess.window_open(config.max_inflight_bytes)));
            if room {
                Readiness::Ready
            } else {
                Readiness::Busy
            }
        })
    }

    /// Session `sid`'s client disconnected, its session stays: its
    /// messages of groups that have a member online go to those members
    /// (a session taken over or a broker shutting down keeps them).
    pub(super) fn hand_over_at_disconnect(&mut self, sid: SessionKey) {
        let Some(sess) = self.sessions.get(sid) else {
            return;
        };
        let mine: HashSet<GroupKey> = member_groups(sess, &self.groups).collect();
        if mine.is_empty() {
            return;
        }
        // The groups with a member online, among those the session's
        // messages came through (each group looked at once).
        let (sessions, conns) = (&self.sessions, &self.conns);
        let online = |m: &Member| {
            let sess = sessions.get(m.sid);
            sess.and_then(Session::conn)
                .is_some_and(|k| conns.get(k).is_some())
        };
        let (mut routes, mut seen, mut open) = (Vec::new(), HashSet::new(), HashSet::new());
        let flow = sess.flow();
        let sent = flow.inflight.iter().map(|f| &f.delivery);
        for d in sent.chain(flow.queue.iter()).filter(|d| d.shared) {
            let router = &mut self.router;
            for key in groups_routing(router, &mut routes, &d.msg.topic, &mine) {
                if seen.insert(key) && self.groups.any_member(key, online) {
                    open.insert(key);
                }
            }
        }
        if open.is_empty() {
            return;
        }
        let (router, sessions) = (&mut self.router, &mut self.sessions);
        let taken = sessions.get_mut(sid).map_or_else(Vec::new, |sess| {
            sess.take_shared(|m| {
                groups_routing(router, &mut routes, &m.topic, &open)
                    .next()
                    .is_some()
            })
        });
        let client = self.durable(sid);
        for d in taken {
            if let (Some(client), true) = (&client, d.seq > 0) {
                let client = client.clone();
                self.persist(Record::Done { client, seq: d.seq });
            }
            let to = groups_routing(&mut self.router, &mut routes, &d.msg.topic, &open).next();
            let mut msg = d.msg;
            match to.and_then(|key| self.pick_member(key, msg.view(), d.qos, true)) {
                Some(m) => self.deliver_to_member(m, &mut msg, d.qos),
                // Every online member refuses it (the ACL): it stays.
                None => self.deliver(sid, &mut msg, d.qos, d.retain, d.sub_id, true),
            }
        }
    }

    /// Session `sess` (key `sid`, out of the table) ended: its
    /// subscriptions go, and its messages of groups that still have
    /// members go to one of them each; QoS 2 ones already sent go with the
    /// session [MQTT-4.8.2-5].
    pub(super) fn end_subscriptions(&mut self, sid: SessionKey, sess: &mut Session) {
        let mine: Vec<GroupKey> = member_groups(sess, &self.groups).collect();
        for (filter, _) in sess.subscriptions() {
            self.remove_subscription(sid, filter);
        }
        // Those left with members: the same keys (a key is reused only
        // by a group made later).
        let left: HashSet<GroupKey> = mine
            .into_iter()
            .filter(|&key| self.groups.any_member(key, |_| true))
            .collect();
        if left.is_empty() {
            return;
        }
        let (router, mut routes) = (&mut self.router, Vec::new());
        let taken = sess.take_shared(|m| {
            groups_routing(router, &mut routes, &m.topic, &left)
                .next()
                .is_some()
        });
        for d in taken {
            let to = groups_routing(&mut self.router, &mut routes, &d.msg.topic, &left).next();
            let mut msg = d.msg;
            if let Some(m) = to.and_then(|key| self.pick_member(key, msg.view(), d.qos, false)) {
                self.deliver_to_member(m, &mut msg, d.qos);
            }
        }
    }
}

/// The groups session `sess` is a member of.
fn member_groups<'a>(
    sess: &'a Session,
    groups: &'a shared::Groups,
) -> impl Iterator<Item = GroupKey> + 'a {
    let subs = sess.subscriptions().iter();
    subs.filter(|(filter, _)| shared::is_shared(filter))
        .filter_map(|(filter, _)| groups.find(filter))
}

/// The groups among `among` that `topic` is routed to, found with the
/// router (what a publish costs, however many groups the session is in).
fn groups_routing<'a>(
    router: &mut Router,
    routes: &'a mut Vec<Sub>,
    topic: &str,
    among: &'a HashSet<GroupKey>,
) -> impl Iterator<Item = GroupKey> + 'a {
    router.route(topic, routes);
    routes.iter().filter_map(|s| match s.destination() {
        Destination::Group(key) if among.contains(&key) => Some(key),
        _ => None,
    })
}
