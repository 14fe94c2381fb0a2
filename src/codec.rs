//! MQTT wire format: packet types as data, decode and encode kept apart from
//! the event loop.
//!
//! Decoding is incremental: [`decode`] looks at a connection's read buffer and
//! either returns one complete packet (consuming its bytes), `Ok(None)` when
//! more bytes are needed, or an error that closes the connection. The decoder
//! is told the connection's protocol level so MQTT 5 properties can be added
//! later without touching the event loop.
//!
//! Strings are validated here (well-formed UTF-8, no U+0000: [MQTT-1.5.3-1],
//! [MQTT-1.5.3-2]); topic syntax is checked by the caller with
//! [`crate::topic`], because what is legal depends on where a topic appears.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

/// Largest Remaining Length the 4-byte encoding can express (256 MiB - 1).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The protocol revisions midge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolLevel {
    /// MQTT 3.1 ("MQIsdp", level 3).
    V31,
    /// MQTT 3.1.1 ("MQTT", level 4).
    V311,
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

/// Why a byte stream could not be decoded. Every variant is a protocol
/// violation (or a local limit) and closes the connection [MQTT-4.8.0-1].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Remaining Length needs a fifth byte.
    BadRemainingLength,
    /// Packet larger than the configured limit [MQTT-4.8.0-2].
    TooLarge(usize),
    /// Packet type 0 or 15, or one only a server sends.
    BadPacketType(u8),
    /// Reserved fixed-header flags wrong [MQTT-2.2.2-2].
    BadFlags(u8),
    /// A field runs past the end, or bytes are left over.
    Malformed(&'static str),
    /// A string is not well-formed UTF-8 or holds U+0000.
    BadUtf8,
    /// Packet identifier 0 where one is required [MQTT-2.3.1-1].
    ZeroPacketId,
    /// CONNECT with an unknown protocol name [MQTT-3.1.2-1].
    UnknownProtocol,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadRemainingLength => write!(f, "remaining length longer than 4 bytes"),
            DecodeError::TooLarge(n) => write!(f, "packet of {n} bytes exceeds the size limit"),
            DecodeError::BadPacketType(t) => write!(f, "packet type {t} not allowed from a client"),
            DecodeError::BadFlags(b) => write!(f, "invalid fixed-header flags in byte {b:#04x}"),
            DecodeError::Malformed(what) => write!(f, "malformed packet: {what}"),
            DecodeError::BadUtf8 => write!(f, "string is not well-formed UTF-8 or contains U+0000"),
            DecodeError::ZeroPacketId => write!(f, "packet identifier 0"),
            DecodeError::UnknownProtocol => write!(f, "unknown protocol name"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `None` when the protocol name is known but the level is not: the
    /// caller answers CONNACK 0x01 [MQTT-3.1.2-2].
    pub level: Option<ProtocolLevel>,
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: String,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<(String, QoS)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
}

/// Reads a Remaining Length starting at `buf[1]`. Returns (value, bytes used)
/// or `None` if the buffer ends first. Errata 01: all four-byte lengths are
/// valid; only a fifth byte is an error.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::BadRemainingLength)
}

/// Checks the fixed-header byte before any body is buffered, so a bad type
/// or an oversized packet is refused from its first bytes.
fn check_header(byte: u8) -> Result<(), DecodeError> {
    let flags = byte & 0x0f;
    let ok = match byte >> 4 {
        3 => true, // PUBLISH flags are checked with the packet
        6 | 8 | 10 => flags == 0b0010,
        1 | 4 | 5 | 7 | 12 | 14 => flags == 0,
        t => return Err(DecodeError::BadPacketType(t)),
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::BadFlags(byte))
    }
}

/// Decodes one packet from the front of `buf` if it is complete.
///
/// `max_len` bounds the Remaining Length; a larger packet is refused from its
/// header, before its body is read. `level` is the connection's protocol
/// level once CONNECT has been accepted.
pub fn decode(
    buf: &mut BytesMut,
    max_len: usize,
    level: Option<ProtocolLevel>,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_header(first)?;
    let Some((len, len_bytes)) = remaining_length(buf)? else {
        return Ok(None);
    };
    if len > max_len {
        return Err(DecodeError::TooLarge(len));
    }
    let header = 1 + len_bytes;
    if buf.len() < header + len {
        return Ok(None);
    }
    let packet = parse(first, &buf[header..header + len], level)?;
    buf.advance(header + len);
    Ok(Some(packet))
}

