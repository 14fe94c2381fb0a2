//! MQTT wire format for 3.1, 3.1.1 and 5.0, in both directions: packets as
//! data, decoded and encoded apart from the event loop.
//!
//! - [`decode`] takes one packet from the front of a read buffer, for the
//!   side doing the decoding ([`Role::Server`] accepts only what a client
//!   sends, [`Role::Client`] only what a server sends) at the connection's
//!   [`ProtocolLevel`]. Errors are typed ([`DecodeError`]) and each has the
//!   MQTT 5 reason code the standard gives it. [`decode_ref`] is the same
//!   without copying: a PUBLISH's topic and payload stay in the buffer.
//! - [`encode`] writes any packet at a level; the functions the broker
//!   calls per message ([`encode_publish`], [`encode_ack`]...) write
//!   straight into a connection's output buffer with no intermediate value.
//! - [`Properties`] holds MQTT 5 properties and costs one null pointer when
//!   a packet has none (all 3.x traffic).
//! - [`ReasonCode`] lists every MQTT 5 reason code and maps the refusals to
//!   3.x CONNACK return codes; [`Violation`] names the breaches a server
//!   finds above the decoder (topic rules, connection state).
//!
//! Strings are validated here (well-formed UTF-8, no U+0000: [MQTT-1.5.3-1],
//! [MQTT-1.5.3-2]); topic syntax is checked by the caller with
//! [`crate::topic`], because what is legal depends on where a topic appears.

mod decode;
mod encode;
mod properties;
mod reason;
mod violation;
mod wire;

#[cfg(test)]
mod tests_decode;
#[cfg(test)]
mod tests_roundtrip;
#[cfg(test)]
mod tests_v5;

pub use decode::{bytes_wanted, decode, decode_ref, DecodeError, PacketRef, PublishRef};
pub use encode::{
    encode, encode_ack, encode_connack, encode_pingresp, encode_publish, encode_publish_out,
    encode_suback, encode_unsuback, publish_len, publish_out_len, AckKind, EncodeError,
    PublishFlags,
};
pub use properties::{Outbound, Properties, PropertyValues};
pub use reason::ReasonCode;
pub use violation::Violation;

use bytes::Bytes;

/// Largest Remaining Length the 4-byte encoding can express (256 MiB - 1).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The longest packet read before CONNECT is accepted (a CONNECT, or an
/// MQTT 5 AUTH during enhanced authentication): 1 MiB, not the 256 MiB of
/// [`MAX_REMAINING_LENGTH`], so a socket that has not even connected can
/// make the broker hold no more than this. Every CONNECT whose fields are
/// within their own maximum lengths fits: in 3.1.1 at most 12 bytes of
/// variable header and five 2-byte-length fields (client id, Will topic,
/// Will payload, user name, password: 5 x 65,537) make 327,697 bytes; an
/// MQTT 5 CONNECT adds its two property blocks, whose single-valued
/// properties take at most 327,000 bytes more, which leaves ~390 KB for
/// User Properties.
pub const MAX_CONNECT_LENGTH: usize = 1024 * 1024;

/// The protocol revisions midge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolLevel {
    /// MQTT 3.1 ("MQIsdp", level 3).
    V31,
    /// MQTT 3.1.1 ("MQTT", level 4).
    V311,
    /// MQTT 5.0 ("MQTT", level 5).
    V5,
}

impl ProtocolLevel {
    /// The Protocol Name and Protocol Version a CONNECT carries.
    pub fn name_and_version(self) -> (&'static [u8], u8) {
        match self {
            ProtocolLevel::V31 => (b"MQIsdp", 3),
            ProtocolLevel::V311 => (b"MQTT", 4),
            ProtocolLevel::V5 => (b"MQTT", 5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// The side doing the decoding: a server accepts only client-to-server
/// packet types, a client only server-to-client ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// What a decoder accepts beyond the standard's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Remaining Length accepted; a larger packet is refused from
    /// its header, before its body is buffered [MQTT-4.8.0-2].
    pub max_remaining_length: usize,
    /// Whether a version 5 CONNECT is decoded. When false it comes out as a
    /// [`Connect`] with `level: None` without its body being read, as any
    /// unsupported version does, so the server can answer CONNACK 0x01.
    pub mqtt5: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_remaining_length: MAX_REMAINING_LENGTH,
            mqtt5: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Boxed, not a `String`: it is never grown, and 8 bytes less.
    pub topic: Box<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will Properties (MQTT 5).
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `None` when the protocol name is known but the level is not (or is
    /// 5 and the decoder was told not to accept it): the caller answers
    /// CONNACK 0x01 [MQTT-3.1.2-2].
    pub level: Option<ProtocolLevel>,
    /// CleanSession (3.x) or Clean Start (5).
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// 3.x return codes map to their MQTT 5 equivalents
    /// ([`ReasonCode::from_v3_connack`]).
    pub code: ReasonCode,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Boxed, not a `String`: it is never grown, the broker keeps it as is,
    /// and the packet stays at 64 bytes with its properties pointer.
    pub topic: Box<str>,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
    pub properties: Properties,
}

impl Publish {
    /// A view of it as [`decode_ref`] gives one (its properties move into
    /// the view).
    pub fn view(&mut self) -> PublishRef<'_> {
        PublishRef {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: &self.topic,
            pkid: self.pkid,
            payload: &self.payload,
            properties: std::mem::take(&mut self.properties),
            frame: &[],
        }
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP. 3.x acks are always `Success` with
/// no properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub pkid: u16,
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Ack {
    /// A plain acknowledgement (the only kind 3.x has).
    pub fn new(pkid: u16) -> Ack {
        Ack {
            pkid,
            reason: ReasonCode::Success,
            properties: Properties::NONE,
        }
    }
}

/// What to do with retained messages when subscribing (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainHandling {
    /// Send them at subscribe time [MQTT-3.3.1-9].
    OnSubscribe = 0,
    /// Only if the subscription did not exist [MQTT-3.3.1-10].
    OnNewSubscription = 1,
    /// Never at subscribe time [MQTT-3.3.1-11].
    Never = 2,
}

/// A subscription's options byte. 3.x has only the QoS; the other fields
/// are then at their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// The options of a 3.x subscription: only a maximum QoS.
    pub fn qos(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<(String, SubscriptionOptions)>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    /// One per filter: Granted QoS 0/1/2 or a failure (3.x writes every
    /// failure as 0x80).
    pub codes: Vec<ReasonCode>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub pkid: u16,
    /// One per filter in MQTT 5; empty in 3.x, which has none.
    pub codes: Vec<ReasonCode>,
    pub properties: Properties,
}

/// DISCONNECT (3.x: always `NormalDisconnection`, no properties) or AUTH
/// (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonAndProperties {
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl ReasonAndProperties {
    pub fn new(reason: ReasonCode) -> ReasonAndProperties {
        ReasonAndProperties {
            reason,
            properties: Properties::NONE,
        }
    }
}

/// One MQTT control packet, any version, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(ReasonAndProperties),
    /// MQTT 5 only.
    Auth(ReasonAndProperties),
}

impl Packet {
    /// The packet type's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
