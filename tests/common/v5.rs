//! Helpers of the MQTT 5 raw-byte conformance tests
//! (tests/conformance_v5_*.rs): property blocks built and parsed, CONNECT,
//! PUBLISH, SUBSCRIBE and UNSUBSCRIBE in their 5.0 layout, and readers for
//! CONNACK, PUBLISH and the server's DISCONNECT.

use super::*;
use std::net::SocketAddr;

/// A property block under construction: add properties, then take its
/// bytes with the Property Length in front ([`Props::block`]).
#[derive(Debug, Clone, Default)]
pub struct Props(Vec<u8>);

impl Props {
    pub fn new() -> Props {
        Props::default()
    }
    pub fn byte(mut self, id: u8, v: u8) -> Props {
        self.0.extend([id, v]);
        self
    }
    pub fn two(mut self, id: u8, v: u16) -> Props {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }
    pub fn four(mut self, id: u8, v: u32) -> Props {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }
    pub fn var(mut self, id: u8, v: usize) -> Props {
        self.0.push(id);
        self.0.extend(remaining_length(v));
        self
    }
    /// A UTF-8 string or binary property (both are length-prefixed).
    pub fn text(mut self, id: u8, v: &[u8]) -> Props {
        self.0.push(id);
        self.0.extend(sessions::field(v));
        self
    }
    /// A User Property.
    pub fn pair(mut self, name: &str, value: &str) -> Props {
        self.0.push(0x26);
        self.0.extend(sessions::field(name.as_bytes()));
        self.0.extend(sessions::field(value.as_bytes()));
        self
    }
    /// Bytes appended as they are (a malformed property, say).
    pub fn raw(mut self, bytes: &[u8]) -> Props {
        self.0.extend_from_slice(bytes);
        self
    }
    /// Property Length, then the properties.
    pub fn block(&self) -> Vec<u8> {
        let mut out = remaining_length(self.0.len());
        out.extend_from_slice(&self.0);
        out
    }
}

/// An empty property block.
pub fn no_props() -> Props {
    Props::new()
}

/// A Will in an MQTT 5 CONNECT.
#[derive(Debug, Clone)]
pub struct Will5 {
    pub topic: Vec<u8>,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: Props,
}

impl Will5 {
    pub fn new(topic: &str, payload: &[u8]) -> Will5 {
        Will5 {
            topic: topic.as_bytes().to_vec(),
            payload: payload.to_vec(),
            qos: 0,
            retain: false,
            props: Props::new(),
        }
    }
}

/// An MQTT 5 CONNECT, built field by field.
#[derive(Debug, Clone)]
pub struct Connect5 {
    pub client_id: Vec<u8>,
    pub clean: bool,
    pub keep_alive: u16,
    pub props: Props,
    pub will: Option<Will5>,
    pub user: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
}

impl Connect5 {
    /// Clean Start 1, Keep Alive 60, no properties.
    pub fn new(client_id: &str) -> Connect5 {
        Connect5 {
            client_id: client_id.as_bytes().to_vec(),
            clean: true,
            keep_alive: 60,
            props: Props::new(),
            will: None,
            user: None,
            password: None,
        }
    }
    pub fn clean(mut self, clean: bool) -> Connect5 {
        self.clean = clean;
        self
    }
    pub fn keep_alive(mut self, secs: u16) -> Connect5 {
        self.keep_alive = secs;
        self
    }
    /// Adds these CONNECT properties to those set so far.
    pub fn props(mut self, props: Props) -> Connect5 {
        self.props = self.props.raw(&props.0);
        self
    }
    /// Session Expiry Interval, in seconds.
    pub fn expiry(mut self, secs: u32) -> Connect5 {
        self.props = self.props.four(0x11, secs);
        self
    }
    pub fn will(mut self, will: Will5) -> Connect5 {
        self.will = Some(will);
        self
    }
    pub fn user(mut self, user: &[u8]) -> Connect5 {
        self.user = Some(user.to_vec());
        self
    }
    pub fn password(mut self, password: &[u8]) -> Connect5 {
        self.password = Some(password.to_vec());
        self
    }

    /// The Connect Flags these fields call for.
    pub fn flags(&self) -> u8 {
        let mut flags = (self.clean as u8) << 1;
        if let Some(w) = &self.will {
            flags |= 0x04 | w.qos << 3 | (w.retain as u8) << 5;
        }
        flags |= (self.password.is_some() as u8) << 6 | (self.user.is_some() as u8) << 7;
        flags
    }