/// Bytes still missing for the packet at the front of `buf` (0 if unknown):
/// lets the reader size its next read for a large packet.
pub fn bytes_wanted(buf: &[u8]) -> usize {
    match remaining_length(buf) {
        Ok(Some((len, n))) => (1 + n + len).saturating_sub(buf.len()),
        _ => 0,
    }
}

/// A cursor over one packet's body with the field readers MQTT needs.
struct Reader<'a> {
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self
            .body
            .split_first()
            .ok_or(DecodeError::Malformed("packet too short"))?;
        self.body = rest;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let hi = self.u8()?;
        let lo = self.u8()?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    fn pkid(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            id => Ok(id),
        }
    }

    fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()? as usize;
        if self.body.len() < len {
            return Err(DecodeError::Malformed("field runs past the end"));
        }
        let (field, rest) = self.body.split_at(len);
        self.body = rest;
        Ok(field)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let raw = self.binary()?;
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::BadUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::BadUtf8);
        }
        Ok(s.to_owned())
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.body)
    }

    fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("bytes after the last field"))
        }
    }
}

fn parse(first: u8, body: &[u8], level: Option<ProtocolLevel>) -> Result<Packet, DecodeError> {
    let _ = level; // MQTT 5 will read properties here
    let mut r = Reader { body };
    let packet = match first >> 4 {
        1 => Packet::Connect(Box::new(parse_connect(&mut r)?)),
        3 => Packet::Publish(parse_publish(first, &mut r)?),
        4 => Packet::PubAck(r.pkid()?),
        5 => Packet::PubRec(r.pkid()?),
        6 => Packet::PubRel(r.pkid()?),
        7 => Packet::PubComp(r.pkid()?),
        8 => parse_subscribe(&mut r)?,
        10 => parse_unsubscribe(&mut r)?,
        12 => Packet::PingReq,
        14 => Packet::Disconnect,
        t => return Err(DecodeError::BadPacketType(t)),
    };
    r.finish()?;
    Ok(packet)
}

fn parse_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let version = r.u8()?;
    let level = match (name, version) {
        (b"MQTT", 4) => Some(ProtocolLevel::V311),
        (b"MQIsdp", 3) => Some(ProtocolLevel::V31),
        (b"MQTT", _) | (b"MQIsdp", _) => None,
        _ => return Err(DecodeError::UnknownProtocol),
    };
    let flags = r.u8()?;
    let keep_alive = r.u16()?;
    if level.is_none() {
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
        });
    }
    let strict = level == Some(ProtocolLevel::V311);
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
    if has_pass && !has_user && strict {
        return Err(DecodeError::Malformed("password without user name")); // [MQTT-3.1.2-22]
    }
    let client_id = r.string()?; // [MQTT-3.1.3-3], [MQTT-3.1.3-4]
    let will = if will_flag {
        let topic = r.string()?; // [MQTT-3.1.3-10]
        let payload = Bytes::copy_from_slice(r.binary()?);
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
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
        Some(Bytes::copy_from_slice(r.binary()?))
    } else {
        None
    };
    Ok(Connect {
        level,
        clean_session: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn parse_publish(first: u8, r: &mut Reader) -> Result<Publish, DecodeError> {
    let dup = first & 0x08 != 0;
    let retain = first & 0x01 != 0;
    let qos = QoS::from_u8((first >> 1) & 0x03).ok_or(DecodeError::BadFlags(first))?; // [MQTT-3.3.1-4]
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::BadFlags(first)); // [MQTT-3.3.1-2]
    }
    let topic = r.string()?; // [MQTT-3.3.2-1]
    let pkid = if qos == QoS::AtMostOnce { 0 } else { r.pkid()? };
    // Copy the payload out of the read buffer: the buffer stays uniquely
    // owned (and reusable), and a stored message never pins a large read
    // buffer in memory.
    let payload = Bytes::copy_from_slice(r.rest());
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        pkid,
        payload,
    })
}

fn parse_subscribe(r: &mut Reader) -> Result<Packet, DecodeError> {
    let pkid = r.pkid()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?; // [MQTT-3.8.3-1]
        let qos = r.u8()?;
        let qos = QoS::from_u8(qos).ok_or(DecodeError::Malformed("requested QoS invalid"))?; // [MQTT-3.8.3-4]
        filters.push((filter, qos));
    }
    if filters.is_empty() {
        return Err(DecodeError::Malformed("SUBSCRIBE without filters")); // [MQTT-3.8.3-3]
    }
    Ok(Packet::Subscribe { pkid, filters })
}

