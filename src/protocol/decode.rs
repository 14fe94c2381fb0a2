//! Incremental decoding: [`decode`] looks at a connection's read buffer and
//! either returns one complete packet (consuming its bytes), `Ok(None)` when
//! more bytes are needed, or an error that closes the connection.

use super::properties::{self, Properties};
use super::wire::{remaining_length, varint_len, Kind, Reader};
use super::{
    Ack, ConnAck, Connect, LastWill, Limits, Packet, ProtocolLevel, Publish, QoS,
    ReasonAndProperties, ReasonCode, RetainHandling, Role, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// Why a byte stream could not be decoded. Every variant is a protocol
/// violation (or a local limit) and closes the connection [MQTT-4.8.0-1];
/// [`DecodeError::reason_code`] is the code an MQTT 5 peer is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Remaining Length needs a fifth byte.
    BadRemainingLength,
    /// Packet larger than the configured limit [MQTT-4.8.0-2].
    TooLarge(usize),
    /// Packet type 0, or one the other side never sends, or AUTH (15) or a
    /// server's DISCONNECT before MQTT 5.
    BadPacketType(u8),
    /// Reserved fixed-header flags wrong [MQTT-2.2.2-2], [MQTT-2.1.3-1].
    BadFlags(u8),
    /// A field runs past the end, bytes are left over, or a field holds a
    /// value the standard calls malformed.
    Malformed(&'static str),
    /// A string is not well-formed UTF-8 or holds U+0000.
    BadUtf8,
    /// Packet identifier 0 where one is required [MQTT-2.3.1-1].
    ZeroPacketId,
    /// CONNECT with an unknown protocol name [MQTT-3.1.2-1].
    UnknownProtocol,
    /// Well-formed but contrary to the standard (MQTT 5 "Protocol Error").
    Protocol(&'static str),
    /// A property identifier unknown, or not defined for this packet.
    PropertyNotAllowed(u8),
    /// A property this packet may carry only from the other side (e.g. a
    /// Subscription Identifier from a client [MQTT-3.3.4-6]).
    PropertyFromWrongSide(u8),
    /// A property that may appear once appears twice.
    DuplicateProperty(u8),
    /// A property value out of its range (Receive Maximum 0, a flag not
    /// 0/1, a Response Topic with wildcards...).
    BadPropertyValue(u8),
    /// Topic Alias 0 [MQTT-3.3.2-8].
    TopicAliasInvalid,
    /// A reason code not defined for this packet, or not from this sender.
    BadReasonCode(u8),
}

impl DecodeError {
    /// The MQTT 5 reason code for this error (spec §4.13 and each rule's
    /// text; where the standard leaves 0x81 or 0x82 open, mosquitto's
    /// choice).
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            BadRemainingLength | BadFlags(_) | Malformed(_) | BadUtf8 | PropertyNotAllowed(_) => {
                ReasonCode::MalformedPacket
            }
            BadPacketType(0) => ReasonCode::MalformedPacket,
            TooLarge(_) => ReasonCode::PacketTooLarge,
            UnknownProtocol => ReasonCode::UnsupportedProtocolVersion,
            TopicAliasInvalid => ReasonCode::TopicAliasInvalid,
            BadPacketType(_)
            | ZeroPacketId
            | Protocol(_)
            | PropertyFromWrongSide(_)
            | DuplicateProperty(_)
            | BadPropertyValue(_)
            | BadReasonCode(_) => ReasonCode::ProtocolError,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadRemainingLength => write!(f, "remaining length longer than 4 bytes"),
            DecodeError::TooLarge(n) => write!(f, "packet of {n} bytes exceeds the size limit"),
            DecodeError::BadPacketType(t) => write!(f, "packet type {t} not allowed here"),
            DecodeError::BadFlags(b) => write!(f, "invalid fixed-header flags in byte {b:#04x}"),
            DecodeError::Malformed(what) => write!(f, "malformed packet: {what}"),
            DecodeError::BadUtf8 => write!(f, "string is not well-formed UTF-8 or contains U+0000"),
            DecodeError::ZeroPacketId => write!(f, "packet identifier 0"),
            DecodeError::UnknownProtocol => write!(f, "unknown protocol name"),
            DecodeError::Protocol(what) => write!(f, "protocol error: {what}"),
            DecodeError::PropertyNotAllowed(id) => {
                write!(
                    f,
                    "property {id:#04x} unknown or not allowed in this packet"
                )
            }
            DecodeError::PropertyFromWrongSide(id) => {
                write!(f, "property {id:#04x} not allowed from this side")
            }
            DecodeError::DuplicateProperty(id) => write!(f, "property {id:#04x} given twice"),
            DecodeError::BadPropertyValue(id) => write!(f, "property {id:#04x} out of range"),
            DecodeError::TopicAliasInvalid => write!(f, "topic alias 0"),
            DecodeError::BadReasonCode(c) => write!(f, "reason code {c:#04x} not allowed here"),
        }
    }
}

