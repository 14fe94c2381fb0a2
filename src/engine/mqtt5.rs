//! What MQTT 5 adds to a connection: the terms agreed at CONNECT and
//! announced in CONNACK, Topic Aliases from the client, the server's
//! DISCONNECT with a reason code, and the in-flight window a client's
//! Receive Maximum allows.

use super::*;
use crate::conn::V5;

/// Receive Maximum when none is given: 65,535.
const NO_RECEIVE_MAXIMUM: u16 = u16::MAX;

impl Engine {
    /// The terms of an MQTT 5 CONNECT, kept with its connection.
    pub(super) fn v5_terms(&self, props: &Properties) -> Box<V5> {
        let p = props.get();
        let alias_max = p.and_then(|p| p.topic_alias_maximum).unwrap_or(0);
        let mut v5 = Box::<V5>::default();
        v5.receive_maximum = p
            .and_then(|p| p.receive_maximum)
            .unwrap_or(NO_RECEIVE_MAXIMUM);
        v5.maximum_packet_size = p.and_then(|p| p.maximum_packet_size).unwrap_or(u32::MAX);
        v5.problem_information = p.and_then(|p| p.request_problem_information) != Some(false);
        v5.expiry_was_zero = p.and_then(|p| p.session_expiry_interval).unwrap_or(0) == 0;
        v5.aliases_out_max = alias_max.min(self.config.max_topic_alias);
        v5
    }

    /// What midge tells an MQTT 5 client in CONNACK: the limits it sets
    /// and the features it lacks (none now: Wildcard, Subscription
    /// Identifier and Shared Subscription Available are left out, which
    /// means available), an Assigned Client
    /// Identifier [MQTT-3.2.2-16] and a Server Keep Alive [MQTT-3.2.2-21].
    pub(super) fn connack_properties(
        &self,
        assigned: Option<&str>,
        server_keep_alive: Option<u16>,
    ) -> Properties {
        let receive_maximum = self.receive_maximum();
        let max_packet = self.config.max_remaining_length();
        let max_packet = (max_packet < protocol::MAX_REMAINING_LENGTH)
            .then(|| u32::try_from(max_packet + 5).unwrap_or(u32::MAX));
        Properties::from(PropertyValues {
            assigned_client_identifier: assigned.map(str::to_string),
            server_keep_alive,
            receive_maximum: (receive_maximum != NO_RECEIVE_MAXIMUM).then_some(receive_maximum),
            maximum_qos: (self.config.max_qos != QoS::ExactlyOnce).then_some(self.config.max_qos),
            retain_available: (!self.config.retain_available).then_some(false),
            maximum_packet_size: max_packet,
            topic_alias_maximum: Some(self.config.max_topic_alias).filter(|&n| n > 0),
            ..PropertyValues::default()
        })
    }

    /// The properties `props` of the CONNACK accepting connection `key`,
    /// within the client's Maximum Packet Size [MQTT-3.1.2-24]: without
    /// midge's limits and features if they do not fit (the client then
    /// assumes none, and midge still enforces them); `None` if what cannot
    /// be left out does not fit either (an Assigned Client Identifier
    /// [MQTT-3.2.2-16], a Server Keep Alive, the authentication's data).
    pub(super) fn connack_within(&self, key: ConnKey, props: Properties) -> Option<Properties> {
        let conn = self.conns.get(key);
        let max = conn
            .and_then(|c| c.v5.as_ref())
            .map(|v5| v5.maximum_packet_size);
        let Some(max) = max.filter(|&m| m != u32::MAX) else {
            return Some(props);
        };
        let fits = |props: &Properties| {
            let mut connack = bytes::BytesMut::new();
            let success = ReasonCode::Success;
            protocol::encode_connack(&mut connack, ProtocolLevel::V5, false, success, props);
            connack.len() <= max as usize
        };
        if fits(&props) {
            return Some(props);
        }
        let v = props.get().cloned().unwrap_or_default();
        let required = Properties::from(PropertyValues {
            assigned_client_identifier: v.assigned_client_identifier,
            server_keep_alive: v.server_keep_alive,
            authentication_method: v.authentication_method,
            authentication_data: v.authentication_data,
            ..PropertyValues::default()
        });
        fits(&required).then_some(required)
    }

    /// midge's Receive Maximum: the unacknowledged QoS 1/2 PUBLISHes a
    /// client may send (`max_inflight_messages`, as mosquitto announces).
    pub(super) fn receive_maximum(&self) -> u16 {
        match self.config.max_inflight {
            0 => NO_RECEIVE_MAXIMUM,
            n => u16::try_from(n).unwrap_or(NO_RECEIVE_MAXIMUM),
        }
    }

    /// The largest in-flight window for connection `key`:
    /// `max_inflight_messages`, and an MQTT 5 client's Receive Maximum
    /// [MQTT-3.3.4-9].
    pub(super) fn window_cap(&self, key: ConnKey) -> usize {
        let config = self.config.max_inflight;
        let client = self.conns.get(key).and_then(|c| c.v5.as_deref());
        match (config, client.map(|v5| usize::from(v5.receive_maximum))) {
            (0, Some(r)) => r,
            (n, Some(r)) => n.min(r),
            (n, None) => n,
        }
    }