fn parse_unsubscribe(r: &mut Reader) -> Result<Packet, DecodeError> {
    let pkid = r.pkid()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?); // [MQTT-3.10.3-1]
    }
    if filters.is_empty() {
        return Err(DecodeError::Malformed("UNSUBSCRIBE without filters")); // [MQTT-3.10.3-2]
    }
    Ok(Packet::Unsubscribe { pkid, filters })
}

// ---------------------------------------------------------------- encoding
//
// Server-to-client packets are written straight into a connection's output
// buffer: no intermediate packet value, no allocation beyond the buffer.

fn put_remaining_length(out: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

/// CONNACK: acknowledge flags (Session Present) and return code.
pub fn encode_connack(out: &mut BytesMut, session_present: bool, code: u8) {
    out.put_slice(&[0x20, 0x02, session_present as u8, code]);
}

/// PUBACK, PUBREC, PUBREL (flags 0010 [MQTT-3.6.1-1]), PUBCOMP, UNSUBACK.
pub fn encode_ack(out: &mut BytesMut, first: u8, pkid: u16) {
    let [hi, lo] = pkid.to_be_bytes();
    out.put_slice(&[first, 0x02, hi, lo]);
}

pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;
pub const UNSUBACK: u8 = 0xB0;

pub fn encode_suback(out: &mut BytesMut, pkid: u16, codes: &[u8]) {
    out.put_u8(0x90);
    put_remaining_length(out, 2 + codes.len());
    out.put_u16(pkid);
    out.put_slice(codes);
}

pub fn encode_pingresp(out: &mut BytesMut) {
    out.put_slice(&[0xD0, 0x00]);
}

/// Size on the wire of a PUBLISH with this topic and payload.
pub fn publish_len(topic: &str, payload_len: usize, qos: QoS) -> usize {
    let remaining = 2 + topic.len() + payload_len + if qos == QoS::AtMostOnce { 0 } else { 2 };
    let len_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + len_bytes + remaining
}

/// PUBLISH from the server. `pkid` is ignored for QoS 0, which carries no
/// identifier [MQTT-2.3.1-5] and never DUP [MQTT-3.3.1-2].
pub fn encode_publish(
    out: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    pkid: u16,
    dup: bool,
    retain: bool,
) {
    let with_id = qos != QoS::AtMostOnce;
    let first = 0x30 | ((dup && with_id) as u8) << 3 | (qos as u8) << 1 | retain as u8;
    let remaining = 2 + topic.len() + payload.len() + if with_id { 2 } else { 0 };
    out.reserve(publish_len(topic, payload.len(), qos));
    out.put_u8(first);
    put_remaining_length(out, remaining);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic.as_bytes());
    if with_id {
        out.put_u16(pkid);
    }
    out.put_slice(payload);
}

/// Client-side encoders, used by the load generator and tests.
pub mod client {
    use super::*;

