//! CONNECT: its checks (3.x and MQTT 5), the takeover of an existing
//! session, the resume, the CONNACK, and the refusals; creating and
//! dropping sessions.

use super::*;

impl Engine {
    pub(super) fn on_connect(&mut self, key: ConnKey, c: protocol::Connect) -> Result<(), Reason> {
        let Some(level) = c.level else {
            // [MQTT-3.1.2-2]
            let unsupported = ReasonCode::UnsupportedProtocolVersion;
            return self.refuse(key, unsupported, &c.client_id, "unknown protocol level");
        };
        let v5 = level == ProtocolLevel::V5;
        if v5 {
            // Kept from here on, so that a refusal is in MQTT 5 form.
            let terms = self.v5_terms(&c.properties);
            if let Some(conn) = self.conns.get_mut(key) {
                conn.v5 = Some(terms);
            }
        }
        let method = c.properties.get();
        match method.and_then(|p| p.authentication_method.clone()) {
            Some(method) => self.start_auth(key, c, method),
            None => self.accept_connect(key, c, level, None),
        }
    }

    /// The rest of a CONNECT, once an enhanced authentication exchange (if
    /// any) accepted it: `auth` then replaces the user name and password
    /// checks, and its method and data go into CONNACK.
    pub(super) fn accept_connect(
        &mut self,
        key: ConnKey,
        c: protocol::Connect,
        level: ProtocolLevel,
        auth: Option<Authenticated>,
    ) -> Result<(), Reason> {
        let v5 = level == ProtocolLevel::V5;
        let props = c.properties.get();
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
            if will.qos > self.config.max_qos && v5 {
                let why = "Will QoS above max_qos";
                return self.refuse(key, ReasonCode::QoSNotSupported, &c.client_id, why);
                // [MQTT-3.2.2-12]
            }
            if will.retain && !self.config.retain_available && v5 {
                let why = "retained Will while retain_available is false";
                return self.refuse(key, ReasonCode::RetainNotSupported, &c.client_id, why);
                // [MQTT-3.2.2-13]
            }
        }
        let max_ka = self.config.max_keepalive;
        let mut keep_alive = c.keep_alive;
        let mut server_keep_alive = None;
        if max_ka > 0 && (c.keep_alive == 0 || c.keep_alive > max_ka) {
            if v5 {
                // MQTT 5 tells the client the keep-alive to use [MQTT-3.2.2-21].
                keep_alive = max_ka;
                server_keep_alive = Some(max_ka);
            } else {
                // MQTT 3.x cannot tell the client a keep-alive; mosquitto refuses.
                let why = format!(
                    "keep-alive {}s (0: none) not within max_keepalive {max_ka}s",
                    c.keep_alive
                );
                let invalid = ReasonCode::ClientIdentifierNotValid;
                return self.refuse(key, invalid, &c.client_id, &why);
            }
        }
        let mut client_id = c.client_id;
        let mut assigned = false;
        if client_id.is_empty() {
            // MQTT 3.1 has no empty ids; 3.1.1 only with CleanSession 1;
            // MQTT 5 with either Clean Start [MQTT-3.1.3-6].
            if level == ProtocolLevel::V31
                || (!c.clean_session && !v5)
                || !self.config.security.allow_zero_length_client_id
            {
                let invalid = ReasonCode::ClientIdentifierNotValid;
                let why = if level == ProtocolLevel::V31 {
                    "empty client id from an MQTT 3.1 client"
                } else if !c.clean_session && !v5 {
                    "empty client id with CleanSession 0"
                } else {
                    "empty client id (allow_zero_length_clientid false)"
                };
                return self.refuse(key, invalid, "", why); // [MQTT-3.1.3-8], [MQTT-3.1.3-9]
            }
            client_id = self.assign_client_id(); // [MQTT-3.1.3-6]
            assigned = true;
        }
        if let Some(prefix) = &self.config.client_id_prefix {
            if !client_id.starts_with(prefix.as_str()) {
                let why = "client id not allowed by clientid_prefixes";
                return self.refuse(key, ReasonCode::ClientIdentifierNotValid, &client_id, why);
            }
        }
        let credentials = (c.username.as_deref(), c.password.as_deref());
        let checked = auth
            .is_none()
            .then(|| self.check_credentials(credentials.0, credentials.1));
        if let Some(code) = checked.flatten() {
            let why = match code {
                ReasonCode::BadUserNameOrPassword => "bad user name or password",
                _ => "anonymous clients not allowed",
            };
            return self.refuse(key, code, &client_id, why);
        }
        if let Some(check) = self.authenticator.as_mut().filter(|_| auth.is_none()) {
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
        // How long the session outlives the connection: MQTT 5 says
        // (absent: 0, §3.1.2.11.2); 3.x CleanSession 0 keeps it.
        let expiry = if v5 {
            props.and_then(|p| p.session_expiry_interval).unwrap_or(0)
        } else if c.clean_session {
            0
        } else {
            u32::MAX
        };
        let connack_props = if v5 {
            let assigned = assigned.then_some(client_id.as_str());
            let mut props = self.connack_properties(assigned, server_keep_alive);
            if let Some(auth) = auth {
                let v = props.values_mut();
                v.authentication_method = Some(auth.method);
                v.authentication_data = auth.data;
            }
            props
        } else {
            Properties::NONE
        };
        let Some(connack_props) = self.connack_within(key, connack_props) else {
            let why = "its Maximum Packet Size is too small for the CONNACK";
            return self.refuse(key, ReasonCode::PacketTooLarge, &client_id, why);
        };
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
                (self.new_session(client_id.into(), expiry), false)
            }
            None => (self.new_session(client_id.into(), expiry), false),
        };
        if present {
            // A new connection before the Will Delay Interval passed: the
            // Will is not published [MQTT-3.1.3-9].
            self.cancel_delayed_will(sid);
            self.set_session_expiry(sid, expiry);
            self.recheck_resumed(sid, c.username.as_deref());
        }
        let cap = self.window_cap(key);
        let (Some(conn), Some(sess)) = (self.conns.get_mut(key), self.sessions.get_mut(sid)) else {
            return Ok(());
        };
        conn.level = Some(level);
        conn.set_session(sid);
        conn.will = c.will.map(Box::new);
        conn.keep_alive = keep_alive;
        sess.set_conn(Some(key));
        sess.start_window(cap);
        sess.offline_since = None;
        sess.username = c.username.map(String::into_boxed_str);
        // Keep Alive may be due before the connect timeout entry.
        if let Some(at) = conn.deadline(self.config.connect_timeout) {
            if conn.timer_at().is_none_or(|t| at < t) {
                if conn.timer_at().is_some() {
                    self.timers.forget();
                }
                conn.set_timer_at(Some(at));
                self.timers.schedule(at, Due::Conn(key, conn.serial));
            }
        }
        info!(
            "{}: {} connected ({}, {} {}, keep alive {keep_alive}s{}{})",
            conn.addr,
            sess.client_id,
            match level {
                ProtocolLevel::V31 => "MQTT 3.1",
                ProtocolLevel::V311 => "MQTT 3.1.1",
                ProtocolLevel::V5 => "MQTT 5",
            },
            if v5 { "clean start" } else { "clean session" },
            c.clean_session,
            sess.username
                .as_deref()
                .map(|u| format!(", user {u}"))
                .unwrap_or_default(),
            if present { ", session resumed" } else { "" }
        );
        // MQTT 3.1 has no Session Present flag.
        let sp = present && level != ProtocolLevel::V31;
        let accepted = ReasonCode::Success;
        // [MQTT-3.2.0-1], [MQTT-3.1.4-4]
        protocol::encode_connack(conn.wbuf(), level, sp, accepted, &connack_props);
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
        // and PUBRELs, in their original order; no more than the client's
        // Receive Maximum, the rest as acknowledgements make room
        // [MQTT-3.3.4-9].
        let limit = if cap == 0 { usize::MAX } else { cap }; // 0: no maximum
        let resend: Vec<Inflight> = sess.resend_at_most(limit).cloned().collect();
        let durable = self.store.is_some() && !sess.clean;
        let mut dropped = Vec::new();
        for f in &resend {
            if !resend_inflight(conn, sess, f, self.now_ms, &mut self.stats) {
                dropped.extend(drop_unsent(sess, f, durable, &mut self.stats));
            }
        }
        for record in dropped {
            self.persist(record);
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

    /// Answers a CONNECT with a refusing code, in the CONNECT's form (3.x
    /// return code, or MQTT 5 reason code [MQTT-3.2.2-6]); the connection
    /// then closes [MQTT-3.2.2-5] and nothing else it sent is processed
    /// [MQTT-3.1.4-5]. A CONNECT of an unknown level gets the 3.x form.
    pub(super) fn refuse(
        &mut self,
        key: ConnKey,
        code: ReasonCode,
        client_id: &str,
        why: &str,
    ) -> Result<(), Reason> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Err(Reason::Refused(code));
        };
        let id = if client_id.is_empty() {
            "no client id"
        } else {
            client_id
        };
        let level = if conn.v5.is_some() {
            ProtocolLevel::V5
        } else {
            ProtocolLevel::V311
        };
        let shown = match level {
            ProtocolLevel::V5 => format!("reason code {:#04x}", code as u8),
            _ => format!("CONNACK code {}", code.v3_connack_code()),
        };
        info!("{} ({id}): refused with {shown}: {why}", conn.addr);
        let mut props = PropertyValues::default();
        if conn.v5.as_ref().is_some_and(|v5| v5.problem_information) {
            props.reason_string = Some(why.to_string());
        }
        let limit = conn
            .v5
            .as_ref()
            .map_or(u32::MAX, |v5| v5.maximum_packet_size);
        // [MQTT-3.2.2-4], [MQTT-3.2.2-6]
        write_within(conn.wbuf(), limit, &props.into(), |out, props| {
            protocol::encode_connack(out, level, false, code, props)
        });
        mark_dirty(conn, key, &mut self.dirty);
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

    /// A new session that outlives its connection by `expiry` seconds
    /// (0: ends with it; `u32::MAX`: kept, as 3.x CleanSession 0).
    pub(super) fn new_session(&mut self, client_id: Box<str>, expiry: u32) -> SessionKey {
        let mut session = Session::new(client_id, expiry == 0);
        session.expiry = expiry;
        let sid = self.sessions.insert(session);
        if let Some(client) = self.durable(sid) {
            self.persist(Record::Session {
                client: client.clone(),
            });
            if expiry != u32::MAX {
                self.persist_expiry(client, expiry);
            }
        }
        sid
    }

    pub(super) fn drop_session(&mut self, sid: SessionKey) {
        if self.sessions.get(sid).is_none() {
            return;
        }
        // The session ends before its Will Delay Interval: the Will goes
        // now [MQTT-3.1.3-9].
        self.publish_delayed_will(sid);
        if let Some(client) = self.durable(sid) {
            self.persist(Record::SessionGone { client });
        }
        let Some(mut sess) = self.sessions.remove(sid) else {
            return;
        };
        self.end_subscriptions(sid, &mut sess);
    }
}
