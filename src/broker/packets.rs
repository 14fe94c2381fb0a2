//! What each packet from a client does: CONNECT (its checks, the takeover
//! of an existing session, the resume), PUBLISH, SUBSCRIBE, UNSUBSCRIBE,
//! the acknowledgements, PINGREQ and DISCONNECT.

use super::*;

impl Broker {
    pub(super) fn handle(&mut self, key: ConnKey, packet: Packet) -> Result<(), Reason> {
        let Some(conn) = self.conns.get(key) else {
            return Ok(());
        };
        let sid = match (conn.session(), packet) {
            (None, Packet::Connect(c)) => return self.on_connect(key, *c),
            (Some(_), Packet::Connect(_)) => {
                return Err(Reason::ProtocolError(Violation::SecondConnect)); // [MQTT-3.1.0-2]
            }
            (None, _) => return Err(Reason::ProtocolError(Violation::FirstPacketNotConnect)), // [MQTT-3.1.0-1]
            (Some(sid), Packet::Publish(p)) => return self.on_publish(key, sid, p),
            (Some(sid), Packet::Subscribe(s)) => {
                return self.on_subscribe(key, sid, s.pkid, s.filters)
            }
            (Some(sid), Packet::Unsubscribe(u)) => {
                return self.on_unsubscribe(key, sid, u.pkid, u.filters)
            }
            (Some(sid), Packet::PubAck(Ack { pkid, .. })) => {
                let done = self.session(sid)?.puback(pkid);
                self.persist_done(sid, done.as_ref());
                if done.is_none() {
                    self.check_ack(sid, pkid, AckKind::PubAck)?;
                    debug!(
                        "{}: PUBACK for unknown id {pkid}",
                        self.session(sid)?.client_id
                    );
                }
                sid
            }
            (Some(sid), Packet::PubRec(Ack { pkid, .. })) => {
                let (known, released) = self.session(sid)?.pubrec(pkid);
                if let (Some(seq), Some(client)) = (released, self.durable(sid)) {
                    self.persist(Record::Released { client, seq });
                }
                if !known {
                    self.check_ack(sid, pkid, AckKind::PubRec)?;
                    debug!(
                        "{}: PUBREC for unknown id {pkid}",
                        self.session(sid)?.client_id
                    );
                }
                self.reply(key, |out, level| {
                    protocol::encode_ack(out, level, AckKind::PubRel, pkid, ReasonCode::Success)
                });
                sid
            }
            (Some(sid), Packet::PubComp(Ack { pkid, .. })) => {
                let done = self.session(sid)?.pubcomp(pkid);
                self.persist_done(sid, done.as_ref());
                if done.is_none() {
                    self.check_ack(sid, pkid, AckKind::PubComp)?;
                    debug!(
                        "{}: PUBCOMP for unknown id {pkid}",
                        self.session(sid)?.client_id
                    );
                }
                sid
            }
            (Some(sid), Packet::PubRel(Ack { pkid, .. })) => {
                // Unknown ids are answered too: normal after a reconnect.
                let was_pending = self.session(sid)?.qos2_remove(pkid);
                if let (true, Some(client)) = (was_pending, self.durable(sid)) {
                    self.persist(Record::Qos2Rel { client, pkid });
                }
                // [MQTT-4.3.3-2]
                self.reply(key, |out, level| {
                    protocol::encode_ack(out, level, AckKind::PubComp, pkid, ReasonCode::Success)
                });
                return Ok(());
            }
            (Some(_), Packet::PingReq) => {
                self.reply(key, |out, _| protocol::encode_pingresp(out)); // [MQTT-3.12.4-1]
                return Ok(());
            }
            (Some(_), Packet::Disconnect(_)) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.will = None; // [MQTT-3.14.4-3]
                }
                return Err(Reason::Disconnect);
            }
            // Server-to-client packets never decode here; AUTH needs MQTT 5.
            (
                Some(_),
                p @ (Packet::ConnAck(_)
                | Packet::SubAck(_)
                | Packet::UnsubAck(_)
                | Packet::PingResp
                | Packet::Auth(_)),
            ) => return Err(Reason::ProtocolError(Violation::UnexpectedPacket(p.name()))),
        };
        // An ack freed a slot in the in-flight window.
        self.pump(sid);
        Ok(())
    }

    /// An ack that completed nothing: a protocol error if a message of
    /// another kind or stage is in flight under its id (mosquitto closes
    /// too), else an ack for an unknown id, ignored.
    pub(super) fn check_ack(
        &mut self,
        sid: SessionKey,
        pkid: u16,
        ack: AckKind,
    ) -> Result<(), Reason> {
        if self.session(sid)?.ack_fits(pkid, ack) {
            return Ok(());
        }
        let name = match ack {
            AckKind::PubAck => "PUBACK",
            AckKind::PubRec => "PUBREC",
            AckKind::PubRel => "PUBREL",
            AckKind::PubComp => "PUBCOMP",
        };
        Err(Reason::ProtocolError(Violation::WrongAck(name, pkid)))
    }

    pub(super) fn session(&mut self, sid: SessionKey) -> Result<&mut Session, Reason> {
        self.sessions
            .get_mut(sid)
            .ok_or(Reason::Internal("connection without session"))
    }

    /// Appends a reply to a connection's output, at its protocol level.
    pub(super) fn reply(
        &mut self,
        key: ConnKey,
        write: impl FnOnce(&mut bytes::BytesMut, ProtocolLevel),
    ) {
        if let Some(conn) = self.conns.get_mut(key) {
            let level = conn.level.unwrap_or(ProtocolLevel::V311);
            write(conn.wbuf(), level);
            mark_dirty(conn, key, &mut self.dirty);
        }
    }

    pub(super) fn on_connect(&mut self, key: ConnKey, c: protocol::Connect) -> Result<(), Reason> {
        let level = match c.level {
            Some(level @ (ProtocolLevel::V31 | ProtocolLevel::V311)) => level,
            // [MQTT-3.1.2-2]; MQTT 5 is not served yet.
            other => {
                let unsupported = ReasonCode::UnsupportedProtocolVersion;
                let why = match other {
                    Some(ProtocolLevel::V5) => "MQTT 5 is not served yet",
                    _ => "unknown protocol level",
                };
                return self.refuse(key, unsupported, &c.client_id, why);
            }
        };
        if let Some(will) = &c.will {
            if !topic::valid_name(&will.topic) {
                return Err(Reason::ProtocolError(Violation::InvalidWillTopic)); // [MQTT-3.1.4-1]
            }
            self.check_depth(&will.topic, |max| Violation::TopicTooDeep {
                max,
                will: true,
            })?;
            if self.oversize(will.payload.len()) {
                // As mosquitto (07-will-oversize-payload).
                let why = "Will payload over message_size_limit";
                return self.refuse(key, ReasonCode::NotAuthorized, &c.client_id, why);
            }
        }
        let max_ka = self.config.max_keepalive;
        if max_ka > 0 && (c.keep_alive == 0 || c.keep_alive > max_ka) {
            // MQTT 3.x cannot tell the client a keep-alive; mosquitto refuses.
            let why = format!(
                "keep-alive {}s (0: none) not within max_keepalive {max_ka}s",
                c.keep_alive
            );
            return self.refuse(
                key,
                ReasonCode::ClientIdentifierNotValid,
                &c.client_id,
                &why,
            );
        }
        let mut client_id = c.client_id;
        if client_id.is_empty() {
            // MQTT 3.1 has no empty ids; 3.1.1 only with CleanSession 1.
            if level == ProtocolLevel::V31
                || !c.clean_session
                || !self.config.security.allow_zero_length_client_id
            {
                let invalid = ReasonCode::ClientIdentifierNotValid;
                let why = if level == ProtocolLevel::V31 {
                    "empty client id from an MQTT 3.1 client"
                } else if !c.clean_session {
                    "empty client id with CleanSession 0"
                } else {
                    "empty client id (allow_zero_length_clientid false)"
                };
                return self.refuse(key, invalid, "", why); // [MQTT-3.1.3-8], [MQTT-3.1.3-9]
            }
            client_id = self.assign_client_id(); // [MQTT-3.1.3-6]
        }
        if let Some(prefix) = &self.config.client_id_prefix {
            if !client_id.starts_with(prefix.as_str()) {
                let why = "client id not allowed by clientid_prefixes";
                return self.refuse(key, ReasonCode::ClientIdentifierNotValid, &client_id, why);
            }
        }
        if let Some(code) = self.check_credentials(c.username.as_deref(), c.password.as_deref()) {
            let why = match code {
                ReasonCode::BadUserNameOrPassword => "bad user name or password",
                _ => "anonymous clients not allowed",
            };
            return self.refuse(key, code, &client_id, why);
        }
        if let Some(check) = self.authenticator.as_mut() {
            let Some(conn) = self.conns.get(key) else {
                return Ok(());
            };
            let decision = check(&Credentials {
                client_id: &client_id,
                username: c.username.as_deref(),
                password: c.password.as_deref(),
                addr: conn.addr,
            });
            match decision {
                AuthDecision::Accept => {}
                AuthDecision::BadCredentials => {
                    let why = "bad credentials (the host's authenticator)";
                    return self.refuse(key, ReasonCode::BadUserNameOrPassword, &client_id, why);
                }
                AuthDecision::NotAuthorized => {
                    let why = "not authorized (the host's authenticator)";
                    return self.refuse(key, ReasonCode::NotAuthorized, &client_id, why);
                }
            }
        }
        if self
            .listener_settings(key)
            .is_some_and(|s| s.use_username_as_client_id)
        {
            match c.username.as_deref() {
                Some(user) if !user.is_empty() => client_id = user.to_string(),
                _ => {
                    let why = "use_username_as_clientid needs a user name";
                    return self.refuse(key, ReasonCode::NotAuthorized, &client_id, why);
                }
            }
        }
        // Only now that the CONNECT passed every check: take over
        // [MQTT-3.1.4-2]. The old connection's Will is published.
        if let Some(sid) = self.sessions.find(&client_id) {
            if let Some(old) = self.sessions.get(sid).and_then(Session::conn) {
                self.close(old, Reason::TakenOver);
            }
        }
        let existing = self.sessions.find(&client_id);
        let (sid, present) = match existing {
            Some(sid) if !c.clean_session => (sid, true), // [MQTT-3.1.2-4]
            Some(sid) => {
                self.drop_session(sid); // [MQTT-3.1.2-6]
                (self.new_session(client_id.into(), true), false)
            }
            None => (self.new_session(client_id.into(), c.clean_session), false),
        };
        if present {
            self.recheck_resumed(sid, c.username.as_deref());
        }
        let (Some(conn), Some(sess)) = (self.conns.get_mut(key), self.sessions.get_mut(sid)) else {
            return Ok(());
        };
        conn.level = Some(level);
        conn.set_session(sid);
        conn.will = c.will.map(Box::new);
        conn.keep_alive = c.keep_alive;
        sess.set_conn(Some(key));
        sess.start_window(self.config.max_inflight);
        sess.offline_since = None;
        sess.clean = c.clean_session;
        sess.username = c.username.map(String::into_boxed_str);
        // Keep Alive may be due before the connect timeout entry.
        if let Some(at) = conn.deadline(self.config.connect_timeout) {
            if conn.timer_at.is_none_or(|t| at < t) {
                if conn.timer_at.is_some() {
                    self.timers.forget();
                }
                conn.timer_at = Some(at);
                self.timers.schedule(at, Due::Conn(key, conn.serial));
            }
        }
        info!(
            "{}: {} connected (clean session {}, keep alive {}s{}{})",
            conn.addr,
            sess.client_id,
            c.clean_session,
            c.keep_alive,
            sess.username
                .as_deref()
                .map(|u| format!(", user {u}"))
                .unwrap_or_default(),
            if present { ", session resumed" } else { "" }
        );
        // MQTT 3.1 has no Session Present flag.
        let sp = present && level == ProtocolLevel::V311;
        let accepted = ReasonCode::Success;
        // [MQTT-3.2.0-1], [MQTT-3.1.4-4]
        protocol::encode_connack(conn.wbuf(), level, sp, accepted, &Properties::NONE);
        mark_dirty(conn, key, &mut self.dirty);
        self.stats.clients_connected += 1;
        self.stats.connects_total += 1;
        self.clients_maximum = self.clients_maximum.max(self.stats.clients_connected);
        if let Some(cb) = self.on_event.as_mut() {
            cb(&Event::Connected {
                client_id: &sess.client_id,
                addr: conn.addr,
                username: sess.username.as_deref(),
            });
        }
        // [MQTT-4.4.0-1]: unacknowledged PUBLISHes (DUP=1 [MQTT-3.3.1-1])
        // and PUBRELs, in their original order.
        for f in &sess.flow().inflight {
            match f.stage {
                Stage::Sent => {
                    let d = &f.delivery;
                    let flags = PublishFlags {
                        qos: d.qos,
                        pkid: f.pkid,
                        dup: true,
                        retain: d.retain,
                    };
                    let (topic, payload) = (&d.msg.topic, &d.msg.payload);
                    let none = &Properties::NONE;
                    protocol::encode_publish(conn.wbuf(), level, topic, payload, none, flags);
                    self.stats.messages_sent += 1;
                }
                Stage::Released => {
                    let (rel, ok) = (AckKind::PubRel, ReasonCode::Success);
                    protocol::encode_ack(conn.wbuf(), level, rel, f.pkid, ok);
                }
            }
        }
        // Stored at every connect, so a restart can check the session's
        // subscriptions under the right user name.
        if let Some(client) = self.durable(sid) {
            let username = self.sessions.get(sid).and_then(|s| s.username.as_deref());
            let username = username.map(str::to_string);
            self.persist(Record::SessionUser { client, username });
        }
        self.pump(sid);
        Ok(())
    }

    /// Answers a CONNECT with a non-zero return code; the connection then
    /// closes [MQTT-3.2.2-5] and nothing else it sent is processed
    /// [MQTT-3.1.4-5].
    ///
    /// The CONNACK is in 3.x form whatever the CONNECT's level: until MQTT 5
    /// is served, a version 5 client is refused as mosquitto does.
    pub(super) fn refuse(
        &mut self,
        key: ConnKey,
        code: ReasonCode,
        client_id: &str,
        why: &str,
    ) -> Result<(), Reason> {
        if let Some(conn) = self.conns.get(key) {
            let id = if client_id.is_empty() {
                "no client id"
            } else {
                client_id
            };
            info!(
                "{} ({id}): refused with CONNACK code {}: {why}",
                conn.addr,
                code.v3_connack_code()
            );
        }
        self.reply(key, |out, _| {
            let v3 = ProtocolLevel::V311;
            protocol::encode_connack(out, v3, false, code, &Properties::NONE) // [MQTT-3.2.2-4]
        });
        Err(Reason::Refused(code))
    }

    pub(super) fn assign_client_id(&mut self) -> String {
        loop {
            self.next_client_id += 1;
            let prefix = &self.config.security.auto_id_prefix;
            let id = format!("{prefix}{:x}-{}", std::process::id(), self.next_client_id);
            if self.sessions.find(&id).is_none() {
                return id;
            }
        }
    }

    pub(super) fn new_session(&mut self, client_id: Box<str>, clean: bool) -> SessionKey {
        let sid = self.sessions.insert(Session::new(client_id, clean));
        if let Some(client) = self.durable(sid) {
            self.persist(Record::Session { client });
        }
        sid
    }

    pub(super) fn drop_session(&mut self, sid: SessionKey) {
        if self.sessions.get(sid).is_none() {
            return;
        }
        if let Some(client) = self.durable(sid) {
            self.persist(Record::SessionGone { client });
        }
        let Some(sess) = self.sessions.remove(sid) else {
            return;
        };
        for (filter, _) in sess.subscriptions() {
            self.router.unsubscribe(Destination::Session(sid), filter);
        }
    }

    pub(super) fn on_publish(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
        p: Publish,
    ) -> Result<(), Reason> {
        if !topic::valid_name(&p.topic) {
            return Err(Reason::ProtocolError(Violation::InvalidTopicName)); // [MQTT-3.3.2-2], [MQTT-4.7.3-1]
        }
        self.check_depth(&p.topic, |max| Violation::TopicTooDeep { max, will: false })?;
        self.stats.messages_received += 1;
        let (qos, pkid) = (p.qos, p.pkid);
        // A payload over `message_size_limit` is acknowledged and dropped,
        // as in mosquitto (02-subpub-qos1-oversize-payload).
        let oversize = self.oversize(p.payload.len());
        if oversize {
            debug!(
                "dropping a PUBLISH to {}: payload over message_size_limit",
                p.topic
            );
        }
        // QoS 2, method B: deliver now, remember the id until PUBREL so a
        // resent PUBLISH is not delivered again [MQTT-4.3.3-2].
        let fresh = !oversize && (qos != QoS::ExactlyOnce || self.session(sid)?.qos2_insert(pkid));
        if let (true, QoS::ExactlyOnce, Some(client)) = (fresh, qos, self.durable(sid)) {
            self.persist(Record::Qos2In { client, pkid });
        }
        if fresh {
            if p.topic.starts_with("$SYS")
                || self.conn_verdict(key, Access::Publish, &p.topic) != Verdict::Granted
            {
                // Not allowed (or the broker's own namespace, as in
                // mosquitto): acknowledged and dropped [MQTT-3.3.5-2].
                debug!("dropping a PUBLISH to {} (not allowed)", p.topic);
            } else {
                let msg = Arc::new(Message {
                    topic: p.topic,
                    payload: p.payload,
                });
                if p.retain {
                    self.set_retained(&msg, qos);
                }
                self.publisher = Some(key);
                self.route(&msg, qos);
                self.publisher = None;
            }
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.reply(key, |o, level| {
                protocol::encode_ack(o, level, AckKind::PubAck, pkid, ReasonCode::Success)
            }),
            QoS::ExactlyOnce => self.reply(key, |o, level| {
                protocol::encode_ack(o, level, AckKind::PubRec, pkid, ReasonCode::Success)
            }),
        }
        Ok(())
    }

    /// True if a payload of `len` bytes is over `message_size_limit`.
    pub(super) fn oversize(&self, len: usize) -> bool {
        let limit = self.config.message_size_limit;
        limit > 0 && len > limit
    }

    /// Stores (or, with an empty payload, deletes) a topic's retained
    /// message, durably when persistence is on.
    pub(super) fn set_retained(&mut self, msg: &Arc<Message>, qos: QoS) {
        self.retained.set(msg, qos);
        if self.store.is_some() {
            self.persist(Record::Retain {
                topic: msg.topic.to_string(),
                qos: qos as u8,
                payload: msg.payload.to_vec(),
            });
        }
    }

    /// Records that a stored message left its session (acknowledged or
    /// dropped).
    pub(super) fn persist_done(&mut self, sid: SessionKey, done: Option<&Inflight>) {
        if let (Some(f), Some(client)) = (done, self.durable(sid)) {
            self.persist(Record::Done {
                client,
                seq: f.delivery.seq,
            });
        }
    }

    pub(super) fn publish_will(&mut self, will: LastWill) {
        let msg = Arc::new(Message {
            topic: will.topic,
            payload: will.payload,
        });
        if will.retain {
            self.set_retained(&msg, will.qos); // [MQTT-3.1.2-17]
        }
        self.route(&msg, will.qos);
    }

    pub(super) fn on_subscribe(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
        pkid: u16,
        filters: Vec<(String, SubscriptionOptions)>,
    ) -> Result<(), Reason> {
        // The whole packet is refused if any filter is invalid (mosquitto
        // closes too; 3.1.1 gives no other answer for a malformed filter).
        if let Some((f, _)) = filters.iter().find(|(f, _)| !topic::valid_filter(f)) {
            let invalid = Violation::InvalidTopicFilter(f.clone());
            return Err(Reason::ProtocolError(invalid));
        }
        for (f, _) in &filters {
            self.check_depth(f, Violation::FilterTooDeep)?;
        }
        // Denied filters get 0x80 and are not subscribed [MQTT-3.8.4-5].
        // A filter granted with some topics denied is subscribed `filtered`.
        let filters: Vec<(String, Option<QoS>, bool)> = filters
            .into_iter()
            .map(
                |(f, o)| match self.conn_verdict(key, Access::Subscribe, &f) {
                    Verdict::Granted => (f, Some(o.qos), false),
                    Verdict::Partial => (f, Some(o.qos), true),
                    Verdict::Refused => (f, None, false),
                },
            )
            .collect();
        let mut codes = Vec::with_capacity(filters.len());
        let mut scans = Vec::with_capacity(filters.len());
        for (filter, qos, filtered) in &filters {
            match qos {
                Some(qos) => {
                    self.session(sid)?;
                    let subscribed =
                        self.router
                            .subscribe(Destination::Session(sid), filter, *qos, *filtered); // [MQTT-3.8.4-3]
                    let (_, stored) = subscribed;
                    scans.push((stored.clone(), *qos, *filtered));
                    self.session(sid)?.subscribe(stored, *qos);
                    if let Some(client) = self.durable(sid) {
                        let (filter, qos) = (filter.clone(), *qos as u8);
                        self.persist(Record::Sub {
                            client,
                            filter,
                            qos,
                        });
                    }
                    codes.push(ReasonCode::granted(*qos)); // [MQTT-3.9.3-1]
                }
                None => codes.push(ReasonCode::NotAuthorized), // 0x80 in 3.x
            }
        }
        self.reply(key, |out, level| {
            protocol::encode_suback(out, level, pkid, &codes, &Properties::NONE)
            // [MQTT-3.8.4-1]
        });
        // Retained messages for each filter, RETAIN=1 [MQTT-3.3.1-6/8],
        // after the SUBACK and paced by the client's socket.
        let sess = self.session(sid)?;
        for (filter, qos, filtered) in scans {
            sess.start_scan(filter, qos, filtered);
        }
        self.pump(sid);
        Ok(())
    }

    /// `max_topic_levels`: a deeper topic is refused before it costs
    /// anything (see [`topic::within_levels`]); `too_deep` names the
    /// violation.
    pub(super) fn check_depth(
        &self,
        t: &str,
        too_deep: impl FnOnce(usize) -> Violation,
    ) -> Result<(), Reason> {
        let max = self.config.max_topic_levels;
        if topic::within_levels(t, max) {
            return Ok(());
        }
        Err(Reason::ProtocolError(too_deep(max)))
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
        pkid: u16,
        filters: Vec<String>,
    ) -> Result<(), Reason> {
        if let Some(f) = filters.iter().find(|f| !topic::valid_filter(f)) {
            let invalid = Violation::InvalidTopicFilter(f.clone());
            return Err(Reason::ProtocolError(invalid));
        }
        for filter in &filters {
            if self.session(sid)?.unsubscribe(filter) {
                if let Some(client) = self.durable(sid) {
                    let filter = filter.clone();
                    let filter = filter.to_string();
                    self.persist(Record::Unsub { client, filter });
                }
                self.router.unsubscribe(Destination::Session(sid), filter); // [MQTT-3.10.4-1]
            }
        }
        // Even if nothing matched [MQTT-3.10.4-5].
        self.reply(key, |out, level| {
            protocol::encode_unsuback(out, level, pkid, &[], &Properties::NONE)
        });
        Ok(())
    }
}