    /// The packet, with these Connect Flags.
    pub fn bytes_with_flags(&self, flags: u8) -> Vec<u8> {
        let mut body = sessions::field(b"MQTT");
        body.extend([5, flags]);
        body.extend(self.keep_alive.to_be_bytes());
        body.extend(self.props.block());
        body.extend(sessions::field(&self.client_id));
        if let Some(w) = &self.will {
            body.extend(w.props.block());
            body.extend(sessions::field(&w.topic));
            body.extend(sessions::field(&w.payload));
        }
        if let Some(u) = &self.user {
            body.extend(sessions::field(u));
        }
        if let Some(p) = &self.password {
            body.extend(sessions::field(p));
        }
        packet(0x10, &body)
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.bytes_with_flags(self.flags())
    }
}

/// One property as read from the wire: its value as a number, or its
/// bytes (strings and binary without their length prefix; a User
/// Property as name and value joined by '=').
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Num(u32),
    Bytes(Vec<u8>),
}

/// A parsed property block, in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropList(pub Vec<(u8, Value)>);

impl PropList {
    /// The first property with this identifier.
    pub fn get(&self, id: u8) -> Option<&Value> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }
    pub fn num(&self, id: u8) -> Option<u32> {
        match self.get(id)? {
            Value::Num(n) => Some(*n),
            Value::Bytes(_) => None,
        }
    }
    pub fn bytes(&self, id: u8) -> Option<&[u8]> {
        match self.get(id)? {
            Value::Bytes(b) => Some(b),
            Value::Num(_) => None,
        }
    }
    pub fn has(&self, id: u8) -> bool {
        self.get(id).is_some()
    }
    /// Every number of a repeatable numeric property (Subscription
    /// Identifiers).
    pub fn all_nums(&self, id: u8) -> Vec<u32> {
        self.0
            .iter()
            .filter(|(i, _)| *i == id)
            .filter_map(|(_, v)| match v {
                Value::Num(n) => Some(*n),
                Value::Bytes(_) => None,
            })
            .collect()
    }
    /// User Properties, "name=value", in order.
    pub fn user(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(i, _)| *i == 0x26)
            .filter_map(|(_, v)| match v {
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                Value::Num(_) => None,
            })
            .collect()
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
    assert!(b.len() >= n, "server packet cut short: {b:02x?}");
    let (head, rest) = b.split_at(n);
    *b = rest;
    head
}

fn take_u16(b: &mut &[u8]) -> u16 {
    let t = take(b, 2);
    u16::from_be_bytes([t[0], t[1]])
}

fn take_field(b: &mut &[u8]) -> Vec<u8> {
    let n = take_u16(b) as usize;
    take(b, n).to_vec()
}

/// A Variable Byte Integer, checked to be minimally encoded
/// [MQTT-1.5.5-1].
fn take_varint(b: &mut &[u8]) -> usize {
    let mut v = 0usize;
    for i in 0..4 {
        let byte = take(b, 1)[0];
        v |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            assert!(i == 0 || byte != 0, "non-minimal variable byte integer");
            return v;
        }
    }
    panic!("variable byte integer over 4 bytes");
}

/// Reads a property block (Property Length first) off the front of `b`.
pub fn take_props(b: &mut &[u8]) -> PropList {
    let len = take_varint(b);
    let mut block = take(b, len);
    let mut out = Vec::new();
    while !block.is_empty() {
        let id = take_varint(&mut block) as u8;
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                Value::Num(take(&mut block, 1)[0] as u32)
            }
            0x13 | 0x21 | 0x22 | 0x23 => Value::Num(take_u16(&mut block) as u32),
            0x02 | 0x11 | 0x18 | 0x27 => {
                let t = take(&mut block, 4);
                Value::Num(u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
            }
            0x0B => Value::Num(take_varint(&mut block) as u32),
            0x26 => {
                let mut pair = take_field(&mut block);
                pair.push(b'=');
                pair.extend(take_field(&mut block));
                Value::Bytes(pair)
            }
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                Value::Bytes(take_field(&mut block))
            }
            other => panic!("server sent unknown property {other:#04x}"),
        };
        out.push((id, value));
    }
    PropList(out)
}