/// Checks the fixed-header byte before any body is buffered, so a bad type
/// or an oversized packet is refused from its first bytes.
fn check_header(byte: u8, level: Option<ProtocolLevel>, role: Role) -> Result<(), DecodeError> {
    let t = byte >> 4;
    if t == 3 {
        return Ok(()); // PUBLISH, both ways; its flags are checked with the packet
    }
    let v5 = level == Some(ProtocolLevel::V5);
    let expected = match (t, role) {
        (4..=7, _) | (1 | 8 | 10 | 12 | 14, Role::Server) | (2 | 9 | 11 | 13, Role::Client) => true,
        (14, Role::Client) | (15, _) => v5,
        _ => false,
    };
    if !expected {
        return Err(DecodeError::BadPacketType(t));
    }
    let flags = byte & 0x0f;
    let ok = match t {
        // MQTT 3.1 set DUP on a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE;
        // 3.1.1 fixed their flags at 0010 [MQTT-3.6.1-1], [MQTT-3.8.1-1].
        6 | 8 | 10 if level == Some(ProtocolLevel::V31) => flags & !0b1000 == 0b0010,
        6 | 8 | 10 => flags == 0b0010,
        _ => flags == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::BadFlags(byte))
    }
}

/// Decodes one packet from the front of `buf` if it is complete, and
/// consumes its bytes.
///
/// `level` is the connection's protocol level once CONNECT has been sent
/// (client) or accepted (server); `None` decodes the 3.x layouts. `role` is
/// the side decoding. A packet larger than `limits` is refused from its
/// header, before its body is read.
pub fn decode(
    buf: &mut BytesMut,
    level: Option<ProtocolLevel>,
    role: Role,
    limits: &Limits,
) -> Result<Option<Packet>, DecodeError> {
    let Some((packet, used)) = decode_ref(buf, level, role, limits)? else {
        return Ok(None);
    };
    let packet = match packet {
        PacketRef::Publish(p) => {
            // The payload is not copied: it stays a view of the frame, which
            // leaves the read buffer. Whoever keeps the message past the
            // handling of its packet should copy it, so that it does not
            // pin the read buffer. (The broker decodes in place instead,
            // with `decode_ref`.)
            let len = p.payload.len();
            // Where the payload lies in the frame (the parser only ever
            // narrows the frame's slice; should that change, the payload
            // is copied rather than a wrong range taken).
            let at = (p.payload.as_ptr() as usize)
                .checked_sub(buf.as_ptr() as usize)
                .filter(|&at| at.checked_add(len).is_some_and(|end| end <= used));
            let Some(at) = at else {
                let publish = p.into_publish();
                buf.advance(used);
                return Ok(Some(Packet::Publish(publish)));
            };
            let mut publish = p.into_publish_without_payload();
            let frame = buf.split_to(used).freeze();
            publish.payload = frame.slice(at..at + len);
            return Ok(Some(Packet::Publish(publish)));
        }
        PacketRef::Other(p) => p,
    };
    buf.advance(used);
    Ok(Some(packet))
}

/// A packet read in place: a PUBLISH's topic and payload borrowed from the
/// read buffer (nothing allocated or copied, for a consumer that is done
/// with them before it reads on), any other packet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketRef<'a> {
    Publish(PublishRef<'a>),
    Other(Packet),
}

/// A PUBLISH whose topic and payload are still in the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRef<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Checked: well-formed UTF-8 without U+0000 (one pass does both).
    pub topic: &'a str,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: &'a [u8],
    pub properties: Properties,
    /// The whole packet as received when its Remaining Length has the
    /// shortest encoding, so that encoding it again for a subscriber at the
    /// same protocol level, with the same flags and properties, gives these
    /// very bytes; empty otherwise.
    pub frame: &'a [u8],
}

