//! Encoding, any packet at any level. [`encode`] writes a [`Packet`]; the
//! packets the broker sends per message have functions of their own that
//! write straight into a connection's output buffer: no intermediate
//! packet value, no allocation beyond the buffer.
//!
//! 3.x has no properties and fewer reason codes: at those levels the
//! properties are left out and reason codes become the nearest 3.x code
//! (what a 3.1.1 subscriber of an MQTT 5 publisher receives).

use super::properties::{self, Outbound, Properties};
use super::wire::{put_remaining_length, varint_len, Counter, Sink};
use super::{
    Ack, ConnAck, Connect, Packet, ProtocolLevel, QoS, ReasonCode, Subscribe, SubscriptionOptions,
    Unsubscribe, MAX_REMAINING_LENGTH,
};
use bytes::{BufMut, BytesMut};
use std::fmt;

/// Why [`encode`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The packet needs a Remaining Length above the 4-byte maximum.
    TooLarge(usize),
    /// A string or binary field longer than its 2-byte length allows.
    FieldTooLong,
    /// The packet does not exist at this level (AUTH before MQTT 5).
    NotInLevel,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLarge(n) => write!(f, "packet of {n} bytes is too large for MQTT"),
            EncodeError::FieldTooLong => write!(f, "a field is longer than 65,535 bytes"),
            EncodeError::NotInLevel => write!(f, "packet type does not exist at this level"),
        }
    }
}

/// Writes `packet` at `level` to `out`; on error nothing is written.
pub fn encode(
    packet: &Packet,
    level: ProtocolLevel,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if matches!(packet, Packet::Auth(_)) && level != ProtocolLevel::V5 {
        return Err(EncodeError::NotInLevel);
    }
    let mut count = Counter::default();
    body(packet, level, &mut count);
    if count.too_long {
        return Err(EncodeError::FieldTooLong);
    }
    if count.len > MAX_REMAINING_LENGTH {
        return Err(EncodeError::TooLarge(count.len));
    }
    write_frame(out, first_byte(packet), count.len, &|s| {
        body(packet, level, s)
    });
    Ok(())
}

/// Writes a fixed header and a body. The length is the body's own count,
/// so the frame stays consistent even if a too-long field was left out.
fn frame(out: &mut BytesMut, first: u8, body: &dyn Fn(&mut dyn Sink)) {
    let mut count = Counter::default();
    body(&mut count);
    write_frame(out, first, count.len, body);
}

fn write_frame(out: &mut BytesMut, first: u8, len: usize, body: &dyn Fn(&mut dyn Sink)) {
    out.reserve(1 + varint_len(len) + len);
    out.put_u8(first);
    put_remaining_length(out, len);
    body(out);
}

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => publish_first_byte(&PublishFlags {
            qos: p.qos,
            pkid: p.pkid,
            dup: p.dup,
            retain: p.retain,
        }),
        Packet::PubAck(_) => AckKind::PubAck as u8,
        Packet::PubRec(_) => AckKind::PubRec as u8,
        Packet::PubRel(_) => AckKind::PubRel as u8,
        Packet::PubComp(_) => AckKind::PubComp as u8,
        Packet::Subscribe(_) => 0x82, // [MQTT-3.8.1-1]
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xA2, // [MQTT-3.10.1-1]
        Packet::UnsubAck(_) => 0xB0,
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(_) => 0xE0,
        Packet::Auth(_) => 0xF0,
    }
}

