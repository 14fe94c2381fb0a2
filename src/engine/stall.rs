//! Stalled subscribers. Flow control holds publishers back while an
//! online subscriber's queue is full, so a slow subscriber loses nothing;
//! but one that takes nothing at all (its in-flight window full with no
//! acknowledgement, or a socket that does not drain) would hold them back
//! for as long as it stays connected. So: once nothing could be sent to a
//! subscriber for `stall_timeout` while messages waited for it, it holds
//! no one back any more. It is disconnected (DISCONNECT 0x97 for MQTT 5);
//! its publishers resume; a persistent session keeps queueing offline
//! within the usual limits, dropping (and counting) past them.
//!
//! The time is measured from the first moment a message waited and none
//! could be sent, so a subscriber that stalled long before its queue
//! filled is dealt with as soon as a publisher would wait for it.

use super::*;

impl Engine {
    /// True if nothing could be sent to subscriber `sid` for
    /// `stall_timeout` while messages waited for it.
    pub(super) fn stalled(&self, sid: SessionKey) -> bool {
        let limit = millis(self.config.stall_timeout);
        let since = self.sessions.get(sid).and_then(|s| s.flow().stuck_since);
        limit > 0 && since.is_some_and(|t| self.now_ms.saturating_sub(t) >= limit)
    }

    /// Publishers wait for `sid` now: look at it again when it could have
    /// stalled (one timer entry per waited-for subscriber).
    pub(super) fn watch_stall(&mut self, sid: SessionKey) {
        let limit = millis(self.config.stall_timeout);
        if limit == 0 || !self.stall_watch.insert(sid) {
            return;
        }
        let since = self.sessions.get(sid).and_then(|s| s.flow().stuck_since);
        let at = since.unwrap_or(self.now_ms).saturating_add(limit);
        self.timers.schedule(at, Due::Session(sid));
    }

    /// A [`Due::Session`] entry: a subscriber publishers still wait for is
    /// disconnected if it has stalled, or looked at again later.
    pub(super) fn check_stall(&mut self, sid: SessionKey) {
        if !self.stall_watch.remove(&sid) {
            return;
        }
        let waited_for = self
            .sessions
            .get(sid)
            .is_some_and(|s| s.conn().is_some() && !s.flow().waiters.is_empty());
        if !waited_for {
            return;
        }
        if self.stalled(sid) {
            self.disconnect_stalled(sid);
        } else {
            self.watch_stall(sid);
        }
    }

    /// Disconnects the subscribers found stalled while a message was being
    /// routed (closing one there would publish its Will in the middle of
    /// that route).
    pub(super) fn close_stalled(&mut self) {
        for sid in std::mem::take(&mut self.stalled_subscribers) {
            self.disconnect_stalled(sid);
        }
    }

    fn disconnect_stalled(&mut self, sid: SessionKey) {
        if !self.stalled(sid) {
            return; // it took something meanwhile
        }
        let Some(key) = self.sessions.get(sid).and_then(Session::conn) else {
            return;
        };
        self.stats.stalled_subscribers += 1;
        self.close(key, Reason::Stalled(self.config.stall_timeout));
    }
}
