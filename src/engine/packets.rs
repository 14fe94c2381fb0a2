//! What each packet from a connected client does: PUBLISH, SUBSCRIBE,
//! UNSUBSCRIBE, the acknowledgements, PINGREQ and DISCONNECT (CONNECT is
//! in `connect`).

use super::*;

impl Engine {
    /// A packet read in place: a PUBLISH is handled from the read buffer.
    pub(super) fn handle_ref(&mut self, key: ConnKey, packet: PacketRef) -> Result<(), Reason> {
        let p = match packet {
            PacketRef::Publish(p) => p,
            PacketRef::Other(packet) => return self.handle(key, packet),
        };
        let Some(conn) = self.conns.get(key) else {
            return Ok(());
        };
        match conn.session() {
            Some(sid) => {
                let v5 = conn.v5.is_some();
                self.on_publish(key, sid, p, v5)
            }
            // Before CONNECT: `handle` says what that is (cold).
            None => self.handle(key, Packet::Publish(p.into_publish())),
        }
    }

    pub(super) fn handle(&mut self, key: ConnKey, packet: Packet) -> Result<(), Reason> {
        let Some(conn) = self.conns.get(key) else {
            return Ok(());
        };
        let v5 = conn.v5.is_some();
        let exchange = conn.session().is_none() && self.auth_exchanges.contains_key(&key);
        let sid = match (conn.session(), packet) {
            (_, Packet::Auth(a)) => return self.on_auth(key, a),
            // During an authentication exchange only AUTH and DISCONNECT
            // may come before CONNACK [MQTT-3.1.2-30].
            (None, Packet::Disconnect(_)) if exchange => return Err(Reason::Disconnect),
            (None, Packet::Connect(_)) if exchange => {
                return Err(Reason::ProtocolError(Violation::SecondConnect));
            }
            (None, Packet::Connect(c)) => return self.on_connect(key, *c),
            (Some(_), Packet::Connect(_)) => {
                return Err(Reason::ProtocolError(Violation::SecondConnect)); // [MQTT-3.1.0-2]
            }
            (None, _) => return Err(Reason::ProtocolError(Violation::FirstPacketNotConnect)), // [MQTT-3.1.0-1]
            (Some(sid), Packet::Publish(mut p)) => return self.on_publish(key, sid, p.view(), v5),
            (Some(sid), Packet::Subscribe(s)) => return self.on_subscribe(key, sid, s),
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
            (Some(sid), Packet::PubRec(Ack { pkid, reason, .. })) if reason.is_error() => {
                // The receiver refused the message: it is done with, and
                // no PUBREL follows (MQTT 5 §4.3.3).
                let done = self.session(sid)?.pubrec_refused(pkid);
                self.persist_done(sid, done.as_ref());
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
                // Unknown ids are answered too: normal after a reconnect
                // (MQTT 5 says so with 0x92).
                let was_pending = self.session(sid)?.qos2_remove(pkid);
                if let (true, Some(client)) = (was_pending, self.durable(sid)) {
                    self.persist(Record::Qos2Rel { client, pkid });
                }
                let code = if was_pending {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                // [MQTT-4.3.3-2]
                self.reply(key, |out, level| {
                    protocol::encode_ack(out, level, AckKind::PubComp, pkid, code)
                });
                return Ok(());
            }
            (Some(_), Packet::PingReq) => {
                self.reply(key, |out, _| protocol::encode_pingresp(out)); // [MQTT-3.12.4-1]
                return Ok(());
            }
            (Some(sid), Packet::Disconnect(d)) => return self.on_disconnect(key, sid, d),
            // Server-to-client packets never decode here.
            (
                Some(_),
                p @ (Packet::ConnAck(_)
                | Packet::SubAck(_)
                | Packet::UnsubAck(_)
                | Packet::PingResp),
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

    pub(super) fn on_publish(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
        mut p: PublishRef<'_>,
        v5: bool,
    ) -> Result<(), Reason> {
        // Its bytes may be forwarded as they are (see `Frame`): judged as
        // received, before a Topic Alias is taken out of its properties.
        let plain = p.qos == QoS::AtMostOnce && !p.retain && !p.dup;
        let frame = match plain && p.properties.is_empty() {
            true => Frame { bytes: p.frame, v5 },
            false => Frame::NONE,
        };
        let aliased = if v5 {
            self.accept_v5_publish(key, &mut p)?
        } else if p.qos > self.config.max_qos {
            // As mosquitto: 3.x cannot be told the Maximum QoS.
            return Err(Reason::ProtocolError(Violation::QosNotSupported(
                p.qos as u8,
            )));
        } else {
            None
        };
        // The topic a Topic Alias stands for, or the PUBLISH's own.
        let name = aliased.as_deref().unwrap_or(p.topic);
        // [MQTT-3.3.2-2], [MQTT-4.7.3-1]; and no deeper than allowed.
        let max = self.config.max_topic_levels;
        match topic::name_levels(name) {
            None => return Err(Reason::ProtocolError(Violation::InvalidTopicName)),
            Some(levels) if levels > max => {
                let too_deep = Violation::TopicTooDeep { max, will: false };
                return Err(Reason::ProtocolError(too_deep));
            }
            Some(_) => {}
        }
        self.stats.messages_received += 1;
        self.stats.publish_bytes_received += p.payload.len() as u64;
        let (qos, pkid) = (p.qos, p.pkid);
        let before = self.conns.get(key).map_or(0, Conn::out_len);
        // A payload over `message_size_limit` is acknowledged and dropped,
        // as in mosquitto (02-subpub-qos1-oversize-payload).
        let oversize = self.oversize(p.payload.len());
        if oversize {
            debug!(
                "dropping a PUBLISH to {}: payload over message_size_limit",
                name
            );
        }
        // Payload Format Indicator 1 promises UTF-8: a payload that is not
        // is refused with 0x99 (§3.3.2.3.2).
        let text = p.properties.get().and_then(|v| v.payload_format_indicator);
        let bad_text = text == Some(true) && std::str::from_utf8(p.payload).is_err();
        if qos == QoS::ExactlyOnce && !self.session(sid)?.qos2_has(pkid) {
            self.check_receive_maximum(key, sid)?;
        }
        // QoS 2, method B: deliver now, remember the id until PUBREL so a
        // resent PUBLISH is not delivered again [MQTT-4.3.3-2].
        let fresh = !oversize
            && !bad_text
            && (qos != QoS::ExactlyOnce || self.session(sid)?.qos2_insert(pkid));
        // Only then: `durable` copies the client id (every PUBLISH of a
        // persistent session did, with persistence on).
        if fresh && qos == QoS::ExactlyOnce {
            if let Some(client) = self.durable(sid) {
                self.persist(Record::Qos2In { client, pkid });
            }
        }
        let mut code = ReasonCode::Success;
        if bad_text {
            code = ReasonCode::PayloadFormatInvalid;
        } else if fresh {
            if name.starts_with("$SYS")
                || self.conn_verdict(key, Access::Publish, name) != Verdict::Granted
            {
                // Not allowed (or the broker's own namespace, as in
                // mosquitto): acknowledged and dropped [MQTT-3.3.5-2]; MQTT 5
                // says why.
                debug!("dropping a PUBLISH to {} (not allowed)", name);
                code = ReasonCode::NotAuthorized;
                if qos == QoS::ExactlyOnce {
                    self.end_refused_qos2(sid, pkid);
                }
            } else {
                let retain = p.retain;
                // Every 3.x message: no properties, no expiry.
                let expires_at = match p.properties.is_empty() {
                    true => 0,
                    false => self.expiry_of(&p.properties),
                };
                let mut msg = Routed::Fresh(Fresh {
                    topic: name,
                    payload: p.payload,
                    properties: p.properties,
                    expires_at,
                    retain,
                    frame,
                });
                if retain {
                    let source = self.source_of(sid);
                    self.set_retained(&msg.share(), qos, source);
                }
                let matched = self.route(&mut msg, qos, Origin::Client(key));
                if matched == 0 {
                    code = ReasonCode::NoMatchingSubscribers;
                }
            }
        }
        let kind = match qos {
            QoS::AtMostOnce => return Ok(()),
            QoS::AtLeastOnce => AckKind::PubAck,
            QoS::ExactlyOnce => AckKind::PubRec,
        };
        // The ack goes before the copy of the message this client may have
        // got through its own subscription (as from mosquitto: clients
        // expect the PUBACK/PUBREC of their publish first).
        self.reply_at(key, before, |o, level| {
            protocol::encode_ack(o, level, kind, pkid, code)
        });
        Ok(())
    }

    /// [`Engine::reply`], placed at offset `at` of the output (what was
    /// appended since moves after it).
    fn reply_at(
        &mut self,
        key: ConnKey,
        at: usize,
        write: impl FnOnce(&mut bytes::BytesMut, ProtocolLevel),
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.out_len() <= at {
            return self.reply(key, write);
        }
        let level = conn.level.unwrap_or(ProtocolLevel::V311);
        let out = conn.wbuf();
        let tail = out.split_off(at);
        write(out, level);
        out.unsplit(tail);
        mark_dirty(conn, key, &mut self.dirty);
    }

    /// A QoS 2 PUBLISH refused with a PUBREC code >= 0x80: that ends the
    /// exchange, so its id is free and the same id next time is a new
    /// message [MQTT-4.3.3-9]. Cold: off the path of accepted messages.
    #[cold]
    fn end_refused_qos2(&mut self, sid: SessionKey, pkid: u16) {
        if let Some(sess) = self.sessions.get_mut(sid) {
            sess.qos2_remove(pkid);
        }
        if let Some(client) = self.durable(sid) {
            self.persist(Record::Qos2Rel { client, pkid });
        }
    }

    /// A message as it is kept and forwarded: with an MQTT 5 publisher's
    /// properties, and its expiry time from its Message Expiry Interval.
    pub(super) fn message_of(
        &self,
        topic: Box<str>,
        payload: bytes::Bytes,
        properties: Properties,
        retain: bool,
    ) -> Message {
        Message {
            expires_at: self.expiry_of(&properties),
            topic,
            payload,
            properties,
            retain,
        }
    }

    /// When a message with these properties expires: its Message Expiry
    /// Interval from now; 0 (never) without one.
    fn expiry_of(&self, properties: &Properties) -> u64 {
        let interval = properties.get().and_then(|v| v.message_expiry_interval);
        interval.map_or(0, |secs| {
            // Never 0 (that means "never expires").
            (self.now_ms + u64::from(secs) * 1000).max(1)
        })
    }

    /// True if a payload of `len` bytes is over `message_size_limit`.
    pub(super) fn oversize(&self, len: usize) -> bool {
        let limit = self.config.message_size_limit;
        limit > 0 && len > limit
    }

    /// Stores (or, with an empty payload, deletes) a topic's retained
    /// message, durably when persistence is on.
    pub(super) fn set_retained(&mut self, msg: &Arc<Message>, qos: QoS, source: Option<Source>) {
        let record = self
            .store
            .is_some()
            .then(|| persist::retain_record(msg, qos, self.bodies.unix_start, source.as_ref()));
        self.retained.set(msg, qos, source);
        if msg.expires_at != 0 {
            self.schedule_retained_expiry();
        }
        if let Some(record) = record {
            self.persist(record);
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

    /// Publishes a Will of client `source` (if its session is still known).
    pub(super) fn publish_will(&mut self, will: LastWill, source: Option<Source>) {
        let mut props = will.properties;
        if props.get().is_some_and(|p| p.will_delay_interval.is_some()) {
            // A Will Property, not one of the message's.
            props.values_mut().will_delay_interval = None;
        }
        let msg = self.message_of(will.topic, will.payload, props, will.retain);
        let msg = Arc::new(msg);
        if will.retain {
            self.set_retained(&msg, will.qos, source); // [MQTT-3.1.2-17]
        }
        self.route(&mut Routed::Shared(msg), will.qos, Origin::Broker);
    }

    /// DISCONNECT from the client: its Will is discarded by reason code
    /// 0x00 alone [MQTT-3.14.4-3]; an MQTT 5 client's other codes (0x04
    /// "with Will", and the errors) leave it to be published
    /// [MQTT-3.1.2-8]. Its Session Expiry Interval may change, but not
    /// from 0 [MQTT-3.14.2-2].
    pub(super) fn on_disconnect(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
        d: protocol::ReasonAndProperties,
    ) -> Result<(), Reason> {
        let expiry = d.properties.get().and_then(|p| p.session_expiry_interval);
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        if let Some(expiry) = expiry {
            if conn.v5.as_ref().is_some_and(|v5| v5.expiry_was_zero) && expiry != 0 {
                return Err(Reason::ProtocolError(Violation::SessionExpiryRaised));
            }
        }
        if d.reason == ReasonCode::Success {
            conn.will = None;
        }
        if let Some(expiry) = expiry {
            self.set_session_expiry(sid, expiry);
        }
        Err(Reason::Disconnect)
    }

    pub(super) fn on_subscribe(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
        sub: protocol::Subscribe,
    ) -> Result<(), Reason> {
        let pkid = sub.pkid;
        let filters = sub.filters;
        // The whole packet is refused if any filter is invalid (mosquitto
        // closes too; 3.1.1 gives no other answer for a malformed filter).
        for (f, opts) in &filters {
            check_filter(f, opts.no_local)?;
        }
        for (f, _) in &filters {
            self.check_depth(f, Violation::FilterTooDeep)?;
        }
        // One identifier for every filter of the packet (§3.8.2.1.2).
        let id = sub.properties.get();
        let id = id.and_then(|p| p.subscription_identifiers.first().copied());
        let mut codes = Vec::with_capacity(filters.len());
        let mut scans = Vec::with_capacity(filters.len());
        for (filter, opts) in &filters {
            // Denied filters get 0x80/0x87 and are not subscribed
            // [MQTT-3.8.4-5]. A filter granted with some topics denied is
            // subscribed `filtered`. For `$share/GROUP/FILTER` the ACL is
            // asked about FILTER, as mosquitto does.
            let asked = shared::acl_filter(filter);
            let filtered = match self.conn_verdict(key, Access::Subscribe, asked) {
                Verdict::Granted => false,
                Verdict::Partial => true,
                Verdict::Refused => {
                    codes.push(ReasonCode::NotAuthorized); // 0x80 in 3.x
                    continue;
                }
            };
            let grant = Grant {
                qos: opts.qos.min(self.config.max_qos),
                no_local: opts.no_local,
                retain_as_published: opts.retain_as_published,
                id: id.unwrap_or(0),
            };
            self.session(sid)?;
            // [MQTT-3.8.4-3]; or joining a group (again: new options).
            let Some((added, stored)) = self.add_subscription(sid, filter, grant, filtered) else {
                return Err(Reason::Internal("shared filter checked but invalid"));
            };
            // Retain Handling: retained messages at every subscribe, only
            // for a new subscription, or never [MQTT-3.3.1-9],
            // [MQTT-3.3.1-10], [MQTT-3.3.1-11]; never for a shared
            // subscription (MQTT 5 §4.8.2).
            let send_retained = !shared::is_shared(filter)
                && match opts.retain_handling {
                    RetainHandling::OnSubscribe => true,
                    RetainHandling::OnNewSubscription => added,
                    RetainHandling::Never => false,
                };
            if send_retained {
                scans.push((stored.clone(), grant.qos, filtered, grant.id));
            }
            self.session(sid)?.subscribe(stored, grant);
            if let Some(client) = self.durable(sid) {
                self.persist(persist::sub_record(client, filter.clone(), &grant));
            }
            codes.push(ReasonCode::granted(grant.qos)); // [MQTT-3.9.3-1]
        }
        self.reply(key, |out, level| {
            protocol::encode_suback(out, level, pkid, &codes, &Properties::NONE)
            // [MQTT-3.8.4-1]
        });
        // Retained messages for each filter, RETAIN=1 [MQTT-3.3.1-6/8],
        // after the SUBACK and paced by the client's socket.
        let sess = self.session(sid)?;
        for (filter, qos, filtered, id) in scans {
            sess.start_scan(filter, qos, filtered, id);
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
        let mut codes = Vec::with_capacity(filters.len());
        for filter in &filters {
            let existed = self.session(sid)?.unsubscribe(filter);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
            if existed {
                if let Some(client) = self.durable(sid) {
                    let filter = filter.clone();
                    let filter = filter.to_string();
                    self.persist(Record::Unsub { client, filter });
                }
                self.remove_subscription(sid, filter); // [MQTT-3.10.4-1]
            }
        }
        // Even if nothing matched [MQTT-3.10.4-5].
        self.reply(key, |out, level| {
            protocol::encode_unsuback(out, level, pkid, &codes, &Properties::NONE)
        });
        Ok(())
    }
}

/// A SUBSCRIBE's filter must be valid [MQTT-4.7.1-1], [MQTT-4.7.1-2],
/// [MQTT-4.7.3-1]; a `$share/` one must also name its group and filter
/// [MQTT-4.8.2-1], [MQTT-4.8.2-2], and must not ask for No Local
/// [MQTT-3.8.3-4] (both Protocol Errors, DISCONNECT 0x82, as mosquitto).
fn check_filter(filter: &str, no_local: bool) -> Result<(), Reason> {
    let violation = match shared::parse(filter) {
        Ok(None) if topic::valid_filter(filter) => return Ok(()),
        Ok(None) => Violation::InvalidTopicFilter(filter.to_string()),
        Ok(Some(_)) if no_local => Violation::NoLocalShared(filter.to_string()),
        Ok(Some(_)) => return Ok(()),
        Err(shared::Invalid) => Violation::InvalidSharedFilter(filter.to_string()),
    };
    Err(Reason::ProtocolError(violation))
}