fn body(packet: &Packet, level: ProtocolLevel, s: &mut dyn Sink) {
    let v5 = level == ProtocolLevel::V5;
    match packet {
        Packet::Connect(c) => connect_body(s, c, level),
        Packet::ConnAck(c) => connack_body(s, level, c),
        Packet::Publish(p) => {
            s.string(&p.topic);
            if p.qos != QoS::AtMostOnce {
                s.u16(p.pkid);
            }
            if v5 {
                properties::write(s, &p.properties);
            }
            s.put(&p.payload);
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack_body(s, v5, a)
        }
        Packet::Subscribe(sub) => subscribe_body(s, v5, sub),
        Packet::SubAck(a) => suback_body(s, level, a.pkid, &a.codes, &a.properties),
        Packet::Unsubscribe(u) => unsubscribe_body(s, v5, u),
        Packet::UnsubAck(a) => unsuback_body(s, level, a.pkid, &a.codes, &a.properties),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) | Packet::Auth(d) => reason_block(s, v5, d.reason, &d.properties),
    }
}

fn connect_body(s: &mut dyn Sink, c: &Connect, level: ProtocolLevel) {
    let (name, version) = level.name_and_version();
    s.binary(name);
    s.u8(version);
    let mut flags = (c.clean_session as u8) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos as u8) << 3 | (w.retain as u8) << 5;
    }
    flags |= (c.password.is_some() as u8) << 6 | (c.username.is_some() as u8) << 7;
    s.u8(flags);
    s.u16(c.keep_alive);
    let v5 = level == ProtocolLevel::V5;
    if v5 {
        properties::write(s, &c.properties);
    }
    s.string(&c.client_id);
    if let Some(w) = &c.will {
        if v5 {
            properties::write(s, &w.properties);
        }
        s.string(&w.topic);
        s.binary(&w.payload);
    }
    if let Some(user) = &c.username {
        s.string(user);
    }
    if let Some(pass) = &c.password {
        s.binary(pass);
    }
}

fn connack_body(s: &mut dyn Sink, level: ProtocolLevel, c: &ConnAck) {
    s.u8(c.session_present as u8);
    if level == ProtocolLevel::V5 {
        s.u8(c.code as u8);
        properties::write(s, &c.properties);
    } else {
        s.u8(c.code.v3_connack_code());
    }
}

/// MQTT 5 acks use the short form when they can: Remaining Length 2 for
/// Success without properties, 3 for a reason code alone.
fn ack_body(s: &mut dyn Sink, v5: bool, a: &Ack) {
    s.u16(a.pkid);
    reason_block(s, v5, a.reason, &a.properties);
}

/// The end of DISCONNECT, AUTH and the acks in MQTT 5: a reason code and
/// properties, both left out when they are Success and none, the
/// properties alone left out when there are none. Nothing in 3.x.
fn reason_block(s: &mut dyn Sink, v5: bool, reason: ReasonCode, props: &Properties) {
    if !v5 || (reason == ReasonCode::Success && props.is_empty()) {
        return;
    }
    s.u8(reason as u8);
    if !props.is_empty() {
        properties::write(s, props);
    }
}

fn options_byte(o: &SubscriptionOptions, v5: bool) -> u8 {
    if !v5 {
        return o.qos as u8;
    }
    o.qos as u8
        | (o.no_local as u8) << 2
        | (o.retain_as_published as u8) << 3
        | (o.retain_handling as u8) << 4
}

fn subscribe_body(s: &mut dyn Sink, v5: bool, sub: &Subscribe) {
    s.u16(sub.pkid);
    if v5 {
        properties::write(s, &sub.properties);
    }
    for (filter, options) in &sub.filters {
        s.string(filter);
        s.u8(options_byte(options, v5));
    }
}

fn suback_body(
    s: &mut dyn Sink,
    level: ProtocolLevel,
    pkid: u16,
    codes: &[ReasonCode],
    props: &Properties,
) {
    s.u16(pkid);
    if level == ProtocolLevel::V5 {
        properties::write(s, props);
        for &c in codes {
            s.u8(c as u8);
        }
    } else {
        for &c in codes {
            s.u8(c.v3_suback_code());
        }
    }
}

fn unsubscribe_body(s: &mut dyn Sink, v5: bool, u: &Unsubscribe) {
    s.u16(u.pkid);
    if v5 {
        properties::write(s, &u.properties);
    }
    for filter in &u.filters {
        s.string(filter);
    }
}