impl PublishRef<'_> {
    /// The PUBLISH with its own copies of the topic and payload.
    pub fn into_publish(self) -> Publish {
        let payload = Bytes::copy_from_slice(self.payload);
        Publish {
            payload,
            ..self.into_publish_without_payload()
        }
    }

    /// The PUBLISH with its own copy of the topic and an empty payload.
    fn into_publish_without_payload(self) -> Publish {
        Publish {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.topic.into(),
            pkid: self.pkid,
            payload: Bytes::new(),
            properties: self.properties,
        }
    }
}

/// [`decode`] without consuming or copying: the packet at the front of
/// `buf`, if complete, and the bytes it takes.
pub fn decode_ref<'a>(
    buf: &'a [u8],
    level: Option<ProtocolLevel>,
    role: Role,
    limits: &Limits,
) -> Result<Option<(PacketRef<'a>, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_header(first, level, role)?;
    let Some((len, len_bytes)) = remaining_length(buf)? else {
        return Ok(None);
    };
    if len > limits.max_remaining_length {
        return Err(DecodeError::TooLarge(len));
    }
    let header = 1 + len_bytes;
    if buf.len() < header + len {
        return Ok(None);
    }
    let mut packet = parse(first, &buf[header..header + len], level, role, limits)?;
    if let PacketRef::Publish(p) = &mut packet {
        if len_bytes == varint_len(len) {
            p.frame = &buf[..header + len];
        }
    }
    Ok(Some((packet, header + len)))
}

/// Bytes still missing for the packet at the front of `buf` (0 if unknown):
/// lets the reader size its next read for a large packet.
pub fn bytes_wanted(buf: &[u8]) -> usize {
    match remaining_length(buf) {
        Ok(Some((len, n))) => (1 + n + len).saturating_sub(buf.len()),
        _ => 0,
    }
}

/// What one packet's body is read with: the version and who sent it.
struct Ctx {
    v5: bool,
    sender: Role,
}

impl Ctx {
    #[inline(always)]
    fn properties(&self, r: &mut Reader, kind: Kind) -> Result<Properties, DecodeError> {
        if !self.v5 {
            return Ok(Properties::NONE);
        }
        // Most packets have none (a length of 0): no call for them.
        if let Some((0, rest)) = r.body.split_first() {
            r.body = rest;
            return Ok(Properties::NONE);
        }
        properties::read(r, kind, self.sender)
    }

    /// A reason code byte, checked against the packet's list.
    fn reason(&self, r: &mut Reader, kind: Kind) -> Result<ReasonCode, DecodeError> {
        let byte = r.u8()?;
        ReasonCode::from_u8(byte)
            .filter(|c| c.allowed(kind, self.sender))
            .ok_or(DecodeError::BadReasonCode(byte))
    }
}

fn parse<'a>(
    first: u8,
    body: &'a [u8],
    level: Option<ProtocolLevel>,
    role: Role,
    limits: &Limits,
) -> Result<PacketRef<'a>, DecodeError> {
    let ctx = Ctx {
        v5: level == Some(ProtocolLevel::V5),
        sender: match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        },
    };
    let mut r = Reader { body };
    let r = &mut r;
    let packet = match first >> 4 {
        // The payload is the rest of the packet: nothing left to check.
        3 => return parse_publish(first, r, &ctx).map(PacketRef::Publish),
        1 => Packet::Connect(Box::new(parse_connect(r, limits)?)),
        2 => Packet::ConnAck(parse_connack(r, &ctx)?),
        4 => Packet::PubAck(parse_ack(r, &ctx, Kind::PubAck)?),
        5 => Packet::PubRec(parse_ack(r, &ctx, Kind::PubRec)?),
        6 => Packet::PubRel(parse_ack(r, &ctx, Kind::PubRel)?),
        7 => Packet::PubComp(parse_ack(r, &ctx, Kind::PubComp)?),
        8 => Packet::Subscribe(parse_subscribe(r, &ctx)?),
        9 => Packet::SubAck(parse_suback(r, &ctx)?),
        10 => Packet::Unsubscribe(parse_unsubscribe(r, &ctx)?),
        11 => Packet::UnsubAck(parse_unsuback(r, &ctx)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(parse_reason_block(r, &ctx, Kind::Disconnect)?),
        15 => Packet::Auth(parse_reason_block(r, &ctx, Kind::Auth)?),
        t => return Err(DecodeError::BadPacketType(t)),
    };
    r.finish()?;
    Ok(PacketRef::Other(packet))
}

