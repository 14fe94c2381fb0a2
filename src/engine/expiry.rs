//! MQTT 5's timed ends: a Will held back by its Will Delay Interval, a
//! session that ends its Session Expiry Interval after its connection, and
//! a retained message at the end of its Message Expiry Interval. The first
//! two are filed in the timer heap as [`Due::Session`] when the connection
//! closes, and checked again when the entry comes due (a reconnect in
//! between makes the entry stale); the retained store keeps its own order
//! of expiry and one [`Due::RetainedExpiry`] entry for the soonest.

use super::*;

/// A Will waiting for its Will Delay Interval [MQTT-3.1.3-9].
#[derive(Debug)]
pub(super) struct DelayedWill {
    pub will: LastWill,
    /// When it goes, in ms on the broker's clock.
    pub at: u64,
}

impl Engine {
    /// A connection ended without DISCONNECT (or with 0x04): its Will goes
    /// now, or after its Will Delay Interval if the session outlives the
    /// connection (a clean session ends now, and its Will with it).
    pub(super) fn will_at_close(&mut self, sid: SessionKey, will: LastWill) {
        let delay = will.properties.get().and_then(|p| p.will_delay_interval);
        let clean = self.sessions.get(sid).is_none_or(|s| s.clean);
        match delay {
            Some(secs) if secs > 0 && !clean => {
                let at = self.now_ms.saturating_add(u64::from(secs) * 1000);
                self.delayed_wills.insert(sid, DelayedWill { will, at });
                self.timers.schedule(at, Due::Session(sid));
            }
            _ => self.publish_will_checked(sid, will),
        }
    }

    /// Publishes a Will if its client may still publish to its topic.
    pub(super) fn publish_will_checked(&mut self, sid: SessionKey, will: LastWill) {
        let Some(sess) = self.sessions.get(sid) else {
            return self.publish_will(will, None);
        };
        let (id, user) = (sess.client_id.clone(), sess.username.clone());
        if self.allowed(&id, user.as_deref(), Access::Publish, &will.topic) {
            let source = Source {
                client_id: id,
                username: user,
            };
            self.publish_will(will, Some(source));
        }
    }

    /// The session `sid` ends: a Will still delayed goes now.
    pub(super) fn publish_delayed_will(&mut self, sid: SessionKey) {
        if let Some(d) = self.delayed_wills.remove(&sid) {
            self.publish_will_checked(sid, d.will);
        }
    }

    /// A new connection took the session up again: the delayed Will is
    /// not sent [MQTT-3.1.3-9].
    pub(super) fn cancel_delayed_will(&mut self, sid: SessionKey) {
        self.delayed_wills.remove(&sid);
    }

    /// Sets how long a session outlives its connection. A persistent
    /// session that becomes one that ends with its connection leaves the
    /// store now: at its close it is no longer recorded.
    pub(super) fn set_session_expiry(&mut self, sid: SessionKey, expiry: u32) {
        let was_durable = self.durable(sid);
        let Some(sess) = self.sessions.get_mut(sid) else {
            return;
        };
        let changed = sess.expiry != expiry;
        sess.expiry = expiry;
        sess.clean = expiry == 0;
        match (was_durable, self.durable(sid)) {
            (Some(client), None) => self.persist(Record::SessionGone { client }),
            (_, Some(client)) if changed => self.persist_expiry(client, expiry),
            _ => {}
        }
    }

    /// Stores a persistent session's Session Expiry Interval ("never",
    /// the default of a stored session, needs no record after `Session`;
    /// a later change back to it does).
    pub(super) fn persist_expiry(&mut self, client: String, expiry: u32) {
        self.persist(Record::SessionExpiry { client, expiry });
    }

    /// A session went offline: file when its Session Expiry Interval ends
    /// (`u32::MAX` never; `persistent_client_expiration` still applies).
    pub(super) fn schedule_session_end(&mut self, sid: SessionKey) {
        let Some(sess) = self.sessions.get(sid) else {
            return;
        };
        if sess.clean || sess.expiry == u32::MAX {
            return;
        }
        let at = self.now_ms.saturating_add(u64::from(sess.expiry) * 1000);
        self.timers.schedule(at, Due::Session(sid));
    }

    /// A [`Due::Session`] entry came due: a stalled subscriber (see
    /// `stall`), the delayed Will if its time has come, and the session's
    /// end if it is still offline past its interval.
    pub(super) fn session_due(&mut self, sid: SessionKey) {
        self.check_stall(sid);
        let now = self.now_ms;
        if self.delayed_wills.get(&sid).is_some_and(|d| d.at <= now) {
            self.publish_delayed_will(sid);
        }
        let Some(sess) = self.sessions.get(sid) else {
            return;
        };
        let Some(since) = sess.offline_since.filter(|_| sess.conn().is_none()) else {
            return;
        };
        if sess.clean || sess.expiry == u32::MAX {
            return;
        }
        if since.saturating_add(u64::from(sess.expiry) * 1000) <= now {
            info!(
                "{}: session expired after {}s offline (Session Expiry Interval)",
                sess.client_id, sess.expiry
            );
            self.drop_session(sid);
        }
    }

    /// A retained message with an expiry was stored: the timer entry for
    /// the soonest expiry moves earlier if needed.
    pub(super) fn schedule_retained_expiry(&mut self) {
        let Some(at) = self.retained.next_expiry() else {
            return;
        };
        if self.retained_expiry_at.is_none_or(|t| at < t) {
            self.retained_expiry_at = Some(at);
            self.timers.schedule(at, Due::RetainedExpiry);
        }
    }

    /// Removes the retained messages whose time is up [MQTT-3.3.2-5] (from
    /// the store too), then files the next expiry.
    pub(super) fn expire_retained(&mut self) {
        if self.retained_expiry_at.is_some_and(|t| t <= self.now_ms) {
            self.retained_expiry_at = None;
        }
        while let Some(topic) = self.retained.pop_expired(self.now_ms) {
            debug!("retained message on {topic} expired");
            if self.store.is_some() {
                let deleted = Message::new(topic, bytes::Bytes::new());
                let record = persist::retain_record(&deleted, QoS::AtMostOnce, 0, None);
                self.persist(record);
            }
        }
        self.schedule_retained_expiry();
    }
}