fn unsuback_body(
    s: &mut dyn Sink,
    level: ProtocolLevel,
    pkid: u16,
    codes: &[ReasonCode],
    props: &Properties,
) {
    s.u16(pkid);
    if level == ProtocolLevel::V5 {
        properties::write(s, props);
        for &c in codes {
            s.u8(c as u8);
        }
    }
}

// ------------------------------------------------------------ fast paths

/// PUBACK, PUBREC, PUBREL (flags 0010 [MQTT-3.6.1-1]) and PUBCOMP, as
/// their first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AckKind {
    PubAck = 0x40,
    PubRec = 0x50,
    PubRel = 0x62,
    PubComp = 0x70,
}

/// An ack without properties. 3.x acks carry no reason code; an MQTT 5
/// ack carries one only when it is not Success (short forms, spec
/// §3.4.2.1).
pub fn encode_ack(
    out: &mut BytesMut,
    level: ProtocolLevel,
    kind: AckKind,
    pkid: u16,
    reason: ReasonCode,
) {
    let [hi, lo] = pkid.to_be_bytes();
    if level == ProtocolLevel::V5 && reason != ReasonCode::Success {
        out.put_slice(&[kind as u8, 0x03, hi, lo, reason as u8]);
    } else {
        out.put_slice(&[kind as u8, 0x02, hi, lo]);
    }
}

/// CONNACK: Session Present and the code (a 3.x return code below MQTT 5).
pub fn encode_connack(
    out: &mut BytesMut,
    level: ProtocolLevel,
    session_present: bool,
    code: ReasonCode,
    properties: &Properties,
) {
    if level != ProtocolLevel::V5 {
        out.put_slice(&[0x20, 0x02, session_present as u8, code.v3_connack_code()]);
        return;
    }
    frame(out, 0x20, &|s| {
        s.u8(session_present as u8);
        s.u8(code as u8);
        properties::write(s, properties);
    });
}

/// SUBACK, one code per filter of the SUBSCRIBE.
pub fn encode_suback(
    out: &mut BytesMut,
    level: ProtocolLevel,
    pkid: u16,
    codes: &[ReasonCode],
    properties: &Properties,
) {
    frame(out, 0x90, &|s| {
        suback_body(s, level, pkid, codes, properties)
    });
}

/// UNSUBACK; `codes` (one per filter) are MQTT 5 only.
pub fn encode_unsuback(
    out: &mut BytesMut,
    level: ProtocolLevel,
    pkid: u16,
    codes: &[ReasonCode],
    properties: &Properties,
) {
    frame(out, 0xB0, &|s| {
        unsuback_body(s, level, pkid, codes, properties)
    });
}

pub fn encode_pingresp(out: &mut BytesMut) {
    out.put_slice(&[0xD0, 0x00]);
}

/// What differs between the copies of one message sent to subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishFlags {
    pub qos: QoS,
    /// Ignored for QoS 0, which carries no identifier [MQTT-2.3.1-5].
    pub pkid: u16,
    /// Ignored for QoS 0, which is never DUP [MQTT-3.3.1-2].
    pub dup: bool,
    pub retain: bool,
}

fn publish_first_byte(f: &PublishFlags) -> u8 {
    let with_id = f.qos != QoS::AtMostOnce;
    0x30 | ((f.dup && with_id) as u8) << 3 | (f.qos as u8) << 1 | f.retain as u8
}

/// Remaining Length of a PUBLISH.
fn publish_remaining(
    level: ProtocolLevel,
    topic: &str,
    payload_len: usize,
    properties: &Properties,
    qos: QoS,
) -> usize {
    let id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let props = if level == ProtocolLevel::V5 {
        properties::block_len(properties)
    } else {
        0
    };
    2 + topic.len() + id + props + payload_len
}

