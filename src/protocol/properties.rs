//! MQTT 5 properties (spec §2.2.2, Table 2-4): every identifier read and
//! written, which packet may carry which, which may repeat, and the value
//! ranges the standard sets.
//!
//! A packet without properties (all 3.x traffic, most 5.0 traffic) holds a
//! [`Properties`] that is one null pointer: nothing is allocated, and
//! nothing is parsed beyond the `00` Property Length.

use super::decode::DecodeError;
use super::wire::{Counter, Kind, Reader, Sink};
use super::{QoS, Role};
use bytes::Bytes;

/// The properties of one packet (or of a Will): `None` when there are none.
#[derive(Clone, Default)]
pub struct Properties(Option<Box<PropertyValues>>);

/// Every MQTT 5 property, absent unless set. Repeatable ones are lists,
/// in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyValues {
    /// 0x01: true when the payload is UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// 0x02, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03
    pub content_type: Option<String>,
    /// 0x08: a topic name, no wildcards [MQTT-3.3.2-14].
    pub response_topic: Option<String>,
    /// 0x09
    pub correlation_data: Option<Bytes>,
    /// 0x0B, each 1..=268,435,455: one in SUBSCRIBE, any number in a
    /// PUBLISH to a client.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12
    pub assigned_client_identifier: Option<String>,
    /// 0x13, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15
    pub authentication_method: Option<String>,
    /// 0x16: only with an Authentication Method.
    pub authentication_data: Option<Bytes>,
    /// 0x17
    pub request_problem_information: Option<bool>,
    /// 0x18, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19
    pub request_response_information: Option<bool>,
    /// 0x1A
    pub response_information: Option<String>,
    /// 0x1C
    pub server_reference: Option<String>,
    /// 0x1F
    pub reason_string: Option<String>,
    /// 0x21, at least 1.
    pub receive_maximum: Option<u16>,
    /// 0x22
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, at least 1.
    pub topic_alias: Option<u16>,
    /// 0x24: QoS 0 or 1 (absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25
    pub retain_available: Option<bool>,
    /// 0x26, in order; a name may repeat.
    pub user_properties: Vec<(String, String)>,
    /// 0x27, at least 1.
    pub maximum_packet_size: Option<u32>,
    /// 0x28
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29
    pub subscription_identifiers_available: Option<bool>,
    /// 0x2A
    pub shared_subscription_available: Option<bool>,
}

impl Properties {
    pub const NONE: Properties = Properties(None);

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.get().is_none()
    }

    /// The values, `None` when no property is set.
    #[inline]
    pub fn get(&self) -> Option<&PropertyValues> {
        self.0
            .as_deref()
            .filter(|v| **v != PropertyValues::default())
    }

    /// A message's properties as a property block, for storing them.
    pub fn to_block(&self) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        write(&mut out, self);
        out.to_vec()
    }

    /// Reads back what [`Properties::to_block`] wrote for a message's
    /// properties; `None` if it is not a valid PUBLISH property block.
    pub fn from_block(block: &[u8]) -> Option<Properties> {
        let mut r = Reader { body: block };
        let p = read(&mut r, Kind::Publish, Role::Client).ok()?;
        r.is_empty().then_some(p)
    }

    /// The values for setting one (allocated on first use).
    pub fn values_mut(&mut self) -> &mut PropertyValues {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<PropertyValues> for Properties {
    fn from(v: PropertyValues) -> Properties {
        let mut p = Properties(Some(Box::new(v)));
        if p.is_empty() {
            p.0 = None;
        }
        p
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Properties) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            None => f.write_str("Properties::NONE"),
            Some(v) => v.fmt(f),
        }
    }
}

const fn bit(k: Kind) -> u16 {
    1 << k as u16
}

const APPLICATION: u16 = bit(Kind::Publish) | bit(Kind::Will);
const ACKS: u16 = bit(Kind::PubAck) | bit(Kind::PubRec) | bit(Kind::PubRel) | bit(Kind::PubComp);

