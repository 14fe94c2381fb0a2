//! What the loop does on time: keep-alive and connect timeouts, `$SYS`,
//! the expiry of offline sessions and of retained messages.

use super::*;

impl Engine {
    /// Notes a timer entry gone stale, and drops the stale ones in bulk
    /// when they are most of the heap (connection churn).
    pub(super) fn forget_timer(&mut self) {
        self.timers.forget();
        if self.timers.needs_purge() {
            let conns = &self.conns;
            self.timers.purge(|at, due| match due {
                Due::Conn(key, serial) => conns
                    .get(key)
                    .is_some_and(|c| c.serial == serial && c.timer_at() == Some(at)),
                _ => true,
            });
        }
    }

    pub(super) fn fire_timers(&mut self) {
        while let Some((at, due)) = self.timers.pop_due(self.now_ms) {
            match due {
                Due::Conn(key, serial) => self.conn_timer(at, key, serial),
                Due::Sys => {
                    self.publish_sys();
                    let next = self.now_ms.saturating_add(millis(self.config.sys_interval));
                    self.timers.schedule(next, Due::Sys);
                }
                Due::SessionExpiry => {
                    if let Some(expiry) = self.config.session_expiry {
                        self.expire_sessions(expiry);
                        let next = self.now_ms.saturating_add(millis(expiry_step(expiry)));
                        self.timers.schedule(next, Due::SessionExpiry);
                    }
                }
                Due::Session(sid) => self.session_due(sid),
                Due::RetainedExpiry => self.expire_retained(),
            }
        }
    }

    /// A connection's entry came due: close it if its keep-alive or
    /// connect timeout has passed, or file its real (later) deadline.
    pub(super) fn conn_timer(&mut self, at: u64, key: ConnKey, serial: u32) {
        let conn = self.conns.get_mut(key);
        let Some(conn) = conn.filter(|c| c.serial == serial && c.timer_at() == Some(at)) else {
            self.timers.stale_popped(); // superseded or another connection
            return;
        };
        match conn.deadline(self.config.connect_timeout) {
            Some(d) if d <= self.now_ms => {
                conn.set_timer_at(None); // its entry just left the heap
                let reason = if conn.level.is_some() {
                    Reason::KeepAlive // [MQTT-3.1.2-24]
                } else {
                    Reason::ConnectTimeout
                };
                self.close(key, reason);
            }
            Some(d) => {
                conn.set_timer_at(Some(d));
                self.timers.schedule(d, Due::Conn(key, serial));
            }
            None => conn.set_timer_at(None),
        }
    }

    /// Deletes persistent sessions offline for longer than `expiry`
    /// (mosquitto's `persistent_client_expiration`).
    pub(super) fn expire_sessions(&mut self, expiry: Duration) {
        let now = self.now_ms;
        let expired: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.conn().is_none())
            .filter(|(_, s)| {
                // Strictly more whole milliseconds than `expiry`: both
                // times are truncated, so this never expires early.
                s.offline_since
                    .is_some_and(|t| Duration::from_millis(now.saturating_sub(t)) > expiry)
            })
            .map(|(sid, _)| sid)
            .collect();
        for sid in expired {
            if let Some(sess) = self.sessions.get(sid) {
                info!(
                    "{}: session expired after {expiry:?} offline",
                    sess.client_id
                );
            }
            self.drop_session(sid);
            self.stats.clients_expired += 1;
        }
    }
}

/// A duration in whole milliseconds, the unit of the broker's clock.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How often offline sessions are checked for expiry: at least every
/// minute, and several times within one expiry period.
pub(super) fn expiry_step(expiry: Duration) -> Duration {
    (expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
}