fn parse_connect(r: &mut Reader, limits: &Limits) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let version = r.u8()?;
    let level = match (name, version) {
        (b"MQTT", 5) if limits.mqtt5 => Some(ProtocolLevel::V5),
        (b"MQTT", 4) => Some(ProtocolLevel::V311),
        (b"MQIsdp", 3) => Some(ProtocolLevel::V31),
        (b"MQTT", _) | (b"MQIsdp", _) => None,
        _ => return Err(DecodeError::UnknownProtocol),
    };
    let flags = r.u8()?;
    let keep_alive = r.u16()?;
    let Some(level) = level else {
        // Answer 0x01 without reading further: the rest may be another
        // protocol revision's layout.
        let _ = r.rest();
        return Ok(Connect {
            level: None,
            clean_session: false,
            keep_alive,
            client_id: String::new(),
            will: None,
            username: None,
            password: None,
            properties: Properties::NONE,
        });
    };
    // 3.1 is read leniently, as mosquitto does; 3.1.1 and 5 strictly.
    let strict = level != ProtocolLevel::V31;
    let v5 = level == ProtocolLevel::V5;
    if flags & 0x01 != 0 && strict {
        return Err(DecodeError::Malformed("reserved connect flag set")); // [MQTT-3.1.2-3]
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::Malformed("will QoS/retain without will flag"));
        // [MQTT-3.1.2-11/13/15]
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::Malformed("will QoS 3"))?; // [MQTT-3.1.2-14]
    let has_user = flags & 0x80 != 0;
    let has_pass = flags & 0x40 != 0;
    if has_pass && !has_user && level == ProtocolLevel::V311 {
        return Err(DecodeError::Malformed("password without user name")); // [MQTT-3.1.2-22]
    }
    let ctx = Ctx {
        v5,
        sender: Role::Client,
    };
    let properties = ctx.properties(r, Kind::Connect)?;
    let client_id = r.string()?; // [MQTT-3.1.3-3], [MQTT-3.1.3-4]
    let will = if will_flag {
        let properties = ctx.properties(r, Kind::Will)?;
        let topic = r.str()?.into(); // [MQTT-3.1.3-10]
        let payload = r.bytes()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    // MQTT 3.1 clients sometimes set a flag without the field: tolerate it
    // there, as mosquitto does; 3.1.1 requires the field [MQTT-3.1.2-19/21].
    let username = if has_user && (strict || !r.is_empty()) {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_pass && (strict || !r.is_empty()) {
        Some(r.bytes()?)
    } else {
        None
    };
    Ok(Connect {
        level: Some(level),
        clean_session: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn parse_connack(r: &mut Reader, ctx: &Ctx) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::Malformed("reserved CONNACK flags set")); // [MQTT-3.2.2-1]
    }
    let code = if ctx.v5 {
        ctx.reason(r, Kind::ConnAck)?
    } else {
        let byte = r.u8()?;
        ReasonCode::from_v3_connack(byte).ok_or(DecodeError::BadReasonCode(byte))?
    };
    let session_present = flags & 0x01 != 0;
    if session_present && code.is_error() {
        // [MQTT-3.2.2-4] (3.1.1), [MQTT-3.2.2-6] (5)
        return Err(DecodeError::Protocol("session present with a refusal"));
    }
    let properties = ctx.properties(r, Kind::ConnAck)?;
    Ok(ConnAck {
        session_present,
        code,
        properties,
    })
}

fn parse_publish<'a>(
    first: u8,
    r: &mut Reader<'a>,
    ctx: &Ctx,
) -> Result<PublishRef<'a>, DecodeError> {
    let dup = first & 0x08 != 0;
    let retain = first & 0x01 != 0;
    let qos = QoS::from_u8((first >> 1) & 0x03).ok_or(DecodeError::BadFlags(first))?; // [MQTT-3.3.1-4]
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::BadFlags(first)); // [MQTT-3.3.1-2]
    }
    let topic = r.str()?; // [MQTT-3.3.2-1]
    let pkid = if qos == QoS::AtMostOnce { 0 } else { r.pkid()? };
    let properties = ctx.properties(r, Kind::Publish)?;
    let payload = r.rest();
    Ok(PublishRef {
        dup,
        qos,
        retain,
        topic,
        pkid,
        payload,
        properties,
        frame: &[],
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. In MQTT 5 the reason code and the
/// properties may be left out (Remaining Length 2 or 3).
fn parse_ack(r: &mut Reader, ctx: &Ctx, kind: Kind) -> Result<Ack, DecodeError> {
    let pkid = r.pkid()?;
    if !ctx.v5 || r.is_empty() {
        return Ok(Ack::new(pkid));
    }
    let reason = ctx.reason(r, kind)?;
    let properties = if r.is_empty() {
        Properties::NONE
    } else {
        ctx.properties(r, kind)?
    };
    Ok(Ack {
        pkid,
        reason,
        properties,
    })
}

/// DISCONNECT and AUTH: in MQTT 5 a reason code and properties, either
/// of which may be left out; nothing in 3.x.
fn parse_reason_block(
    r: &mut Reader,
    ctx: &Ctx,
    kind: Kind,
) -> Result<ReasonAndProperties, DecodeError> {
    if !ctx.v5 || r.is_empty() {
        return Ok(ReasonAndProperties::new(ReasonCode::Success));
    }
    let reason = ctx.reason(r, kind)?;
    let properties = if r.is_empty() {
        Properties::NONE
    } else {
        ctx.properties(r, kind)?
    };
    Ok(ReasonAndProperties { reason, properties })
}

/// A subscription's options byte.
fn options(byte: u8, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    if !v5 {
        let qos = QoS::from_u8(byte).ok_or(DecodeError::Malformed("requested QoS invalid"))?; // [MQTT-3.8.3-4]
        return Ok(SubscriptionOptions::qos(qos));
    }
    if byte & 0xC0 != 0 {
        return Err(DecodeError::Malformed(
            "reserved subscription option bits set",
        )); // [MQTT-3.8.3-5]
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::Protocol("maximum QoS 3"))?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscription,
        2 => RetainHandling::Never,
        _ => return Err(DecodeError::Protocol("retain handling 3")),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn parse_subscribe(r: &mut Reader, ctx: &Ctx) -> Result<Subscribe, DecodeError> {
    let pkid = r.pkid()?;
    let properties = ctx.properties(r, Kind::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?; // [MQTT-3.8.3-1]
        filters.push((filter, options(r.u8()?, ctx.v5)?));
    }
    if filters.is_empty() {
        return Err(DecodeError::Malformed("SUBSCRIBE without filters")); // [MQTT-3.8.3-3]
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties,
    })
}

fn parse_suback(r: &mut Reader, ctx: &Ctx) -> Result<SubAck, DecodeError> {
    let pkid = r.pkid()?;
    let properties = ctx.properties(r, Kind::SubAck)?;
    let mut codes = Vec::with_capacity(r.len());
    while !r.is_empty() {
        let code = if ctx.v5 {
            ctx.reason(r, Kind::SubAck)?
        } else {
            let byte = r.u8()?;
            ReasonCode::from_v3_suback(byte).ok_or(DecodeError::BadReasonCode(byte))?
        };
        codes.push(code);
    }
    if codes.is_empty() {
        return Err(DecodeError::Malformed("SUBACK without return codes"));
    }
    Ok(SubAck {
        pkid,
        codes,
        properties,
    })
}

fn parse_unsubscribe(r: &mut Reader, ctx: &Ctx) -> Result<Unsubscribe, DecodeError> {
    let pkid = r.pkid()?;
    let properties = ctx.properties(r, Kind::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?); // [MQTT-3.10.3-1]
    }
    if filters.is_empty() {
        return Err(DecodeError::Malformed("UNSUBSCRIBE without filters")); // [MQTT-3.10.3-2]
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        properties,
    })
}

fn parse_unsuback(r: &mut Reader, ctx: &Ctx) -> Result<UnsubAck, DecodeError> {
    let pkid = r.pkid()?;
    if !ctx.v5 {
        return Ok(UnsubAck {
            pkid,
            codes: Vec::new(),
            properties: Properties::NONE,
        });
    }
    let properties = ctx.properties(r, Kind::UnsubAck)?;
    let mut codes = Vec::with_capacity(r.len());
    while !r.is_empty() {
        codes.push(ctx.reason(r, Kind::UnsubAck)?);
    }
    if codes.is_empty() {
        return Err(DecodeError::Malformed("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck {
        pkid,
        codes,
        properties,
    })
}