/// The packets an identifier is defined for (0: unknown identifier).
fn placement(id: u8) -> u16 {
    use Kind::*;
    match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => APPLICATION,
        0x0B => bit(Subscribe) | bit(Publish),
        0x11 => bit(Connect) | bit(ConnAck) | bit(Disconnect),
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => bit(ConnAck),
        0x15 | 0x16 => bit(Connect) | bit(ConnAck) | bit(Auth),
        0x17 | 0x19 => bit(Connect),
        0x18 => bit(Will),
        0x1C => bit(ConnAck) | bit(Disconnect),
        0x1F => bit(ConnAck) | ACKS | bit(SubAck) | bit(UnsubAck) | bit(Disconnect) | bit(Auth),
        0x21 | 0x22 | 0x27 => bit(Connect) | bit(ConnAck),
        0x23 => bit(Publish),
        0x26 => u16::MAX,
        _ => 0,
    }
}

/// Identifiers a packet type may carry from one side only: a client's
/// PUBLISH has no Subscription Identifier [MQTT-3.3.4-6], a server's
/// DISCONNECT no Session Expiry Interval [MQTT-3.14.2-2], and only a server
/// redirects with a Server Reference.
fn only_from(id: u8, kind: Kind) -> Option<Role> {
    match (id, kind) {
        (0x0B, Kind::Publish) | (0x1C, Kind::Disconnect) => Some(Role::Server),
        (0x11, Kind::Disconnect) => Some(Role::Client),
        _ => None,
    }
}

fn repeatable(id: u8, kind: Kind) -> bool {
    id == 0x26 || (id == 0x0B && kind == Kind::Publish)
}

/// Reads a property block (Property Length and properties) for a packet
/// of `kind` sent by `sender`.
pub(super) fn read(r: &mut Reader, kind: Kind, sender: Role) -> Result<Properties, DecodeError> {
    let len = r.varint()?;
    if len == 0 {
        return Ok(Properties::NONE);
    }
    let mut block = Reader { body: r.take(len)? };
    let mut v = PropertyValues::default();
    let mut seen = 0u64;
    while !block.is_empty() {
        let id = u8::try_from(block.varint()?).unwrap_or(0);
        if placement(id) & bit(kind) == 0 {
            return Err(DecodeError::PropertyNotAllowed(id));
        }
        if only_from(id, kind).is_some_and(|r| r != sender) {
            return Err(DecodeError::PropertyFromWrongSide(id));
        }
        if seen & (1 << id) != 0 && !repeatable(id, kind) {
            return Err(DecodeError::DuplicateProperty(id));
        }
        seen |= 1 << id;
        v.read_value(id, &mut block)?;
    }
    if v.authentication_data.is_some() && v.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "authentication data without a method",
        ));
    }
    Ok(Properties(Some(Box::new(v))))
}

/// A Byte property that may only be 0 or 1.
fn flag(r: &mut Reader, id: u8) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadPropertyValue(id)),
    }
}

/// A property value that must not be 0.
fn nonzero<T: Default + PartialEq>(v: T, id: u8) -> Result<T, DecodeError> {
    if v == T::default() {
        Err(DecodeError::BadPropertyValue(id))
    } else {
        Ok(v)
    }
}

