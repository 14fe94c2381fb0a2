//! Who may do what: credentials at CONNECT, the ACL file and the host's
//! authorizer for each publish and subscription, and re-checking existing
//! subscriptions when the files are reloaded or a session resumes.

use super::*;

impl Engine {
    pub(super) fn allowed(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        access: Access,
        t: &str,
    ) -> bool {
        self.verdict(client_id, username, access, t) == Verdict::Granted
    }

    pub(super) fn verdict(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        access: Access,
        t: &str,
    ) -> Verdict {
        let who = (client_id, username);
        check_access(&self.acl, &mut self.authorizer, who, access, t)
    }

    /// May session `sid` receive a message on `topic`? Asked only for
    /// subscriptions the ACL grants with some topics denied (`filtered`).
    pub(super) fn may_receive(&self, sid: SessionKey, topic: &str) -> bool {
        self.sessions
            .get(sid)
            .is_none_or(|sess| session_may_read(&self.acl, sess, topic))
    }

    /// The publisher of a message from session `sid`, kept with it if it
    /// is retained (see [`Source`]).
    pub(super) fn source_of(&self, sid: SessionKey) -> Option<Source> {
        let sess = self.sessions.get(sid)?;
        Some(Source {
            client_id: sess.client_id.clone(),
            username: sess.username.clone(),
        })
    }

    /// `check_retain_source`: takes out of `found` (retained messages about
    /// to be sent to a new subscription) those whose publisher may no
    /// longer write to their topic under the ACL and authorizer in force
    /// now (so also after a reload).
    pub(super) fn drop_revoked_retained<T>(
        &mut self,
        found: &mut Vec<T>,
        message: impl Fn(&T) -> &Arc<Message>,
    ) {
        let off = !self.config.security.check_retain_source
            || (self.acl.is_none() && self.authorizer.is_none());
        if off || found.is_empty() {
            return;
        }
        let (retained, acl, authorizer) = (&self.retained, &self.acl, &mut self.authorizer);
        found.retain(|f| {
            let m = message(f);
            let Some(src) = retained.source(&m.topic) else {
                return true;
            };
            let who = (&*src.client_id, src.username.as_deref());
            let verdict = check_access(acl, authorizer, who, Access::Publish, &m.topic);
            if verdict != Verdict::Granted {
                debug!(
                    "retained message on {} withheld: {} may no longer publish there",
                    m.topic, src.client_id
                );
            }
            verdict == Verdict::Granted
        });
    }

    /// Reloads the password and ACL files (what SIGHUP does) without
    /// dropping connections, then re-checks every subscription against the
    /// new ACL: those it no longer allows are removed. On an error the old
    /// files stay in force.
    pub fn reload(&mut self) -> Result<(), String> {
        match load_auth(&self.config) {
            Ok((passwords, acl)) => {
                self.passwords = passwords;
                self.guard.forget();
                self.acl = acl;
                info!("password and ACL files reloaded");
            }
            Err(e) => {
                error!("reload failed, keeping the previous files: {e}");
                return Err(e);
            }
        }
        self.recheck_subscriptions();
        Ok(())
    }