    pub fn encode_connect(out: &mut BytesMut, client_id: &str, clean: bool, keep_alive: u16) {
        let remaining = 10 + 2 + client_id.len();
        out.put_u8(0x10);
        put_remaining_length(out, remaining);
        out.put_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04]);
        out.put_u8(if clean { 0x02 } else { 0x00 });
        out.put_u16(keep_alive);
        out.put_u16(client_id.len() as u16);
        out.put_slice(client_id.as_bytes());
    }

    pub fn encode_subscribe(out: &mut BytesMut, pkid: u16, filters: &[(&str, QoS)]) {
        let remaining = 2 + filters.iter().map(|(f, _)| 3 + f.len()).sum::<usize>();
        out.put_u8(0x82);
        put_remaining_length(out, remaining);
        out.put_u16(pkid);
        for (f, q) in filters {
            out.put_u16(f.len() as u16);
            out.put_slice(f.as_bytes());
            out.put_u8(*q as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        decode(&mut buf, MAX_REMAINING_LENGTH, Some(ProtocolLevel::V311))
    }

    #[test]
    fn remaining_length_boundaries() {
        assert_eq!(remaining_length(&[0, 0x7f]), Ok(Some((127, 1))));
        assert_eq!(remaining_length(&[0, 0x80, 0x01]), Ok(Some((128, 2))));
        assert_eq!(
            remaining_length(&[0, 0xff, 0xff, 0xff, 0x7f]),
            Ok(Some((MAX_REMAINING_LENGTH, 4)))
        );
        assert_eq!(
            remaining_length(&[0, 0x80, 0x80, 0x80, 0x01]),
            Ok(Some((2_097_152, 4)))
        );
        assert_eq!(
            remaining_length(&[0, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::BadRemainingLength)
        );
        assert_eq!(remaining_length(&[0, 0xff, 0xff]), Ok(None));
    }

    #[test]
    fn encoded_lengths_round_trip() {
        for len in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING_LENGTH,
        ] {
            let mut out = BytesMut::new();
            out.put_u8(0x30);
            put_remaining_length(&mut out, len);
            assert_eq!(remaining_length(&out), Ok(Some((len, out.len() - 1))));
        }
    }

    #[test]
    fn publish_round_trip_at_every_split() {
        let mut wire = BytesMut::new();
        encode_publish(&mut wire, "a/b", b"hello", QoS::AtLeastOnce, 7, false, true);
        assert_eq!(wire.len(), publish_len("a/b", 5, QoS::AtLeastOnce));
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(decode(&mut buf, 1024, None), Ok(None), "cut at {cut}");
            buf.extend_from_slice(&wire[cut..]);
            let Ok(Some(Packet::Publish(p))) = decode(&mut buf, 1024, None) else {
                panic!("no publish after joining at {cut}");
            };
            assert_eq!(
                (p.topic.as_str(), &p.payload[..], p.pkid),
                ("a/b", &b"hello"[..], 7)
            );
            assert!(p.retain && !p.dup && p.qos == QoS::AtLeastOnce);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn size_limit_applies_before_the_body() {
        let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0x7f][..]);
        assert_eq!(
            decode(&mut buf, 1000, None),
            Err(DecodeError::TooLarge(2_097_151))
        );
    }

    #[test]
    fn rejects_bad_flags_and_types() {
        assert!(matches!(
            dec(&[0x41, 2, 0, 1]),
            Err(DecodeError::BadFlags(_))
        ));
        assert!(matches!(
            dec(&[0x60, 2, 0, 1]),
            Err(DecodeError::BadFlags(_))
        ));
        assert!(matches!(
            dec(&[0x36, 5, 0, 1, b't', 0, 1]),
            Err(DecodeError::BadFlags(_))
        ));
        assert!(matches!(
            dec(&[0x38, 3, 0, 1, b't']),
            Err(DecodeError::BadFlags(_))
        ));
        assert!(matches!(
            dec(&[0xF0, 0]),
            Err(DecodeError::BadPacketType(15))
        ));
        assert!(matches!(
            dec(&[0x20, 2, 0, 0]),
            Err(DecodeError::BadPacketType(2))
        ));
        assert!(matches!(
            dec(&[0x40, 3, 0, 1, 0]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(dec(&[0xC0, 1, 0]), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            dec(&[0x82, 2, 0, 1]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            dec(&[0x82, 6, 0, 0, 0, 1, b't', 1]),
            Err(DecodeError::ZeroPacketId)
        ));
        assert!(matches!(
            dec(&[0x82, 6, 0, 1, 0, 1, b't', 3]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_bad_strings() {
        assert_eq!(dec(&[0x30, 4, 0, 2, 0xC0, 0xAF]), Err(DecodeError::BadUtf8));
        assert_eq!(
            dec(&[0x30, 5, 0, 3, b'a', 0, b'b']),
            Err(DecodeError::BadUtf8)
        );
        assert_eq!(
            dec(&[0x82, 9, 0, 1, 0, 4, b'a', 0xED, 0xA0, 0x80, 0]),
            Err(DecodeError::BadUtf8)
        );
        // U+FEFF is an ordinary character [MQTT-1.5.3-3].
        let Ok(Some(Packet::Publish(p))) = dec(&[0x30, 6, 0, 4, 0xEF, 0xBB, 0xBF, b'a']) else {
            panic!("BOM topic refused");
        };
        assert_eq!(p.topic, "\u{FEFF}a");
    }

    #[test]
    fn connect_variants() {
        let ok = [
            0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'a',
        ];
        let Ok(Some(Packet::Connect(c))) = dec(&ok) else {
            panic!("valid CONNECT refused");
        };
        assert_eq!(
            (c.level, c.client_id.as_str(), c.keep_alive),
            (Some(ProtocolLevel::V311), "a", 60)
        );
        let mut v3 = ok;
        v3[8] = 3;
        let Ok(Some(Packet::Connect(c))) = dec(&v3) else {
            panic!("MQTT level 3 not decoded");
        };
        assert_eq!(c.level, None);
        let mut bad_name = ok;
        bad_name[7] = b'X';
        assert_eq!(dec(&bad_name), Err(DecodeError::UnknownProtocol));
        let mut reserved = ok;
        reserved[9] = 3;
        assert!(dec(&reserved).is_err());
        let mut will_no_fields = ok;
        will_no_fields[9] = 0x06;
        assert!(dec(&will_no_fields).is_err());
    }
}