impl PropertyValues {
    fn read_value(&mut self, id: u8, r: &mut Reader) -> Result<(), DecodeError> {
        match id {
            0x01 => self.payload_format_indicator = Some(flag(r, id)?),
            0x02 => self.message_expiry_interval = Some(r.u32()?),
            0x03 => self.content_type = Some(r.string()?), // [MQTT-3.3.2-19]
            0x08 => {
                let topic = r.string()?; // [MQTT-3.3.2-13]
                if topic.contains(['+', '#']) {
                    return Err(DecodeError::BadPropertyValue(id)); // [MQTT-3.3.2-14]
                }
                self.response_topic = Some(topic);
            }
            0x09 => self.correlation_data = Some(r.bytes()?),
            0x0B => {
                let sid = nonzero(r.varint()?, id)?;
                // A varint holds at most 268,435,455: always fits.
                self.subscription_identifiers.push(sid as u32);
            }
            0x11 => self.session_expiry_interval = Some(r.u32()?),
            0x12 => self.assigned_client_identifier = Some(r.string()?),
            0x13 => self.server_keep_alive = Some(r.u16()?),
            0x15 => self.authentication_method = Some(r.string()?),
            0x16 => self.authentication_data = Some(r.bytes()?),
            0x17 => self.request_problem_information = Some(flag(r, id)?),
            0x18 => self.will_delay_interval = Some(r.u32()?),
            0x19 => self.request_response_information = Some(flag(r, id)?),
            0x1A => self.response_information = Some(r.string()?),
            0x1C => self.server_reference = Some(r.string()?),
            0x1F => self.reason_string = Some(r.string()?),
            0x21 => self.receive_maximum = Some(nonzero(r.u16()?, id)?),
            0x22 => self.topic_alias_maximum = Some(r.u16()?),
            0x23 => {
                let alias = r.u16()?;
                if alias == 0 {
                    return Err(DecodeError::TopicAliasInvalid); // [MQTT-3.3.2-8]
                }
                self.topic_alias = Some(alias);
            }
            0x24 => {
                let qos = if flag(r, id)? {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                self.maximum_qos = Some(qos);
            }
            0x25 => self.retain_available = Some(flag(r, id)?),
            0x26 => self.user_properties.push((r.string()?, r.string()?)), // [MQTT-1.5.7-1]
            0x27 => self.maximum_packet_size = Some(nonzero(r.u32()?, id)?),
            0x28 => self.wildcard_subscription_available = Some(flag(r, id)?),
            0x29 => self.subscription_identifiers_available = Some(flag(r, id)?),
            0x2A => self.shared_subscription_available = Some(flag(r, id)?),
            _ => return Err(DecodeError::PropertyNotAllowed(id)),
        }
        Ok(())
    }

    /// Writes every property that is set, in identifier order.
    fn write_values<S: Sink + ?Sized>(&self, s: &mut S) {
        self.write_some(s, true)
    }

    /// Writes the properties that are set, in identifier order: all of
    /// them, or (`all` false) those a server forwards unchanged in a
    /// PUBLISH, leaving out Message Expiry Interval, Subscription
    /// Identifiers and Topic Alias.
    fn write_some<S: Sink + ?Sized>(&self, s: &mut S, all: bool) {
        fn byte<S: Sink + ?Sized>(s: &mut S, id: u8, v: Option<u8>) {
            if let Some(v) = v {
                s.u8(id);
                s.u8(v);
            }
        }
        fn two<S: Sink + ?Sized>(s: &mut S, id: u8, v: Option<u16>) {
            if let Some(v) = v {
                s.u8(id);
                s.u16(v);
            }
        }
        fn four<S: Sink + ?Sized>(s: &mut S, id: u8, v: Option<u32>) {
            if let Some(v) = v {
                s.u8(id);
                s.u32(v);
            }
        }
        fn text<S: Sink + ?Sized>(s: &mut S, id: u8, v: &Option<String>) {
            if let Some(v) = v {
                s.u8(id);
                s.string(v);
            }
        }
        fn binary<S: Sink + ?Sized>(s: &mut S, id: u8, v: &Option<Bytes>) {
            if let Some(v) = v {
                s.u8(id);
                s.binary(v);
            }
        }
        let b = |v: Option<bool>| v.map(u8::from);
        byte(s, 0x01, b(self.payload_format_indicator));
        if all {
            four(s, 0x02, self.message_expiry_interval);
        }
        text(s, 0x03, &self.content_type);
        text(s, 0x08, &self.response_topic);
        binary(s, 0x09, &self.correlation_data);
        let sids: &[u32] = if all {
            &self.subscription_identifiers
        } else {
            &[]
        };
        for &sid in sids {
            s.u8(0x0B);
            s.varint(sid as usize);
        }
        four(s, 0x11, self.session_expiry_interval);
        text(s, 0x12, &self.assigned_client_identifier);
        two(s, 0x13, self.server_keep_alive);
        text(s, 0x15, &self.authentication_method);
        binary(s, 0x16, &self.authentication_data);
        byte(s, 0x17, b(self.request_problem_information));
        four(s, 0x18, self.will_delay_interval);
        byte(s, 0x19, b(self.request_response_information));
        text(s, 0x1A, &self.response_information);
        text(s, 0x1C, &self.server_reference);
        text(s, 0x1F, &self.reason_string);
        two(s, 0x21, self.receive_maximum);
        two(s, 0x22, self.topic_alias_maximum);
        if all {
            two(s, 0x23, self.topic_alias);
        }
        byte(s, 0x24, self.maximum_qos.map(|q| q as u8));
        byte(s, 0x25, b(self.retain_available));
        for (name, value) in &self.user_properties {
            s.u8(0x26);
            s.string(name);
            s.string(value);
        }
        four(s, 0x27, self.maximum_packet_size);
        byte(s, 0x28, b(self.wildcard_subscription_available));
        byte(s, 0x29, b(self.subscription_identifiers_available));
        byte(s, 0x2A, b(self.shared_subscription_available));
    }
}

/// Writes a property block: Property Length, then the properties.
pub(super) fn write<S: Sink + ?Sized>(s: &mut S, p: &Properties) {
    let Some(v) = p.get() else {
        return s.u8(0);
    };
    let mut count = Counter::default();
    v.write_values(&mut count);
    if count.too_long {
        s.too_long();
    }
    s.varint(count.len);
    v.write_values(s);
}

/// What the server adds to a message's own properties in one copy of it
/// (MQTT 5): they differ between the subscribers of one message, so they
/// are written beside the message's properties rather than into them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outbound<'a> {
    /// The Message Expiry Interval left, in place of the one received
    /// [MQTT-3.3.2-6].
    pub message_expiry: Option<u32>,
    /// The identifiers of the subscriptions that matched [MQTT-3.3.4-3].
    pub subscription_ids: &'a [u32],
    /// The Topic Alias used for this copy.
    pub topic_alias: Option<u16>,
}