/// The reason codes a server may send in each packet (spec §2.4 and each
/// packet's table), by the packet's first byte: every CONNACK
/// [MQTT-3.2.2-8], ack [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1]
/// [MQTT-3.7.2-1], SUBACK [MQTT-3.9.3-2], UNSUBACK [MQTT-3.11.3-2] and
/// DISCONNECT [MQTT-3.14.2-1] a test reads is checked against them.
pub fn server_may_send(first: u8, code: u8) -> bool {
    match first {
        0x20 => matches!(code, 0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F),
        0x40 | 0x50 => matches!(
            code,
            0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
        ),
        0x62 | 0x70 => matches!(code, 0x00 | 0x92),
        0x90 => matches!(
            code,
            0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
        ),
        0xB0 => matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
        0xE0 => matches!(code, 0x00 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2),
        _ => false,
    }
}

fn check_code(first: u8, code: u8) {
    assert!(
        server_may_send(first, code),
        "{first:#04x} with reason code {code:#04x}"
    );
}

/// A CONNACK in MQTT 5 form.
#[derive(Debug, Clone)]
pub struct Connack5 {
    pub present: bool,
    pub code: u8,
    pub props: PropList,
}

/// Parses a CONNACK body, checking the reserved flag bits [MQTT-3.2.2-1],
/// that a refusal never says Session Present [MQTT-3.2.2-6], and that the
/// property block is there [MQTT-2.2.2-1].
pub fn parse_connack5(body: &[u8]) -> Connack5 {
    let mut b = body;
    let flags = take(&mut b, 1)[0];
    assert_eq!(flags & 0xFE, 0, "reserved CONNACK flags");
    let code = take(&mut b, 1)[0];
    let props = take_props(&mut b);
    assert!(b.is_empty(), "bytes after CONNACK properties");
    assert!(code < 0x80 || flags == 0, "Session Present with a refusal");
    check_code(0x20, code);
    Connack5 {
        present: flags == 1,
        code,
        props,
    }
}

/// A received MQTT 5 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub5 {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pkid: u16,
    pub props: PropList,
    pub payload: Vec<u8>,
}

pub fn parse_publish5(first: u8, body: &[u8]) -> Pub5 {
    assert_eq!(
        first >> 4,
        3,
        "expected PUBLISH, got {first:#04x} {body:02x?}"
    );
    let qos = (first >> 1) & 3;
    assert!(qos < 3, "QoS 3 from the server");
    let mut b = body;
    let topic = String::from_utf8(take_field(&mut b)).expect("UTF-8 topic");
    let pkid = if qos > 0 { take_u16(&mut b) } else { 0 };
    assert!(qos == 0 || pkid != 0, "packet id 0 [MQTT-2.2.1-4]");
    let props = take_props(&mut b);
    Pub5 {
        dup: first & 8 != 0,
        qos,
        retain: first & 1 != 0,
        topic,
        pkid,
        props,
        payload: b.to_vec(),
    }
}

/// The reason code and properties of an ack, DISCONNECT or AUTH body after
/// its packet id (short forms: no code means 0x00).
pub fn parse_reason(mut b: &[u8]) -> (u8, PropList) {
    if b.is_empty() {
        return (0, PropList::default());
    }
    let code = take(&mut b, 1)[0];
    let props = if b.is_empty() {
        PropList::default()
    } else {
        take_props(&mut b)
    };
    assert!(b.is_empty(), "bytes after the properties");
    (code, props)
}

/// A PUBLISH in MQTT 5 layout; `props` is the property block's content.
pub fn publish5(
    topic: &str,
    payload: &[u8],
    qos: u8,
    pkid: u16,
    retain: bool,
    props: &Props,
) -> Vec<u8> {
    let first = 0x30 | (qos << 1) | retain as u8;
    let mut body = sessions::field(topic.as_bytes());
    if qos > 0 {
        body.extend(pkid.to_be_bytes());
    }
    body.extend(props.block());
    body.extend_from_slice(payload);
    packet(first, &body)
}

/// A SUBSCRIBE in MQTT 5 layout: filters with their options bytes.
pub fn subscribe5(pkid: u16, props: &Props, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend(props.block());
    for (f, o) in filters {
        body.extend(sessions::field(f.as_bytes()));
        body.push(*o);
    }
    packet(0x82, &body)
}

/// An UNSUBSCRIBE in MQTT 5 layout.
pub fn unsubscribe5(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.push(0);
    for f in filters {
        body.extend(sessions::field(f.as_bytes()));
    }
    packet(0xA2, &body)
}