    /// Checks every client subscription against the ACL and authorizer in
    /// force (after a reload, or a restart with stored sessions): removes
    /// those no longer allowed and marks those with denied topics as
    /// filtered.
    pub(super) fn recheck_subscriptions(&mut self) {
        let sids: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.subscriptions().is_empty())
            .map(|(sid, _)| sid)
            .collect();
        for sid in sids {
            self.recheck_session(sid, true);
        }
    }

    /// `recheck_subscriptions` for one session (also when it is resumed).
    /// Without `revoke` (while the store is being read, when removals could
    /// not be recorded) a refused subscription is only marked `filtered`:
    /// each message is then checked, and refused.
    pub(super) fn recheck_session(&mut self, sid: SessionKey, revoke: bool) {
        let Some(sess) = self.sessions.get(sid) else {
            return;
        };
        let (id, user) = (sess.client_id.clone(), sess.username.clone());
        let subs: Vec<(Arc<str>, Grant)> = sess.subscriptions().to_vec();
        for (filter, grant) in subs {
            let asked = shared::acl_filter(&filter);
            let filtered = match self.verdict(&id, user.as_deref(), Access::Subscribe, asked) {
                Verdict::Granted => false,
                Verdict::Partial => true,
                Verdict::Refused if !revoke => true,
                Verdict::Refused => {
                    self.revoke(sid, &id, &filter);
                    continue;
                }
            };
            self.add_subscription(sid, &filter, grant, filtered);
        }
    }

    pub(super) fn revoke(&mut self, sid: SessionKey, id: &str, filter: &str) {
        info!("{id}: subscription {filter:?} removed: no longer allowed");
        self.remove_subscription(sid, filter);
        if let Some(sess) = self.sessions.get_mut(sid) {
            sess.unsubscribe(filter);
        }
        if let Some(client) = self.durable(sid) {
            let filter = filter.to_string();
            self.persist(Record::Unsub { client, filter });
        }
    }

    /// The settings of the listener that accepted connection `key`.
    pub(super) fn listener_settings(&self, key: ConnKey) -> Option<&ListenerSettings> {
        let conn = self.conns.get(key)?;
        let listener = self.config.listeners.get(usize::from(conn.listener))?;
        Some(&listener.settings)
    }

    /// `password_file` and `allow_anonymous`: None to accept, or the
    /// CONNACK code.
    /// Password checks go through the guard, which bounds the hashing
    /// work per loop iteration and remembers what it checked.
    pub(super) fn check_credentials(
        &mut self,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Option<ReasonCode> {
        let anonymous_ok = self
            .config
            .security
            .allow_anonymous
            .unwrap_or(self.passwords.is_none());
        match (username, &self.passwords) {
            (None, _) if !anonymous_ok => Some(ReasonCode::NotAuthorized),
            (Some(user), Some(file)) => {
                let ok = self.guard.check(file, user, password.unwrap_or(b""));
                (!ok).then_some(ReasonCode::BadUserNameOrPassword)
            }
            _ => None,
        }
    }

    /// May connection `key`'s client do `access` on topic `t`? Inlined:
    /// with no ACL and no authorizer (the usual local broker) every
    /// PUBLISH asks, and the answer is one test.
    #[inline]
    pub(super) fn conn_verdict(&mut self, key: ConnKey, access: Access, t: &str) -> Verdict {
        if self.authorizer.is_none() && self.acl.is_none() {
            return Verdict::Granted;
        }
        self.conn_verdict_checked(key, access, t)
    }

    fn conn_verdict_checked(&mut self, key: ConnKey, access: Access, t: &str) -> Verdict {
        let sess = self
            .conns
            .get(key)
            .and_then(|c| self.sessions.get(c.session()?));
        let Some(sess) = sess else {
            return Verdict::Refused;
        };
        let who = (&*sess.client_id, sess.username.as_deref());
        check_access(&self.acl, &mut self.authorizer, who, access, t)
    }

    /// A resumed session's subscriptions were granted, and its queued and
    /// unacknowledged messages routed, for its earlier connection (maybe
    /// another user name, or another ACL before a restart): both are
    /// checked again for the connecting user before anything is resent.
    pub(super) fn recheck_resumed(&mut self, sid: SessionKey, username: Option<&str>) {
        if self.acl.is_none() && self.authorizer.is_none() {
            return;
        }
        if let Some(sess) = self.sessions.get_mut(sid) {
            sess.username = username.map(Box::from);
        }
        self.recheck_session(sid, true);
        self.drop_unreadable(sid, username);
    }

    /// The part of `recheck_resumed` for messages: those the connecting
    /// user may not read are dropped (and recorded as done).
    pub(super) fn drop_unreadable(&mut self, sid: SessionKey, username: Option<&str>) {
        let (Some(acl), Some(sess)) = (&self.acl, self.sessions.get_mut(sid)) else {
            return;
        };
        let id = sess.client_id.clone();
        let dropped =
            sess.retain_deliveries(|m| acl.allowed(&id, username, Access::Subscribe, &m.topic));
        if dropped.is_empty() {
            return;
        }
        info!(
            "{id}: {} queued messages dropped: not readable by this user",
            dropped.len()
        );
        if let Some(client) = self.durable(sid) {
            for seq in dropped.into_iter().filter(|&s| s > 0) {
                let client = client.clone();
                self.persist(Record::Done { client, seq });
            }
        }
    }
}

/// `may_receive` for a session at hand.
pub(super) fn session_may_read(acl: &Option<Acl>, sess: &Session, topic: &str) -> bool {
    let Some(acl) = acl else {
        return true;
    };
    let user = sess.username.as_deref();
    acl.allowed(&sess.client_id, user, Access::Subscribe, topic)
}

pub(super) fn load_auth(config: &Config) -> Result<(Option<PasswordFile>, Option<Acl>), String> {
    let files = [&config.security.password_file, &config.security.acl_file];
    for path in files.into_iter().flatten() {
        if let Some(warning) = crate::auth::open_to_others(path) {
            warn!("{warning}");
        }
    }
    let passwords = match &config.security.password_file {
        Some(path) => Some(PasswordFile::load(path)?),
        None => None,
    };
    let acl = match &config.security.acl_file {
        Some(path) => Some(Acl::load(path)?),
        None => None,
    };
    if let (Some(acl), Some(path)) = (&acl, &config.security.acl_file) {
        if acl.is_empty() {
            warn!(
                "ACL file {} has no rules: every publish and subscription is refused, as in mosquitto",
                path.display()
            );
        }
    }
    Ok((passwords, acl))
}

/// The ACL file and the host's authorizer both have to allow an access;
/// only the ACL grants a subscription in part (the authorizer is asked
/// about the filter once, not about each message).
pub(super) fn check_access(
    acl: &Option<Acl>,
    authorizer: &mut Option<Authorizer>,
    (client_id, username): (&str, Option<&str>),
    access: Access,
    t: &str,
) -> Verdict {
    let verdict = match acl {
        Some(acl) => acl.verdict(client_id, username, access, t),
        None => Verdict::Granted,
    };
    if verdict == Verdict::Refused {
        return verdict;
    }
    let allowed = authorizer
        .as_mut()
        .is_none_or(|check| check(client_id, username, access, t));
    if allowed {
        verdict
    } else {
        Verdict::Refused
    }
}