    /// Checks an MQTT 5 client's PUBLISH against what CONNACK announced,
    /// and notes a Topic Alias: the topic it stands for when the PUBLISH
    /// has none [MQTT-3.3.2-12] (the caller puts it in place).
    pub(super) fn accept_v5_publish(
        &mut self,
        key: ConnKey,
        p: &mut PublishRef,
    ) -> Result<Option<Box<str>>, Reason> {
        if p.qos > self.config.max_qos {
            return Err(Reason::ProtocolError(Violation::QosNotSupported(
                p.qos as u8,
            )));
        }
        if p.retain && !self.config.retain_available {
            return Err(Reason::ProtocolError(Violation::RetainNotSupported));
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(None);
        };
        let Some(v5) = conn.v5.as_deref_mut() else {
            return Ok(None);
        };
        let alias = p.properties.get().and_then(|v| v.topic_alias);
        if let Some(alias) = alias {
            p.properties.values_mut().topic_alias = None; // not forwarded
            let Some(slot) = v5.alias_slot(alias, self.config.max_topic_alias) else {
                return Err(Reason::ProtocolError(Violation::TopicAliasTooLarge(alias)));
            };
            if p.topic.is_empty() {
                match slot {
                    Some(topic) => return Ok(Some(topic.clone())),
                    None => return Err(Reason::ProtocolError(Violation::UnknownTopicAlias(alias))),
                }
            } else {
                *slot = Some(p.topic.into());
            }
        } else if p.topic.is_empty() {
            return Err(Reason::ProtocolError(Violation::UnknownTopicAlias(0)));
        }
        Ok(None)
    }

    /// midge's Receive Maximum, enforced: a QoS 2 PUBLISH whose id is new
    /// while that many are unreleased, or a parked one past it, closes the
    /// connection with 0x93 [MQTT-3.3.4-8].
    pub(super) fn check_receive_maximum(
        &mut self,
        key: ConnKey,
        sid: SessionKey,
    ) -> Result<(), Reason> {
        let max = self.receive_maximum();
        if max == NO_RECEIVE_MAXIMUM {
            return Ok(());
        }
        let Some(conn) = self.conns.get(key) else {
            return Ok(());
        };
        if conn.v5.is_none() {
            return Ok(());
        }
        let parked = conn.parked_unacked();
        let pending = self.sessions.get(sid).map_or(0, |s| s.qos2_ids().count());
        if parked + pending >= usize::from(max) {
            return Err(Reason::ProtocolError(Violation::ReceiveMaximumExceeded(
                max,
            )));
        }
        Ok(())
    }

    /// Before an MQTT 5 connection closes for a reason the standard has a
    /// code for, tell the client [MQTT-4.13.1-1]: a DISCONNECT with the
    /// code and, as Reason String, what the log says.
    pub(super) fn send_disconnect(&mut self, conn: &mut Conn, reason: &Reason) {
        if conn.level != Some(ProtocolLevel::V5) {
            return; // 3.x has no server DISCONNECT; none before CONNACK
        }
        let code = match reason {
            // A second CONNECT, whatever its protocol name, is a protocol
            // error [MQTT-3.1.0-2]; 0x84 is a CONNACK code only.
            Reason::Decode(DecodeError::UnknownProtocol) => ReasonCode::ProtocolError,
            Reason::Decode(e) => e.reason_code(),
            Reason::ProtocolError(v) => v.reason_code(),
            Reason::Internal(_) => ReasonCode::ImplementationSpecificError,
            Reason::KeepAlive => ReasonCode::KeepAliveTimeout,
            Reason::TakenOver => ReasonCode::SessionTakenOver,
            Reason::Shutdown => ReasonCode::ServerShuttingDown,
            Reason::AuthFailed => ReasonCode::NotAuthorized,
            Reason::Stalled(_) => ReasonCode::QuotaExceeded,
            Reason::Kicked => ReasonCode::AdministrativeAction,
            Reason::Eof
            | Reason::Io(_)
            | Reason::ConnectTimeout
            | Reason::Disconnect
            | Reason::Refused(_) => return,
        };
        // The Reason String goes only if the packet stays within the
        // client's Maximum Packet Size [MQTT-3.1.2-24].
        let max = conn
            .v5
            .as_ref()
            .map_or(u32::MAX, |v5| v5.maximum_packet_size);
        let why = reason.to_string();
        // Type, lengths (at most 2 bytes each here), code, property id,
        // string length: 9 bytes at most besides the text.
        let fits = 9 + why.len() <= max as usize;
        let props = PropertyValues {
            reason_string: fits.then_some(why),
            ..PropertyValues::default()
        };
        let packet = Packet::Disconnect(protocol::ReasonAndProperties {
            reason: code,
            properties: props.into(),
        });
        if protocol::encode(&packet, ProtocolLevel::V5, conn.wbuf()).is_err() {
            debug!("{}: DISCONNECT not encodable", conn.addr);
        }
    }
}

/// Writes a packet with `props` (a Reason String) if it stays within the
/// client's Maximum Packet Size `limit`, else without them (a refusing
/// CONNACK [MQTT-3.2.2-19]).
pub(super) fn write_within(
    out: &mut bytes::BytesMut,
    limit: u32,
    props: &Properties,
    write: impl Fn(&mut bytes::BytesMut, &Properties),
) {
    let start = out.len();
    write(out, props);
    if out.len() - start > limit as usize {
        out.truncate(start);
        write(out, &Properties::NONE);
    }
}