/// A client id unique within the test binary.
pub fn cid5(prefix: &str) -> String {
    conformance::cid(prefix)
}

impl Raw {
    /// TCP connect and send `connect`; returns the client and the CONNACK
    /// (whatever its code).
    pub fn connect5(addr: SocketAddr, connect: &Connect5) -> (Raw, Connack5) {
        let mut c = Raw::connect(addr);
        c.send(&connect.bytes());
        let ack = c.read_connack5();
        (c, ack)
    }

    /// Like `connect5`, asserting reason code 0.
    pub fn mqtt5(addr: SocketAddr, connect: &Connect5) -> (Raw, Connack5) {
        let (c, ack) = Raw::connect5(addr, connect);
        assert_eq!(ack.code, 0, "CONNACK reason code, props {:?}", ack.props);
        (c, ack)
    }

    /// A connected MQTT 5 client (Clean Start 1, no properties).
    pub fn v5(addr: SocketAddr, client_id: &str) -> Raw {
        Raw::mqtt5(addr, &Connect5::new(client_id)).0
    }

    pub fn read_connack5(&mut self) -> Connack5 {
        let (first, body) = self.read_reply("CONNACK").expect("CONNACK, got EOF");
        assert_eq!(
            first, 0x20,
            "expected CONNACK, got {first:#04x} {body:02x?}"
        );
        parse_connack5(&body)
    }

    /// Expects a CONNACK with this refusing code, then the close.
    pub fn expect_refused5(&mut self, code: u8) -> Connack5 {
        let ack = self.read_connack5();
        assert_eq!(ack.code, code, "CONNACK reason code");
        assert!(!ack.present, "Session Present 0 on a refusal");
        self.expect_closed();
        ack
    }

    pub fn read_publish5(&mut self) -> Pub5 {
        let (first, body) = self.read_packet().expect("PUBLISH, got EOF");
        parse_publish5(first, &body)
    }

    /// Expects a server DISCONNECT with `code` (no Session Expiry Interval
    /// in it [MQTT-3.14.2-2]), then the close [MQTT-3.14.4-1],
    /// [MQTT-3.14.4-2]. Returns its properties.
    pub fn expect_disconnect(&mut self, code: u8) -> PropList {
        let (first, body) = self.read_packet().expect("DISCONNECT, got EOF");
        assert_eq!(
            first, 0xE0,
            "expected DISCONNECT, got {first:#04x} {body:02x?}"
        );
        let (got, props) = parse_reason(&body);
        check_code(0xE0, got);
        assert_eq!(got, code, "DISCONNECT reason code ({props:?})");
        assert!(!props.has(0x11), "Session Expiry in a server DISCONNECT");
        self.expect_closed();
        props
    }

    /// Like `expect_disconnect`, for a breach where the standard leaves
    /// the code open: any of `codes`. Returns the code sent.
    pub fn expect_disconnect_in(&mut self, codes: &[u8]) -> u8 {
        let (first, body) = self.read_packet().expect("DISCONNECT, got EOF");
        assert_eq!(
            first, 0xE0,
            "expected DISCONNECT, got {first:#04x} {body:02x?}"
        );
        let (got, props) = parse_reason(&body);
        check_code(0xE0, got);
        assert!(
            codes.contains(&got),
            "DISCONNECT {got:#04x}, want one of {codes:02x?}"
        );
        assert!(!props.has(0x11), "Session Expiry in a server DISCONNECT");
        self.expect_closed();
        got
    }

    /// Subscribes (MQTT 5 layout) and returns the SUBACK reason codes.
    pub fn subscribe5(&mut self, pkid: u16, props: &Props, filters: &[(&str, u8)]) -> Vec<u8> {
        self.send(&subscribe5(pkid, props, filters));
        let (first, body) = self.read_reply("SUBACK").expect("SUBACK, got EOF");
        assert_eq!(first, 0x90, "expected SUBACK, got {first:#04x} {body:02x?}");
        let mut b = &body[..];
        assert_eq!(take_u16(&mut b), pkid, "SUBACK packet id");
        take_props(&mut b);
        b.iter().for_each(|&code| check_code(0x90, code));
        b.to_vec()
    }

    /// Subscribes to one filter with these options; asserts the grant.
    pub fn sub5(&mut self, filter: &str, options: u8) {
        let codes = self.subscribe5(1, &Props::new(), &[(filter, options)]);
        assert_eq!(codes, vec![options & 3], "SUBACK code for {filter}");
    }