/// Size on the wire of a PUBLISH with this topic, payload and properties.
pub fn publish_len(
    level: ProtocolLevel,
    topic: &str,
    payload_len: usize,
    properties: &Properties,
    qos: QoS,
) -> usize {
    let remaining = publish_remaining(level, topic, payload_len, properties, qos);
    1 + varint_len(remaining) + remaining
}

/// PUBLISH, written straight into `out`. The topic (at most 65,535 bytes)
/// and properties are the message's own, as decoded or built by the
/// broker; below MQTT 5 the properties are left out. Always inlined: it
/// runs once per message and subscriber, and inlined its arguments need no
/// packing and its 3.x path no call (measured: 24 instructions per copy).
#[inline(always)]
pub fn encode_publish(
    out: &mut BytesMut,
    level: ProtocolLevel,
    topic: &str,
    payload: &[u8],
    properties: &Properties,
    flags: PublishFlags,
) {
    let v5 = level == ProtocolLevel::V5;
    if v5 && !properties.is_empty() {
        return encode_publish_v5(out, topic, payload, properties, flags);
    }
    // 3.x, or MQTT 5 without properties: one zero byte of Property Length.
    let with_id = flags.qos != QoS::AtMostOnce;
    let remaining = 2 + topic.len() + payload.len() + 2 * with_id as usize + v5 as usize;
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(publish_first_byte(&flags));
    put_remaining_length(out, remaining);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic.as_bytes());
    if with_id {
        out.put_u16(flags.pkid);
    }
    if v5 {
        out.put_u8(0);
    }
    out.put_slice(payload);
}

/// An MQTT 5 PUBLISH for one subscriber: the message's properties as
/// received (less the ones `out` replaces) and the subscriber's own
/// (`out`). With a Topic Alias the topic may be empty (already known).
pub fn encode_publish_out(
    out: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    properties: &Properties,
    extra: &Outbound,
    flags: PublishFlags,
) {
    let block = properties::outbound_content_len(properties, extra);
    let id = if flags.qos == QoS::AtMostOnce { 0 } else { 2 };
    let remaining = 2 + topic.len() + id + varint_len(block) + block + payload.len();
    publish_v5_frame(out, topic, payload, flags, remaining, |out| {
        properties::write_outbound_sized(out, properties, extra, block)
    });
}

/// An MQTT 5 PUBLISH of `remaining` bytes after its fixed header, its
/// property block written by `block`.
#[inline]
fn publish_v5_frame(
    out: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    flags: PublishFlags,
    remaining: usize,
    block: impl FnOnce(&mut BytesMut),
) {
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(publish_first_byte(&flags));
    put_remaining_length(out, remaining);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic.as_bytes());
    if flags.qos != QoS::AtMostOnce {
        out.put_u16(flags.pkid);
    }
    block(out);
    out.put_slice(payload);
}

fn publish_out_remaining(
    topic: &str,
    payload_len: usize,
    properties: &Properties,
    extra: &Outbound,
    qos: QoS,
) -> usize {
    let id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    2 + topic.len() + id + properties::outbound_len(properties, extra) + payload_len
}

/// Size on the wire of what [`encode_publish_out`] writes.
pub fn publish_out_len(
    topic: &str,
    payload_len: usize,
    properties: &Properties,
    extra: &Outbound,
    qos: QoS,
) -> usize {
    let remaining = publish_out_remaining(topic, payload_len, properties, extra, qos);
    1 + varint_len(remaining) + remaining
}

/// The MQTT 5 layout: a property block after the packet identifier.
#[inline(never)]
fn encode_publish_v5(
    out: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    properties: &Properties,
    flags: PublishFlags,
) {
    let level = ProtocolLevel::V5;
    let remaining = publish_remaining(level, topic, payload.len(), properties, flags.qos);
    publish_v5_frame(out, topic, payload, flags, remaining, |out| {
        properties::write(out, properties)
    });
}