impl Outbound<'_> {
    fn write_values<S: Sink + ?Sized>(&self, s: &mut S) {
        if let Some(v) = self.message_expiry {
            s.u8(0x02);
            s.u32(v);
        }
        for &sid in self.subscription_ids {
            s.u8(0x0B);
            s.varint(sid as usize);
        }
        if let Some(v) = self.topic_alias {
            s.u8(0x23);
            s.u16(v);
        }
    }
}

/// A PUBLISH's property block for one subscriber: the message's own
/// properties as received, less those the server replaces or must not
/// forward (expiry, alias, subscription identifiers), plus `out`.
pub(super) fn write_outbound<S: Sink + ?Sized>(s: &mut S, p: &Properties, out: &Outbound) {
    let mut count = Counter::default();
    write_contents(&mut count, p, out);
    if count.too_long {
        s.too_long();
    }
    write_outbound_sized(s, p, out, count.len);
}

/// [`write_outbound`] with the block's content length known already
/// ([`outbound_content_len`]): it is counted once per copy, not twice.
pub(super) fn write_outbound_sized<S: Sink + ?Sized>(
    s: &mut S,
    p: &Properties,
    out: &Outbound,
    len: usize,
) {
    s.varint(len);
    write_contents(s, p, out);
}

/// The properties of [`write_outbound`], without the Property Length.
fn write_contents<S: Sink + ?Sized>(s: &mut S, p: &Properties, out: &Outbound) {
    if let Some(v) = p.get() {
        v.write_some(s, false);
    }
    out.write_values(s);
}

/// Bytes of the properties [`write_outbound`] writes after the Property
/// Length.
pub(super) fn outbound_content_len(p: &Properties, out: &Outbound) -> usize {
    let mut count = Counter::default();
    write_contents(&mut count, p, out);
    count.len
}

/// Bytes [`write_outbound`] produces.
pub(super) fn outbound_len(p: &Properties, out: &Outbound) -> usize {
    let mut count = Counter::default();
    write_outbound(&mut count, p, out);
    count.len
}

/// Bytes [`write`] produces for `p`.
pub(super) fn block_len(p: &Properties) -> usize {
    let mut count = Counter::default();
    write(&mut count, p);
    count.len
}