    /// Unsubscribes and returns the UNSUBACK reason codes.
    pub fn unsubscribe5(&mut self, pkid: u16, filters: &[&str]) -> Vec<u8> {
        self.send(&unsubscribe5(pkid, filters));
        let (first, body) = self.read_reply("UNSUBACK").expect("UNSUBACK, got EOF");
        assert_eq!(first, 0xB0, "expected UNSUBACK, got {first:#04x}");
        let mut b = &body[..];
        assert_eq!(take_u16(&mut b), pkid, "UNSUBACK packet id");
        take_props(&mut b);
        b.iter().for_each(|&code| check_code(0xB0, code));
        b.to_vec()
    }

    /// Publishes (MQTT 5 layout) and completes the publisher's side of the
    /// exchange; returns the reason code of the PUBACK or PUBREC (0 for
    /// QoS 0, after a PINGREQ barrier).
    pub fn pub5(&mut self, topic: &str, payload: &[u8], qos: u8, pkid: u16, props: &Props) -> u8 {
        self.send(&publish5(topic, payload, qos, pkid, false, props));
        self.finish_publish(qos, pkid)
    }

    /// The publisher's side of a QoS exchange already sent.
    pub fn finish_publish(&mut self, qos: u8, pkid: u16) -> u8 {
        let id = pkid.to_be_bytes();
        match qos {
            0 => {
                self.ping();
                0
            }
            1 => self.read_ack(0x40, pkid),
            _ => {
                let code = self.read_ack(0x50, pkid);
                if code < 0x80 {
                    self.send(&[0x62, 0x02, id[0], id[1]]);
                    assert_eq!(self.read_ack(0x70, pkid), 0, "PUBCOMP code");
                }
                code
            }
        }
    }

    /// Reads an ack of this first byte for `pkid`; returns its reason code.
    pub fn read_ack(&mut self, first: u8, pkid: u16) -> u8 {
        let (got, body) = self.read_packet().expect("ack, got EOF");
        assert_eq!(
            got, first,
            "expected {first:#04x}, got {got:#04x} {body:02x?}"
        );
        assert_eq!(
            u16::from_be_bytes([body[0], body[1]]),
            pkid,
            "ack packet id"
        );
        let code = parse_reason(&body[2..]).0;
        check_code(first, code);
        code
    }

    /// Every PUBLISH until a PINGREQ round trip brings nothing new, each
    /// acknowledged (PUBACK; PUBREC then PUBCOMP).
    pub fn drain5(&mut self) -> Vec<Pub5> {
        let mut got = Vec::new();
        for _ in 0..10_000 {
            self.send(&[0xC0, 0x00]);
            let mut quiet = true;
            loop {
                let (first, body) = self.read_packet().expect("a packet, got EOF");
                match first {
                    0xD0 => break,
                    0x62 => {
                        quiet = false;
                        self.send(&[0x70, 0x02, body[0], body[1]]);
                    }
                    f if f >> 4 == 3 => {
                        quiet = false;
                        let p = parse_publish5(first, &body);
                        let id = p.pkid.to_be_bytes();
                        match p.qos {
                            1 => self.send(&[0x40, 0x02, id[0], id[1]]),
                            2 => self.send(&[0x50, 0x02, id[0], id[1]]),
                            _ => {}
                        }
                        got.push(p);
                    }
                    f => panic!("unexpected packet {f:#04x} {body:02x?}"),
                }
            }
            if quiet {
                return got;
            }
        }
        panic!("the broker never ran out of messages");
    }

    /// Sends `bytes` and expects DISCONNECT `code` and the close.
    pub fn violate(&mut self, bytes: &[u8], code: u8) -> PropList {
        self.send(bytes);
        self.expect_disconnect(code)
    }
}

/// A fresh MQTT 5 client sends `bytes` and gets DISCONNECT `code`.
pub fn assert_disconnects(addr: SocketAddr, bytes: &[u8], code: u8) {
    let mut c = Raw::v5(addr, &cid5("bad"));
    c.violate(bytes, code);
}

/// A connected MQTT 5 subscriber to `filter` with these options.
pub fn sub_v5(addr: SocketAddr, filter: &str, options: u8) -> Raw {
    let mut c = Raw::v5(addr, &cid5("sub"));
    c.sub5(filter, options);
    c
}
