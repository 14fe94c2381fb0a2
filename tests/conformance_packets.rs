//! Raw-byte conformance tests for the packet-level server-side MUST
//! statements of MQTT 3.1.1 plus Errata 01: data representation (UTF-8,
//! Remaining Length, packet identifiers), the fixed header, PUBLISH to
//! DISCONNECT, the QoS flows, ordering, topics and error handling.
//!
//! CONNECT/CONNACK, sessions, Will, keep-alive, takeover and redelivery on
//! reconnect have their own test file; the few reconnects here only check
//! statements of the PUBLISH/UNSUBSCRIBE sections.
//!
//! Every test talks TCP to a broker on an ephemeral loopback port. A
//! "nothing was delivered" check uses a barrier: the publisher's PINGRESP
//! proves the broker processed everything it sent, then the subscriber's
//! own PINGRESP arrives after anything queued for it before.

mod common;
use common::*;

use std::net::SocketAddr;

/// A client id unique within the test binary.
fn cid(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A connected client (CleanSession 1).
fn client(addr: SocketAddr, prefix: &str) -> Raw {
    Raw::mqtt(addr, &cid(prefix), true).0
}

/// A connected client subscribed to `filters`.
fn subscriber(addr: SocketAddr, filters: &[(&str, u8)]) -> Raw {
    let mut c = client(addr, "sub");
    c.subscribe(1, filters);
    c
}

/// Sends PINGREQ and collects every PUBLISH that arrives before the PINGRESP.
/// Any other packet fails the test.
fn drain(c: &mut Raw) -> Vec<Pub> {
    c.send(&[0xC0, 0x00]);
    let mut got = Vec::new();
    for _ in 0..10_000 {
        let (first, body) = c.read_packet().expect("packet before PINGRESP, got EOF");
        if first == 0xD0 {
            assert!(body.is_empty());
            return got;
        }
        got.push(parse_publish(first, &body));
    }
    panic!("no PINGRESP after 10000 packets");
}

/// The publisher's barrier, then everything the subscriber got by then.
fn delivered(publisher: &mut Raw, sub: &mut Raw) -> Vec<Pub> {
    publisher.ping();
    drain(sub)
}

/// Payloads of a list of deliveries.
fn payloads(p: &[Pub]) -> Vec<Vec<u8>> {
    p.iter().map(|p| p.payload.clone()).collect()
}

/// Publishes and completes the publisher's side of the QoS flow: PUBACK
/// for QoS 1; PUBREC, PUBREL, PUBCOMP for QoS 2.
fn publish(p: &mut Raw, topic: &str, payload: &[u8], qos: u8, pkid: u16, retain: bool) {
    p.send(&publish_packet(topic, payload, qos, pkid, retain, false));
    let id = pkid.to_be_bytes();
    match qos {
        0 => {}
        1 => p.expect(&[0x40, 0x02, id[0], id[1]]),
        _ => {
            p.expect(&[0x50, 0x02, id[0], id[1]]);
            p.send(&[0x62, 0x02, id[0], id[1]]);
            p.expect(&[0x70, 0x02, id[0], id[1]]);
        }
    }
}

/// A fresh connection (after CONNECT) sends `bytes` and must be closed
/// without any answer.
fn assert_closes(addr: SocketAddr, bytes: &[u8]) {
    let mut c = client(addr, "bad");
    c.send(bytes);
    c.expect_closed();
}

/// Like `assert_closes`, and an observer on `#` got nothing from it:
/// the next thing it receives is a control message published afterwards.
fn assert_closes_undelivered(addr: SocketAddr, bytes: &[u8]) {
    let mut obs = subscriber(addr, &[("#", 0)]);
    assert_closes(addr, bytes);
    let mut ctl = client(addr, "ctl");
    ctl.send(&publish_packet("control", b"c", 0, 0, false, false));
    let got = delivered(&mut ctl, &mut obs);
    assert_eq!(got.len(), 1, "observer got {got:?}");
    assert_eq!(got[0].topic, "control");
}

/// Reads a SUBACK for `pkid` and returns its return codes, checking that
/// only the codes 0x00, 0x01, 0x02 and 0x80 are used [MQTT-3.9.3-2].
fn read_suback(c: &mut Raw, pkid: u16) -> Vec<u8> {
    let (first, body) = c.read_reply("SUBACK").expect("SUBACK, got EOF");
    assert_eq!(first, 0x90, "expected SUBACK");
    assert!(body.len() >= 3);
    assert_eq!(&body[..2], &pkid.to_be_bytes(), "SUBACK packet id");
    let codes = body[2..].to_vec();
    for c in &codes {
        assert!(
            matches!(c, 0x00 | 0x01 | 0x02 | 0x80),
            "SUBACK return code {c:#04x}"
        );
    }
    codes
}

/// Topic bytes as a length-prefixed string (for invalid UTF-8 topics).
fn raw_str(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

/// A QoS 0 PUBLISH with a raw (possibly invalid) topic.
fn publish_raw_topic(topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = raw_str(topic);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// A SUBSCRIBE with one raw filter.
fn subscribe_raw(pkid: u16, filter: &[u8], qos: u8) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend(raw_str(filter));
    body.push(qos);
    packet(0x82, &body)
}

/// An UNSUBSCRIBE with one raw filter.
fn unsubscribe_raw(pkid: u16, filter: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend(raw_str(filter));
    packet(0xA2, &body)
}

// ---------------------------------------------------------------------------
// §1.5.3 UTF-8 encoded strings
// ---------------------------------------------------------------------------

// [MQTT-1.5.3-1] [MQTT-3.3.2-1]
#[test]
fn ill_formed_utf8_topic_name_closes_and_is_not_delivered() {
    let b = TestBroker::start();
    // Overlong "/", a lone 0xFF, an encoded surrogate U+D800, a code point
    // above U+10FFFF, a truncated 2-byte sequence, a stray continuation byte.
    let bad: [&[u8]; 6] = [
        &[0xC0, 0xAF],
        &[0xFF],
        &[0x61, 0xED, 0xA0, 0x80],
        &[0xF4, 0x90, 0x80, 0x80],
        &[0x61, 0xC3],
        &[0x80, 0x61],
    ];
    for topic in bad {
        assert_closes_undelivered(b.addr, &publish_raw_topic(topic, b"x"));
    }
    // The exact bytes from the reference: `30 04 00 02 C0 AF`.
    assert_closes(b.addr, &[0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF]);
}

// [MQTT-1.5.3-1] [MQTT-3.8.3-1]
#[test]
fn ill_formed_utf8_subscribe_filter_closes_without_suback() {
    let b = TestBroker::start();
    // Encoded surrogate U+D800 in `a` + ...
    assert_closes(
        b.addr,
        &[
            0x82, 0x09, 0x00, 0x01, 0x00, 0x04, 0x61, 0xED, 0xA0, 0x80, 0x00,
        ],
    );
    // Overlong NUL in `a/` + ...
    assert_closes(
        b.addr,
        &[
            0x82, 0x09, 0x00, 0x01, 0x00, 0x04, 0x61, 0x2F, 0xC0, 0x80, 0x00,
        ],
    );
    assert_closes(b.addr, &subscribe_raw(1, &[0xFE], 0));
}

// [MQTT-1.5.3-1] [MQTT-3.10.3-1]
#[test]
fn ill_formed_utf8_unsubscribe_filter_closes_without_unsuback() {
    let b = TestBroker::start();
    // Encoded low surrogate U+DC00.
    assert_closes(b.addr, &unsubscribe_raw(1, &[0xED, 0xB0, 0x80]));
    assert_closes(b.addr, &unsubscribe_raw(1, &[0x61, 0xC0, 0xAF]));
}

// [MQTT-1.5.3-2] [MQTT-4.7.3-2]
#[test]
fn nul_character_in_topic_or_filter_closes() {
    let b = TestBroker::start();
    // `30 05 00 03 61 00 62`: topic "a\0b".
    assert_closes_undelivered(b.addr, &[0x30, 0x05, 0x00, 0x03, 0x61, 0x00, 0x62]);
    assert_closes_undelivered(b.addr, &publish_packet("a\0", b"x", 1, 1, false, false));
    assert_closes(b.addr, &subscribe_raw(1, b"a\0b", 0));
    assert_closes(b.addr, &unsubscribe_raw(1, b"\0"));
}

// [MQTT-1.5.3-3] [MQTT-4.7.3-4]
#[test]
fn byte_order_mark_is_an_ordinary_character_in_topics() {
    let b = TestBroker::start();
    let mut plain = subscriber(b.addr, &[("a", 0)]);
    let mut bom = subscriber(b.addr, &[("\u{FEFF}a", 0)]);
    let mut p = client(b.addr, "pub");
    // `30 06 00 04 EF BB BF 61`: topic U+FEFF "a", empty payload.
    p.send(&[0x30, 0x06, 0x00, 0x04, 0xEF, 0xBB, 0xBF, 0x61]);
    p.ping();
    assert_eq!(drain(&mut plain), vec![], "`a` must not match U+FEFF a");
    let got = drain(&mut bom);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic.as_bytes(), &[0xEF, 0xBB, 0xBF, 0x61]);
    // And the other way round: a publish to `a` does not reach the BOM filter.
    p.send(&publish_packet("a", b"1", 0, 0, false, false));
    p.ping();
    assert_eq!(drain(&mut bom), vec![]);
    assert_eq!(payloads(&drain(&mut plain)), vec![b"1".to_vec()]);
}

// ---------------------------------------------------------------------------
// §2.2.3 Remaining Length
// ---------------------------------------------------------------------------

/// Errata 01: every 4-byte Remaining Length is valid. `30 80 80 80 01` is
/// 2,097,152, the smallest 4-byte value; the PUBLISH is accepted and
/// delivered intact.
#[test]
fn four_byte_remaining_length_publish_is_accepted_and_delivered() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("big", 1)]);
    let mut p = client(b.addr, "pub");
    let len = 2_097_152usize;
    let payload: Vec<u8> = (0..len - 7).map(|i| (i % 251) as u8).collect();
    let mut bytes = vec![
        0x32, 0x80, 0x80, 0x80, 0x01, 0x00, 0x03, b'b', b'i', b'g', 0x00, 0x2A,
    ];
    bytes.extend_from_slice(&payload);
    assert_eq!(bytes.len(), 5 + len);
    p.send(&bytes);
    p.expect(&[0x40, 0x02, 0x00, 0x2A]);
    let got = sub.read_publish();
    assert_eq!(got.topic, "big");
    assert_eq!(got.qos, 1);
    assert!(
        got.payload == payload,
        "payload of {} bytes altered",
        got.payload.len()
    );
}

#[test]
fn remaining_length_with_continuation_bit_on_fourth_byte_closes() {
    let b = TestBroker::start();
    // The connection is closed as soon as the 4th length byte is seen: the
    // 5th byte is never needed.
    assert_closes(b.addr, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_closes(b.addr, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert_closes(b.addr, &[0xC0, 0x80, 0x80, 0x80, 0x80, 0x00]);
}

// [MQTT-4.8.0-1]
#[test]
fn fixed_size_packets_with_wrong_remaining_length_close() {
    let b = TestBroker::start();
    let bad: [&[u8]; 12] = [
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        &[0x40, 0x01, 0x00],
        &[0x40, 0x00],
        &[0x50, 0x03, 0x00, 0x01, 0x00],
        &[0x50, 0x01, 0x01],
        &[0x62, 0x03, 0x00, 0x01, 0x00],
        &[0x62, 0x00],
        &[0x70, 0x03, 0x00, 0x01, 0x00],
        &[0x70, 0x01, 0x01],
        &[0xC0, 0x01, 0x00],
        &[0xC0, 0x02, 0x00, 0x00],
        &[0xE0, 0x01, 0x00],
    ];
    for bytes in bad {
        assert_closes(b.addr, bytes);
    }
}

// [MQTT-4.8.0-1]
#[test]
fn fields_running_past_the_remaining_length_close() {
    let b = TestBroker::start();
    // Topic length 5 with 1 byte of topic.
    assert_closes_undelivered(b.addr, &[0x30, 0x03, 0x00, 0x05, 0x74]);
    // QoS 1 PUBLISH too short for its packet id.
    assert_closes_undelivered(b.addr, &[0x32, 0x04, 0x00, 0x01, 0x74, 0x00]);
    // SUBSCRIBE whose filter lacks the requested QoS byte.
    assert_closes(b.addr, &[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x74]);
    // SUBSCRIBE with a truncated second pair.
    assert_closes(
        b.addr,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00, 0x00],
    );
    // UNSUBSCRIBE with a truncated filter.
    assert_closes(b.addr, &[0xA2, 0x05, 0x00, 0x01, 0x00, 0x02, 0x74]);
}

/// 3.1.1 does not require the minimal encoding (MQTT-1.5.5-1 is MQTT 5
/// only); midge accepts non-minimal lengths.
#[test]
fn non_minimal_remaining_length_encodings_are_accepted() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 0)]);
    let mut c = client(b.addr, "nm");
    c.send(&[0xC0, 0x80, 0x00]);
    c.expect(&[0xD0, 0x00]);
    c.send(&[0xC0, 0x80, 0x80, 0x80, 0x00]);
    c.expect(&[0xD0, 0x00]);
    // PUBLISH "t" / "hi", Remaining Length 5 written as `85 80 00`.
    c.send(&[0x30, 0x85, 0x80, 0x00, 0x00, 0x01, 0x74, b'h', b'i']);
    // QoS 1, Remaining Length 7 written as `87 00`.
    c.send(&[0x32, 0x87, 0x00, 0x00, 0x01, 0x74, 0x00, 0x05, b'h', b'o']);
    c.expect(&[0x40, 0x02, 0x00, 0x05]);
    let got = delivered(&mut c, &mut sub);
    assert_eq!(payloads(&got), vec![b"hi".to_vec(), b"ho".to_vec()]);
}

// ---------------------------------------------------------------------------
// §2.3.1 Packet identifiers
// ---------------------------------------------------------------------------

// [MQTT-2.3.1-1]
#[test]
fn packet_identifier_zero_from_client_closes() {
    let b = TestBroker::start();
    // SUBSCRIBE id 0.
    assert_closes(b.addr, &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x74, 0x01]);
    // UNSUBSCRIBE id 0.
    assert_closes(b.addr, &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x74]);
    // PUBLISH QoS 1 and QoS 2 with id 0: closed, no PUBACK/PUBREC, not delivered.
    assert_closes_undelivered(b.addr, &[0x32, 0x05, 0x00, 0x01, 0x74, 0x00, 0x00]);
    assert_closes_undelivered(b.addr, &[0x34, 0x06, 0x00, 0x01, 0x74, 0x00, 0x00, 0x78]);
}

// [MQTT-2.3.1-1] [MQTT-2.3.1-4] [MQTT-4.3.2-1] [MQTT-4.3.3-1]
#[test]
fn server_publish_ids_are_non_zero_and_unique_while_in_flight() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("q1", 1), ("q2", 2)]);
    let mut p = client(b.addr, "pub");
    for i in 0..3u8 {
        publish(&mut p, "q1", &[i], 1, 100 + i as u16, false);
        publish(&mut p, "q2", &[i], 2, 200 + i as u16, false);
    }
    let first = delivered(&mut p, &mut sub);
    assert_eq!(first.len(), 6);
    for m in &first {
        assert!(m.pkid != 0, "server used packet id 0");
        assert!(!m.dup, "first transmission has DUP=0");
        assert_eq!(m.qos, if m.topic == "q1" { 1 } else { 2 });
    }
    let mut ids: Vec<u16> = first.iter().map(|m| m.pkid).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "ids in flight must be distinct: {first:?}");
    // Complete only some exchanges: PUBACK the second QoS 1 message, and
    // PUBREC the second QoS 2 message (its id stays in use until PUBCOMP).
    let q1: Vec<&Pub> = first.iter().filter(|m| m.qos == 1).collect();
    let q2: Vec<&Pub> = first.iter().filter(|m| m.qos == 2).collect();
    sub.send(&packet(0x40, &q1[1].pkid.to_be_bytes()));
    sub.send(&packet(0x50, &q2[1].pkid.to_be_bytes()));
    let (f, body) = sub.read_packet().unwrap();
    assert_eq!((f, body), (0x62, q2[1].pkid.to_be_bytes().to_vec()));
    let still_used: Vec<u16> = first
        .iter()
        .filter(|m| m.pkid != q1[1].pkid)
        .map(|m| m.pkid)
        .collect();
    for i in 3..13u8 {
        publish(&mut p, "q1", &[i], 1, 100 + i as u16, false);
    }
    let more = delivered(&mut p, &mut sub);
    assert_eq!(more.len(), 10);
    let mut new_ids: Vec<u16> = more.iter().map(|m| m.pkid).collect();
    for id in &new_ids {
        assert!(*id != 0);
        assert!(
            !still_used.contains(id),
            "id {id} reused while still in flight ({still_used:?})"
        );
    }
    new_ids.sort();
    new_ids.dedup();
    assert_eq!(new_ids.len(), 10, "new ids must be distinct: {more:?}");
}

// [MQTT-2.3.1-5] [MQTT-4.3.1-1] [MQTT-3.3.1-2]
#[test]
fn qos0_delivery_has_no_packet_id_and_dup_0() {
    let b = TestBroker::start();
    let mut s0 = subscriber(b.addr, &[("t", 0)]);
    let mut s2 = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    // QoS 0 publish to a QoS 2 subscription, and QoS 1/2 publishes to a
    // QoS 0 subscription: all delivered as `30 len 00 01 74 <payload>`.
    p.send(&publish_packet("t", b"hello", 0, 0, false, false));
    p.ping();
    s2.expect(&[0x30, 0x08, 0x00, 0x01, 0x74, b'h', b'e', b'l', b'l', b'o']);
    s0.expect(&[0x30, 0x08, 0x00, 0x01, 0x74, b'h', b'e', b'l', b'l', b'o']);
    p.send(&publish_packet("t", b"q1", 1, 7, false, false));
    p.expect(&[0x40, 0x02, 0x00, 0x07]);
    s0.expect(&[0x30, 0x05, 0x00, 0x01, 0x74, b'q', b'1']);
    p.send(&publish_packet("t", b"q2", 2, 8, false, true));
    p.expect(&[0x50, 0x02, 0x00, 0x08]);
    s0.expect(&[0x30, 0x05, 0x00, 0x01, 0x74, b'q', b'2']);
}

// [MQTT-2.3.1-6] [MQTT-3.3.4-1]
#[test]
fn publish_is_answered_by_qos_with_the_same_packet_id() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "pub");
    // QoS 0: no answer; the PINGRESP is the next packet.
    c.send(&[0x30, 0x03, 0x00, 0x01, 0x74]);
    c.ping();
    // QoS 1 id 0x1234 -> PUBACK 0x1234.
    c.send(&[0x32, 0x07, 0x00, 0x01, 0x74, 0x12, 0x34, 0x68, 0x69]);
    c.expect(&[0x40, 0x02, 0x12, 0x34]);
    // QoS 2 id 9 -> PUBREC 9; PUBREL 9 -> PUBCOMP 9.
    c.send(&[0x34, 0x05, 0x00, 0x01, 0x74, 0x00, 0x09]);
    c.expect(&[0x50, 0x02, 0x00, 0x09]);
    c.send(&[0x62, 0x02, 0x00, 0x09]);
    c.expect(&[0x70, 0x02, 0x00, 0x09]);
    // Ids with both bytes set.
    c.send(&publish_packet("t", b"", 1, 0xFFFF, false, false));
    c.expect(&[0x40, 0x02, 0xFF, 0xFF]);
    c.send(&publish_packet("t", b"", 2, 0x8001, false, false));
    c.expect(&[0x50, 0x02, 0x80, 0x01]);
    c.ping();
}

// [MQTT-2.3.1-7] [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.10.4-4]
#[test]
fn suback_and_unsuback_echo_the_request_packet_id() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "ids");
    c.send(&[0x82, 0x06, 0xBE, 0xEF, 0x00, 0x01, 0x74, 0x01]);
    c.expect(&[0x90, 0x03, 0xBE, 0xEF, 0x01]);
    c.send(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00]);
    c.expect(&[0x90, 0x03, 0x00, 0x01, 0x00]);
    c.send(&[0xA2, 0x05, 0x12, 0x34, 0x00, 0x01, 0x74]);
    c.expect(&[0xB0, 0x02, 0x12, 0x34]);
    c.send(&unsubscribe_packet(0xFFFF, &["t"]));
    c.expect(&[0xB0, 0x02, 0xFF, 0xFF]);
}

// ---------------------------------------------------------------------------
// §2.2 Fixed header
// ---------------------------------------------------------------------------

// [MQTT-2.2.2-1]
#[test]
fn server_packets_carry_the_reserved_flag_values() {
    let b = TestBroker::start();
    let mut seen: Vec<u8> = Vec::new();
    let mut s = Raw::connect(b.addr);
    s.send(&connect_packet(&cid("flags"), true, 60));
    let (f, _) = s.read_reply("CONNACK").unwrap();
    seen.push(f);
    let mut p = client(b.addr, "pub");
    // SUBSCRIBE -> SUBACK.
    s.send(&subscribe_packet(1, &[("t", 2)]));
    seen.push(s.read_reply("SUBACK").unwrap().0);
    // Inbound QoS 1 and QoS 2 on `s` itself (it is subscribed, so the
    // packets come back as outbound QoS 1 and QoS 2 PUBLISHes too).
    s.send(&publish_packet("t", b"1", 1, 1, false, false));
    s.send(&publish_packet("t", b"2", 2, 2, false, false));
    s.send(&[0x62, 0x02, 0x00, 0x02]);
    p.send(&publish_packet("t", b"0", 0, 0, false, false));
    p.ping();
    s.send(&[0xC0, 0x00]);
    let mut outbound = Vec::new();
    loop {
        let (f, body) = s.read_packet().unwrap();
        seen.push(f);
        if f == 0xD0 {
            break;
        }
        if f >> 4 == 3 {
            outbound.push(parse_publish(f, &body));
        }
    }
    // Acknowledge the server's QoS 1 and QoS 2 PUBLISHes: PUBREL comes back.
    for m in &outbound {
        let id = m.pkid.to_be_bytes();
        match m.qos {
            1 => s.send(&[0x40, 0x02, id[0], id[1]]),
            2 => {
                s.send(&[0x50, 0x02, id[0], id[1]]);
                let (f, body) = s.read_packet().unwrap();
                assert_eq!(body, id.to_vec());
                seen.push(f);
                s.send(&[0x70, 0x02, id[0], id[1]]);
            }
            _ => {}
        }
    }
    s.send(&unsubscribe_packet(3, &["t"]));
    seen.push(s.read_reply("UNSUBACK").unwrap().0);
    s.send(&[0xC0, 0x00]);
    seen.push(s.read_packet().unwrap().0);
    let qos: Vec<u8> = outbound.iter().map(|m| m.qos).collect();
    assert!(
        qos.contains(&0) && qos.contains(&1) && qos.contains(&2),
        "{qos:?}"
    );
    for f in &seen {
        assert!(
            matches!(
                f,
                0x20 | 0x90 | 0x30 | 0x32 | 0x34 | 0x40 | 0x50 | 0x62 | 0x70 | 0xB0 | 0xD0
            ),
            "server sent first byte {f:#04x}; all seen: {seen:02x?}"
        );
    }
    for want in [0x20, 0x90, 0x40, 0x50, 0x62, 0x70, 0xB0, 0xD0] {
        assert!(seen.contains(&want), "{want:#04x} not seen in {seen:02x?}");
    }
}

// [MQTT-2.2.2-2]
#[test]
fn wrong_reserved_flags_close_without_response() {
    let b = TestBroker::start();
    let bad: [&[u8]; 9] = [
        &[0x41, 0x02, 0x00, 0x01],
        &[0x42, 0x02, 0x00, 0x01],
        &[0x48, 0x02, 0x00, 0x01],
        &[0x51, 0x02, 0x00, 0x01],
        &[0x52, 0x02, 0x00, 0x01],
        &[0x71, 0x02, 0x00, 0x01],
        &[0x72, 0x02, 0x00, 0x01],
        &[0xC1, 0x00],
        &[0xC8, 0x00],
    ];
    for bytes in bad {
        assert_closes(b.addr, bytes);
    }
    // CONNECT with byte 1 `11`: closed without CONNACK.
    let mut c = Raw::connect(b.addr);
    let mut connect = connect_packet(&cid("f"), true, 60);
    connect[0] = 0x11;
    c.send(&connect);
    c.expect_closed();
}

// [MQTT-3.6.1-1]
#[test]
fn pubrel_with_flags_other_than_0010_closes_without_pubcomp() {
    let b = TestBroker::start();
    for first in [0x60, 0x63, 0x66, 0x6A] {
        assert_closes(b.addr, &[first, 0x02, 0x00, 0x01]);
    }
    // Also with a QoS 2 exchange really awaiting that PUBREL.
    let mut c = client(b.addr, "q2");
    c.send(&publish_packet("t", b"x", 2, 1, false, false));
    c.expect(&[0x50, 0x02, 0x00, 0x01]);
    c.send(&[0x60, 0x02, 0x00, 0x01]);
    c.expect_closed();
}

// [MQTT-3.8.1-1]
#[test]
fn subscribe_with_flags_other_than_0010_closes_without_suback() {
    let b = TestBroker::start();
    for first in [0x80, 0x81, 0x83, 0x86, 0x8A] {
        assert_closes(b.addr, &[first, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x01]);
    }
}

// [MQTT-3.10.1-1]
#[test]
fn unsubscribe_with_flags_other_than_0010_closes_without_unsuback() {
    let b = TestBroker::start();
    for first in [0xA0, 0xA1, 0xA3, 0xAA] {
        assert_closes(b.addr, &[first, 0x05, 0x00, 0x01, 0x00, 0x01, 0x74]);
    }
}

// [MQTT-3.14.1-1]
#[test]
fn disconnect_with_reserved_bits_closes_and_will_is_published() {
    let b = TestBroker::start();
    let mut obs = subscriber(b.addr, &[("will/#", 0)]);
    for first in [0xE1u8, 0xE8] {
        let mut c = Raw::connect(b.addr);
        let topic = format!("will/{first:02x}");
        c.send(&connect_with_will(
            &cid("w"),
            true,
            60,
            &topic,
            b"gone",
            0,
            false,
        ));
        assert_eq!(c.read_reply("CONNACK"), Some((0x20, vec![0, 0])));
        c.send(&[first, 0x00]);
        c.expect_closed();
        // Not a clean DISCONNECT: the Will is published.
        let w = obs.read_publish();
        assert_eq!(
            (w.topic.as_str(), w.payload.as_slice()),
            (topic.as_str(), &b"gone"[..])
        );
    }
}

// [MQTT-4.8.0-1]
#[test]
fn reserved_and_server_to_client_packet_types_from_a_client_close() {
    let b = TestBroker::start();
    let bad: [&[u8]; 7] = [
        &[0x00, 0x00],
        &[0xF0, 0x00],
        &[0xF0, 0x02, 0x00, 0x01],
        &[0x20, 0x02, 0x00, 0x00],
        &[0x90, 0x03, 0x00, 0x01, 0x00],
        &[0xB0, 0x02, 0x00, 0x01],
        &[0xD0, 0x00],
    ];
    for bytes in bad {
        assert_closes(b.addr, bytes);
    }
}

// ---------------------------------------------------------------------------
// §3.3 PUBLISH
// ---------------------------------------------------------------------------

// [MQTT-3.3.1-2]
#[test]
fn dup_set_on_qos0_publish_closes() {
    let b = TestBroker::start();
    assert_closes_undelivered(b.addr, &[0x38, 0x03, 0x00, 0x01, 0x74]);
    assert_closes_undelivered(b.addr, &[0x39, 0x04, 0x00, 0x01, 0x74, 0x78]);
}

// [MQTT-3.3.1-3]
#[test]
fn publisher_dup_flag_is_not_copied_to_subscribers() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    // QoS 1 with DUP=1 (`3A`), QoS 2 with DUP=1 (`3C`) seen for the first time.
    p.send(&publish_packet("t", b"a", 1, 1, false, true));
    p.expect(&[0x40, 0x02, 0x00, 0x01]);
    p.send(&publish_packet("t", b"b", 2, 2, false, true));
    p.expect(&[0x50, 0x02, 0x00, 0x02]);
    let got = delivered(&mut p, &mut sub);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].dup, got[0].qos, got[0].payload.as_slice()),
        (false, 1, &b"a"[..])
    );
    assert_eq!(
        (got[1].dup, got[1].qos, got[1].payload.as_slice()),
        (false, 2, &b"b"[..])
    );
}

// [MQTT-3.3.1-4]
#[test]
fn publish_with_qos_3_closes_and_is_not_delivered() {
    let b = TestBroker::start();
    assert_closes_undelivered(b.addr, &[0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01]);
    assert_closes_undelivered(b.addr, &[0x37, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01]);
    assert_closes_undelivered(b.addr, &[0x3E, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01]);
}

/// Subscribes a new client and returns what it gets before its PINGRESP
/// (the retained messages for the new subscription), SUBACK first.
fn subscribe_and_collect(addr: SocketAddr, filter: &str, qos: u8) -> Vec<Pub> {
    let mut c = client(addr, "late");
    c.subscribe(1, &[(filter, qos)]);
    drain(&mut c)
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-8] [MQTT-3.8.4-6]
#[test]
fn retained_publish_replaces_the_previous_one_and_keeps_its_qos() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "r", b"v1", 1, 1, true);
    publish(&mut p, "r", b"v2", 1, 2, true);
    let got = subscribe_and_collect(b.addr, "r", 2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].payload, b"v2");
    assert_eq!(got[0].qos, 1, "stored QoS 1, granted 2: delivered at 1");
    assert!(got[0].retain, "RETAIN=1 for a new subscription");
    // The stored QoS is capped by the new subscription's granted QoS.
    publish(&mut p, "r2", b"q2", 2, 3, true);
    let got = subscribe_and_collect(b.addr, "r2", 1);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].qos, got[0].retain), (1, true));
    let got = subscribe_and_collect(b.addr, "r2", 2);
    assert_eq!((got[0].qos, got[0].retain), (2, true));
}

// [MQTT-3.3.1-6] [MQTT-3.3.1-8]
#[test]
fn new_subscription_gets_the_retained_message_of_every_matching_topic() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "a/1", b"one", 0, 0, true);
    publish(&mut p, "a/2", b"two", 1, 1, true);
    publish(&mut p, "a/2/x", b"deep", 1, 2, true);
    publish(&mut p, "b", b"bee", 1, 3, true);
    p.ping();
    let mut got = subscribe_and_collect(b.addr, "a/+", 1);
    got.sort_by(|x, y| x.topic.cmp(&y.topic));
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["a/1", "a/2"]);
    assert!(got.iter().all(|m| m.retain), "RETAIN=1 on each: {got:?}");
    assert_eq!(payloads(&got), vec![b"one".to_vec(), b"two".to_vec()]);
}

// [MQTT-3.3.1-7]
#[test]
fn retained_qos0_publish_discards_the_previous_retained_message() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "r", b"v1", 1, 1, true);
    publish(&mut p, "r", b"v2", 0, 0, true);
    p.ping();
    let got = subscribe_and_collect(b.addr, "r", 1);
    assert!(
        got.iter().all(|m| m.payload != b"v1"),
        "old retained kept: {got:?}"
    );
    // midge keeps the QoS 0 one.
    assert_eq!(payloads(&got), vec![b"v2".to_vec()]);
    assert_eq!(got[0].qos, 0);
}

// [MQTT-3.3.1-9]
#[test]
fn forwarding_to_an_existing_subscription_clears_retain() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("r", 2)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "r", b"0", 0, 0, true);
    publish(&mut p, "r", b"1", 1, 1, true);
    publish(&mut p, "r", b"2", 2, 2, true);
    let got = delivered(&mut p, &mut sub);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| !m.retain), "{got:?}");
    // ... and the message was still stored as retained.
    let late = subscribe_and_collect(b.addr, "r", 0);
    assert_eq!(
        (late[0].payload.as_slice(), late[0].retain),
        (&b"2"[..], true)
    );
}

// [MQTT-3.3.1-10] [MQTT-3.3.1-11]
#[test]
fn empty_retained_publish_is_delivered_and_removes_the_retained_message() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "r", b"v1", 1, 1, true);
    let mut sub = subscriber(b.addr, &[("r", 1)]);
    let first = drain(&mut sub);
    assert_eq!(payloads(&first), vec![b"v1".to_vec()]);
    // `31 03 00 01 72`: retained, QoS 0, topic `r`, empty payload.
    p.send(&[0x31, 0x03, 0x00, 0x01, 0x72]);
    let got = delivered(&mut p, &mut sub);
    assert_eq!(got.len(), 1);
    assert!(got[0].payload.is_empty());
    assert!(!got[0].retain, "delivered normally with RETAIN=0");
    assert_eq!(subscribe_and_collect(b.addr, "r", 1), vec![]);
    assert_eq!(subscribe_and_collect(b.addr, "#", 1), vec![]);
    // An empty retained publish where nothing was retained stores nothing.
    publish(&mut p, "e", b"", 1, 2, true);
    assert_eq!(subscribe_and_collect(b.addr, "e", 1), vec![]);
}

// [MQTT-3.3.1-12]
#[test]
fn non_retained_publish_leaves_the_retained_message_alone() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "r", b"v1", 1, 1, true);
    publish(&mut p, "r", b"v2", 1, 2, false);
    // Not even an empty non-retained publish removes it.
    publish(&mut p, "r", b"", 0, 0, false);
    publish(&mut p, "n", b"plain", 1, 3, false);
    p.ping();
    let got = subscribe_and_collect(b.addr, "r", 1);
    assert_eq!(payloads(&got), vec![b"v1".to_vec()]);
    assert_eq!(subscribe_and_collect(b.addr, "n", 1), vec![]);
}

// [MQTT-3.3.2-2] [MQTT-4.7.1-1]
#[test]
fn wildcard_in_topic_name_closes_and_is_not_delivered() {
    let b = TestBroker::start();
    for topic in ["a/+", "a/#", "#", "+", "a+b", "x#"] {
        assert_closes_undelivered(b.addr, &publish_packet(topic, b"w", 0, 0, false, false));
    }
    assert_closes_undelivered(b.addr, &publish_packet("a/#", b"w", 1, 1, false, false));
    assert_closes_undelivered(b.addr, &publish_packet("+/b", b"w", 2, 1, true, false));
}

// [MQTT-3.3.2-3]
#[test]
fn delivered_topic_name_is_the_published_name() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("a/+", 1), ("x/#", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "a/b", b"1", 1, 1, false);
    publish(&mut p, "x/y/z", b"2", 0, 0, false);
    publish(&mut p, "x", b"3", 0, 0, false);
    let got = delivered(&mut p, &mut sub);
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["a/b", "x/y/z", "x"]);
}

// [MQTT-3.3.5-1]
#[test]
fn overlapping_subscriptions_deliver_at_the_highest_granted_qos() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("a/#", 0), ("a/b", 2), ("+/b", 1)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "a/b", b"m", 2, 1, false);
    let got = delivered(&mut p, &mut sub);
    assert!(!got.is_empty());
    assert!(got.iter().all(|m| m.payload == b"m"));
    assert!(got.iter().any(|m| m.qos == 2), "no copy at QoS 2: {got:?}");
    // A publish at QoS 1 is delivered at QoS 1 at most (min of both).
    publish(&mut p, "a/b", b"n", 1, 2, false);
    let got = delivered(&mut p, &mut sub);
    assert!(got.iter().any(|m| m.qos == 1), "{got:?}");
    assert!(got.iter().all(|m| m.qos <= 1), "{got:?}");
}

// [MQTT-3.3.5-2]
#[test]
fn publish_to_sys_topics_is_acknowledged_and_dropped() {
    let b = TestBroker::start();
    // The broker publishes its own `$SYS/broker/...` topics: stay clear.
    let mut obs = subscriber(b.addr, &[("$SYS/test/#", 2), ("control", 0)]);
    let mut p = client(b.addr, "pub");
    p.send(&publish_packet("$SYS/test/x", b"fake", 1, 1, false, false));
    p.expect(&[0x40, 0x02, 0x00, 0x01]);
    p.send(&publish_packet("$SYS/test/y", b"fake", 2, 2, true, false));
    p.expect(&[0x50, 0x02, 0x00, 0x02]);
    p.send(&[0x62, 0x02, 0x00, 0x02]);
    p.expect(&[0x70, 0x02, 0x00, 0x02]);
    p.send(&publish_packet("$SYS/test/z", b"fake", 0, 0, true, false));
    publish(&mut p, "control", b"c", 0, 0, false);
    let got = delivered(&mut p, &mut obs);
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["control"],
        "a client-published $SYS message leaked"
    );
    // The connection stays usable, and nothing was retained.
    p.ping();
    assert_eq!(subscribe_and_collect(b.addr, "$SYS/test/#", 1), vec![]);
}

/// A zero-length payload is valid, and 3.1.1 has no "no local".
#[test]
fn empty_payload_and_own_messages_are_delivered() {
    let b = TestBroker::start();
    let mut c = subscriber(b.addr, &[("t", 1)]);
    c.send(&[0x30, 0x03, 0x00, 0x01, 0x74]);
    let got = drain(&mut c);
    assert_eq!(got.len(), 1);
    assert!(got[0].payload.is_empty());
    assert_eq!(got[0].topic, "t");
}

// ---------------------------------------------------------------------------
// §3.4–§3.7 PUBACK, PUBREC, PUBREL, PUBCOMP
// ---------------------------------------------------------------------------

/// The standard is silent on acks for unknown ids; midge follows
/// mosquitto: PUBACK/PUBCOMP ignored, PUBREC answered with PUBREL, PUBREL
/// answered with PUBCOMP. None closes the connection.
#[test]
fn acks_for_unknown_packet_ids_do_not_close_the_connection() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "unk");
    c.send(&[0x40, 0x02, 0xFF, 0xFF]);
    c.send(&[0x70, 0x02, 0xFF, 0xFF]);
    c.ping();
    c.send(&[0x50, 0x02, 0xFF, 0xFF]);
    c.expect(&[0x62, 0x02, 0xFF, 0xFF]);
    c.send(&[0x62, 0x02, 0x12, 0x34]);
    c.expect(&[0x70, 0x02, 0x12, 0x34]);
    c.ping();
}

// [MQTT-4.3.3-1] [MQTT-2.3.1-6]
#[test]
fn qos2_sender_sends_pubrel_on_pubrec_and_never_republishes() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"x", 2, 1, false);
    let m = sub.read_publish();
    assert_eq!((m.qos, m.dup, m.payload.as_slice()), (2, false, &b"x"[..]));
    assert_ne!(m.pkid, 0);
    let id = m.pkid.to_be_bytes();
    // Held until PUBREC: nothing else is sent for it meanwhile.
    assert_eq!(drain(&mut sub), vec![]);
    sub.send(&[0x50, 0x02, id[0], id[1]]);
    sub.expect(&[0x62, 0x02, id[0], id[1]]);
    // A repeated PUBREC gets the PUBREL again, never the PUBLISH.
    sub.send(&[0x50, 0x02, id[0], id[1]]);
    sub.expect(&[0x62, 0x02, id[0], id[1]]);
    assert_eq!(drain(&mut sub), vec![]);
    sub.send(&[0x70, 0x02, id[0], id[1]]);
    assert_eq!(drain(&mut sub), vec![]);
    // The exchange is over: the next message flows normally.
    publish(&mut p, "t", b"y", 2, 2, false);
    let m2 = sub.read_publish();
    assert_eq!(
        (m2.qos, m2.dup, m2.payload.as_slice()),
        (2, false, &b"y"[..])
    );
}

// [MQTT-4.3.2-2]
#[test]
fn qos1_receiver_pubacks_and_a_reused_id_is_a_new_message() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 1)]);
    let mut p = client(b.addr, "pub");
    p.send(&publish_packet("t", b"m", 1, 1, false, false));
    p.expect(&[0x40, 0x02, 0x00, 0x01]);
    // PUBACK was sent only after the message was routed: the subscriber
    // already has it.
    assert_eq!(payloads(&drain(&mut sub)), vec![b"m".to_vec()]);
    // Same id again, with DUP=1: after the PUBACK it is a new message.
    p.send(&publish_packet("t", b"m", 1, 1, false, true));
    p.expect(&[0x40, 0x02, 0x00, 0x01]);
    p.send(&publish_packet("t", b"n", 1, 1, false, false));
    p.expect(&[0x40, 0x02, 0x00, 0x01]);
    let got = delivered(&mut p, &mut sub);
    assert_eq!(payloads(&got), vec![b"m".to_vec(), b"n".to_vec()]);
}

// [MQTT-4.3.3-2]
#[test]
fn qos2_receiver_suppresses_duplicates_until_pubrel() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    // `34 06 00 01 74 00 09 78`: QoS 2, id 9, "x".
    p.send(&[0x34, 0x06, 0x00, 0x01, 0x74, 0x00, 0x09, 0x78]);
    p.expect(&[0x50, 0x02, 0x00, 0x09]);
    // Resent with DUP=1, and once more without DUP: PUBREC each time.
    p.send(&[0x3C, 0x06, 0x00, 0x01, 0x74, 0x00, 0x09, 0x78]);
    p.expect(&[0x50, 0x02, 0x00, 0x09]);
    p.send(&[0x34, 0x06, 0x00, 0x01, 0x74, 0x00, 0x09, 0x79]);
    p.expect(&[0x50, 0x02, 0x00, 0x09]);
    // Another id in between is a different message.
    p.send(&publish_packet("t", b"other", 2, 10, false, false));
    p.expect(&[0x50, 0x02, 0x00, 0x0A]);
    p.send(&[0x62, 0x02, 0x00, 0x09]);
    p.expect(&[0x70, 0x02, 0x00, 0x09]);
    p.send(&[0x62, 0x02, 0x00, 0x0A]);
    p.expect(&[0x70, 0x02, 0x00, 0x0A]);
    let got = delivered(&mut p, &mut sub);
    assert_eq!(
        payloads(&got),
        vec![b"x".to_vec(), b"other".to_vec()],
        "delivered exactly once"
    );
    // After PUBCOMP the id starts a new message.
    p.send(&[0x34, 0x06, 0x00, 0x01, 0x74, 0x00, 0x09, 0x7A]);
    p.expect(&[0x50, 0x02, 0x00, 0x09]);
    p.send(&[0x62, 0x02, 0x00, 0x09]);
    p.expect(&[0x70, 0x02, 0x00, 0x09]);
    assert_eq!(payloads(&delivered(&mut p, &mut sub)), vec![b"z".to_vec()]);
}

// [MQTT-4.5.0-1]
#[test]
fn message_is_added_to_every_matching_session_online_or_not() {
    let b = TestBroker::start();
    let mut s1 = subscriber(b.addr, &[("t", 1)]);
    let mut s3 = subscriber(b.addr, &[("+", 2), ("#", 0)]);
    let off_id = cid("offline");
    let (mut s2, _) = Raw::mqtt(b.addr, &off_id, false);
    s2.subscribe(1, &[("t", 1)]);
    s2.send(&[0xE0, 0x00]);
    s2.expect_closed();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"m", 1, 1, false);
    p.ping();
    assert_eq!(payloads(&drain(&mut s1)), vec![b"m".to_vec()]);
    let got3 = drain(&mut s3);
    assert!(!got3.is_empty() && got3.iter().all(|m| m.payload == b"m"));
    let (mut s2, present) = Raw::mqtt(b.addr, &off_id, false);
    assert!(present);
    let m = s2.read_publish();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice(), m.qos),
        ("t", &b"m"[..], 1)
    );
}

// ---------------------------------------------------------------------------
// §3.8–§3.9 SUBSCRIBE and SUBACK
// ---------------------------------------------------------------------------

// [MQTT-3.8.3-2]
#[test]
fn wildcard_filters_are_granted() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "wc");
    c.send(&subscribe_packet(
        3,
        &[("a/+", 1), ("#", 0), ("+/x/#", 2), ("+", 1), ("a/#", 2)],
    ));
    assert_eq!(read_suback(&mut c, 3), vec![1, 0, 2, 1, 2]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "a/b", b"1", 0, 0, false);
    let got = delivered(&mut p, &mut c);
    assert!(!got.is_empty() && got.iter().all(|m| m.topic == "a/b"));
}

// [MQTT-3.8.3-3]
#[test]
fn subscribe_without_filters_closes_without_suback() {
    let b = TestBroker::start();
    assert_closes(b.addr, &[0x82, 0x02, 0x00, 0x01]);
}

// [MQTT-3.8.3-4]
#[test]
fn requested_qos_with_reserved_bits_or_qos_3_closes() {
    let b = TestBroker::start();
    for q in [0x03u8, 0x04, 0x80, 0x41, 0xFC] {
        assert_closes(b.addr, &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, q]);
    }
    // A bad second pair also closes: no SUBACK at all for the packet.
    assert_closes(b.addr, &subscribe_packet(1, &[("a", 1), ("b", 3)]));
}

// [MQTT-3.8.4-3]
#[test]
fn identical_filter_replaces_the_subscription_and_resends_retained() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"kept", 1, 1, true);
    let mut c = client(b.addr, "re");
    c.subscribe(1, &[("t", 0)]);
    let got = drain(&mut c);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].qos, got[0].retain), (0, true));
    c.subscribe(2, &[("t", 1)]);
    let got = drain(&mut c);
    assert_eq!(got.len(), 1, "retained sent again: {got:?}");
    assert_eq!(
        (got[0].payload.as_slice(), got[0].qos, got[0].retain),
        (&b"kept"[..], 1, true)
    );
    c.send(&packet(0x40, &got[0].pkid.to_be_bytes()));
    // One subscription, now at QoS 1: a publish arrives exactly once.
    publish(&mut p, "t", b"new", 2, 2, false);
    let got = delivered(&mut p, &mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].payload.as_slice(), got[0].qos, got[0].retain),
        (&b"new"[..], 1, false)
    );
    c.send(&packet(0x40, &got[0].pkid.to_be_bytes()));
    // Replace it by a QoS 0 one: still one copy, now QoS 0.
    c.subscribe(3, &[("t", 0)]);
    let _retained = drain(&mut c);
    publish(&mut p, "t", b"low", 2, 3, false);
    let got = delivered(&mut p, &mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].payload.as_slice(), got[0].qos), (&b"low"[..], 0));
}

// [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2]
#[test]
fn multi_filter_subscribe_gets_one_suback_with_codes_in_order() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "multi");
    // `a` QoS 2, `b` QoS 0, `c` QoS 1 -> `90 05 <id> 02 00 01`.
    c.send(&subscribe_packet(0x0102, &[("a", 2), ("b", 0), ("c", 1)]));
    c.expect(&[0x90, 0x05, 0x01, 0x02, 0x02, 0x00, 0x01]);
    // Exactly one SUBACK: the next packet is the PINGRESP.
    c.ping();
    // Same filter twice in one packet: like two SUBSCRIBEs, the last wins.
    c.send(&subscribe_packet(7, &[("d", 0), ("d", 2)]));
    assert_eq!(read_suback(&mut c, 7), vec![0, 2]);
    let mut p = client(b.addr, "pub");
    for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
        publish(&mut p, t, t.as_bytes(), 2, i as u16 + 1, false);
    }
    let got = delivered(&mut p, &mut c);
    let seen: Vec<(&str, u8)> = got.iter().map(|m| (m.topic.as_str(), m.qos)).collect();
    assert_eq!(seen, [("a", 2), ("b", 0), ("c", 1), ("d", 2)]);
}

// [MQTT-3.8.4-6]
#[test]
fn delivered_qos_is_the_minimum_of_published_and_granted() {
    let b = TestBroker::start();
    let mut s1 = subscriber(b.addr, &[("t", 1)]);
    let mut s2 = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"2", 2, 1, false);
    publish(&mut p, "t", b"1", 1, 2, false);
    publish(&mut p, "t", b"0", 0, 0, false);
    p.ping();
    let q1: Vec<u8> = drain(&mut s1).iter().map(|m| m.qos).collect();
    let q2: Vec<u8> = drain(&mut s2).iter().map(|m| m.qos).collect();
    assert_eq!(q1, [1, 1, 0]);
    assert_eq!(q2, [2, 1, 0]);
}

// ---------------------------------------------------------------------------
// §3.10–§3.11 UNSUBSCRIBE and UNSUBACK
// ---------------------------------------------------------------------------

// [MQTT-3.10.3-2]
#[test]
fn unsubscribe_without_filters_closes_without_unsuback() {
    let b = TestBroker::start();
    assert_closes(b.addr, &[0xA2, 0x02, 0x00, 0x01]);
}

// [MQTT-3.10.4-1] [MQTT-3.10.4-2]
#[test]
fn unsubscribe_compares_filters_literally_and_stops_delivery() {
    let b = TestBroker::start();
    let mut c = subscriber(b.addr, &[("a/+", 1)]);
    let mut p = client(b.addr, "pub");
    // `a/b` matches `a/+` but is not the same filter: nothing is deleted.
    c.send(&unsubscribe_packet(2, &["a/b"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x02]);
    c.send(&unsubscribe_packet(3, &["a/#", "+/+", "A/+"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x03]);
    publish(&mut p, "a/b", b"1", 0, 0, false);
    assert_eq!(payloads(&delivered(&mut p, &mut c)), vec![b"1".to_vec()]);
    // The exact filter deletes it: no new messages afterwards.
    c.send(&unsubscribe_packet(4, &["a/+"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x04]);
    publish(&mut p, "a/b", b"2", 0, 0, false);
    publish(&mut p, "a/c", b"3", 1, 1, false);
    publish(&mut p, "a/d", b"4", 2, 2, false);
    assert_eq!(delivered(&mut p, &mut c), vec![]);
}

// [MQTT-3.10.4-3]
#[test]
fn unsubscribe_completes_qos_deliveries_already_started() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    // In session: a QoS 2 delivery started before the UNSUBSCRIBE finishes.
    let mut c = subscriber(b.addr, &[("t", 2)]);
    publish(&mut p, "t", b"q2", 2, 1, false);
    let m = c.read_publish();
    let id = m.pkid.to_be_bytes();
    c.send(&unsubscribe_packet(5, &["t"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x05]);
    c.send(&[0x50, 0x02, id[0], id[1]]);
    c.expect(&[0x62, 0x02, id[0], id[1]]);
    c.send(&[0x70, 0x02, id[0], id[1]]);
    c.ping();
    // Across a reconnect: an unacknowledged QoS 1 PUBLISH is resent even
    // though its subscription is gone.
    let id_s = cid("unsub-persist");
    let (mut s, _) = Raw::mqtt(b.addr, &id_s, false);
    s.subscribe(1, &[("u", 1)]);
    publish(&mut p, "u", b"q1", 1, 2, false);
    let m = s.read_publish();
    s.send(&unsubscribe_packet(2, &["u"]));
    s.expect(&[0xB0, 0x02, 0x00, 0x02]);
    drop(s);
    p.ping();
    let (mut s, present) = Raw::mqtt(b.addr, &id_s, false);
    assert!(present);
    let again = s.read_publish();
    assert_eq!(
        (again.pkid, again.dup, again.payload.as_slice()),
        (m.pkid, true, &b"q1"[..])
    );
    s.send(&packet(0x40, &again.pkid.to_be_bytes()));
    // ... and nothing new for the deleted subscription.
    publish(&mut p, "u", b"later", 1, 3, false);
    assert_eq!(delivered(&mut p, &mut s), vec![]);
}

// [MQTT-3.10.4-5]
#[test]
fn unsuback_is_sent_even_when_nothing_was_subscribed() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "none");
    c.send(&unsubscribe_packet(0x0A0B, &["zzz"]));
    c.expect(&[0xB0, 0x02, 0x0A, 0x0B]);
    c.send(&unsubscribe_packet(2, &["#", "a/+/b"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x02]);
    c.ping();
}

// [MQTT-3.10.4-6]
#[test]
fn multi_filter_unsubscribe_gets_one_unsuback() {
    let b = TestBroker::start();
    let mut c = subscriber(b.addr, &[("a", 1), ("b", 2), ("c", 0)]);
    c.send(&unsubscribe_packet(9, &["a", "b", "never"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x09]);
    // Exactly one UNSUBACK: the next packet is the PINGRESP.
    c.ping();
    let mut p = client(b.addr, "pub");
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        publish(&mut p, t, t.as_bytes(), 1, i as u16 + 1, false);
    }
    let got = delivered(&mut p, &mut c);
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["c"]);
}

// ---------------------------------------------------------------------------
// §3.12 PINGREQ, §3.14 DISCONNECT
// ---------------------------------------------------------------------------

// [MQTT-3.12.4-1]
#[test]
fn every_pingreq_is_answered_with_pingresp() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "ping");
    c.send(&[0xC0, 0x00]);
    c.expect(&[0xD0, 0x00]);
    // Ten in one write: ten answers.
    c.send(&[0xC0, 0x00].repeat(10));
    c.expect(&[0xD0, 0x00].repeat(10));
    // Also while QoS exchanges are in progress.
    c.send(&publish_packet("t", b"", 2, 1, false, false));
    c.send(&[0xC0, 0x00]);
    c.expect(&[0x50, 0x02, 0x00, 0x01, 0xD0, 0x00]);
}

// [MQTT-3.14.4-3]
#[test]
fn disconnect_discards_the_will_and_ignores_later_data() {
    let b = TestBroker::start();
    let mut obs = subscriber(b.addr, &[("will", 0), ("after", 0), ("control", 0)]);
    let mut a = Raw::connect(b.addr);
    a.send(&connect_with_will(
        &cid("w"),
        true,
        60,
        "will",
        b"gone",
        1,
        false,
    ));
    assert_eq!(a.read_reply("CONNACK"), Some((0x20, vec![0, 0])));
    // DISCONNECT and a PUBLISH in the same write: the PUBLISH is not processed.
    let mut bytes = vec![0xE0, 0x00];
    bytes.extend(publish_packet("after", b"x", 0, 0, false, false));
    a.send(&bytes);
    a.expect_closed();
    drop(a);
    let mut p = client(b.addr, "ctl");
    publish(&mut p, "control", b"c", 0, 0, false);
    let got = delivered(&mut p, &mut obs);
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["control"],
        "Will or post-DISCONNECT data delivered"
    );
}

// ---------------------------------------------------------------------------
// §4.3 QoS 1 sender: held until PUBACK, resent with DUP=1 (reconnect)
// ---------------------------------------------------------------------------

// [MQTT-3.3.1-1] [MQTT-4.3.2-1] [MQTT-2.3.1-4] [MQTT-4.6.0-1]
#[test]
fn unacknowledged_qos1_publish_is_resent_with_dup_and_same_id_until_acked() {
    let b = TestBroker::start();
    let id = cid("dup");
    let (mut s, _) = Raw::mqtt(b.addr, &id, false);
    s.subscribe(1, &[("t", 1)]);
    let mut p = client(b.addr, "pub");
    for i in 0..3u8 {
        publish(&mut p, "t", &[b'0' + i], 1, i as u16 + 1, false);
    }
    let first = delivered(&mut p, &mut s);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|m| !m.dup && m.qos == 1));
    drop(s);
    let (mut s, present) = Raw::mqtt(b.addr, &id, false);
    assert!(present);
    let again = drain(&mut s);
    assert_eq!(again.len(), 3, "{again:?}");
    for (a, f) in again.iter().zip(&first) {
        assert!(a.dup, "a redelivery has DUP=1 (byte 1 `3A`)");
        assert_eq!(
            (a.pkid, &a.payload, a.qos),
            (f.pkid, &f.payload, 1),
            "same id, original order"
        );
    }
    for m in &again {
        s.send(&packet(0x40, &m.pkid.to_be_bytes()));
    }
    s.ping();
    drop(s);
    let (mut s, _) = Raw::mqtt(b.addr, &id, false);
    assert_eq!(
        drain(&mut s),
        vec![],
        "acknowledged messages are not resent"
    );
}

// ---------------------------------------------------------------------------
// §4.6 Message ordering
// ---------------------------------------------------------------------------

/// Reads `n` PUBLISHes on `sub`, completing the subscriber's side of each
/// QoS flow (PUBACK; PUBREC then PUBCOMP for the PUBREL), and returns them.
fn receive_acking(sub: &mut Raw, n: usize) -> Vec<Pub> {
    let mut got = Vec::new();
    let mut open_pubrels = 0usize;
    for _ in 0..(3 * n + 10) {
        if got.len() == n && open_pubrels == 0 {
            break;
        }
        let (first, body) = sub.read_packet().expect("packet");
        if first == 0x62 {
            sub.send(&packet(0x70, &body));
            open_pubrels -= 1;
            continue;
        }
        let m = parse_publish(first, &body);
        match m.qos {
            1 => sub.send(&packet(0x40, &m.pkid.to_be_bytes())),
            2 => {
                sub.send(&packet(0x50, &m.pkid.to_be_bytes()));
                open_pubrels += 1;
            }
            _ => {}
        }
        got.push(m);
    }
    assert_eq!(got.len(), n);
    assert_eq!(open_pubrels, 0);
    got
}

// [MQTT-4.6.0-5] [MQTT-4.6.0-6]
#[test]
fn messages_of_one_publisher_topic_and_qos_arrive_in_order() {
    let b = TestBroker::start();
    for qos in 0..=2u8 {
        let mut sub = subscriber(b.addr, &[("ordered", qos)]);
        let mut p = client(b.addr, "pub");
        // All 100 in one write, then the publisher's acks.
        let mut bytes = Vec::new();
        for i in 1..=100u16 {
            bytes.extend(publish_packet(
                "ordered",
                &i.to_be_bytes(),
                qos,
                i,
                false,
                false,
            ));
        }
        p.send(&bytes);
        if qos == 1 {
            for i in 1..=100u16 {
                p.expect(&packet(0x40, &i.to_be_bytes()));
            }
        } else if qos == 2 {
            for i in 1..=100u16 {
                p.expect(&packet(0x50, &i.to_be_bytes()));
            }
            let mut rels = Vec::new();
            for i in 1..=100u16 {
                rels.extend(packet(0x62, &i.to_be_bytes()));
            }
            p.send(&rels);
            for i in 1..=100u16 {
                p.expect(&packet(0x70, &i.to_be_bytes()));
            }
        }
        let got = receive_acking(&mut sub, 100);
        let order: Vec<u16> = got
            .iter()
            .map(|m| u16::from_be_bytes([m.payload[0], m.payload[1]]))
            .collect();
        assert_eq!(order, (1..=100).collect::<Vec<u16>>(), "QoS {qos}");
        assert!(got.iter().all(|m| m.qos == qos && !m.dup));
    }
}

// [MQTT-4.6.0-4] [MQTT-2.3.1-6]
#[test]
fn pubrels_are_sent_in_the_order_the_pubrecs_arrived() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    for i in 1..=3u16 {
        publish(&mut p, "t", &i.to_be_bytes(), 2, i, false);
    }
    let got = delivered(&mut p, &mut sub);
    let k: Vec<[u8; 2]> = got.iter().map(|m| m.pkid.to_be_bytes()).collect();
    assert_eq!(k.len(), 3);
    // PUBREC k2, then k3, then k1 -> PUBREL k2, k3, k1.
    let mut bytes = Vec::new();
    for i in [1, 2, 0] {
        bytes.extend(packet(0x50, &k[i]));
    }
    sub.send(&bytes);
    for i in [1, 2, 0] {
        sub.expect(&packet(0x62, &k[i]));
    }
}

// ---------------------------------------------------------------------------
// §4.7 Topic Names and Topic Filters
// ---------------------------------------------------------------------------

// [MQTT-4.7.1-2]
#[test]
fn misplaced_multi_level_wildcard_in_filter_closes() {
    let b = TestBroker::start();
    for f in ["a/#/b", "a#", "#/", "#/a", "a/b#", "##"] {
        assert_closes(b.addr, &subscribe_packet(1, &[(f, 0)]));
    }
    // Also when it is the second filter of the packet, and in UNSUBSCRIBE.
    assert_closes(b.addr, &subscribe_packet(1, &[("ok", 0), ("a/#/b", 1)]));
    // `A2 08 00 01 00 04 61 2F 23 2F`: unsubscribe `a/#/`.
    assert_closes(
        b.addr,
        &[0xA2, 0x08, 0x00, 0x01, 0x00, 0x04, 0x61, 0x2F, 0x23, 0x2F],
    );
}

// [MQTT-4.7.1-3]
#[test]
fn partial_level_single_level_wildcard_in_filter_closes() {
    let b = TestBroker::start();
    for f in ["a/b+", "+a", "a/+b/c", "++", "+/a+"] {
        assert_closes(b.addr, &subscribe_packet(1, &[(f, 0)]));
    }
    assert_closes(b.addr, &unsubscribe_packet(1, &["a+"]));
}

// [MQTT-4.7.2-1]
#[test]
fn filters_starting_with_a_wildcard_do_not_match_dollar_topics() {
    let b = TestBroker::start();
    let mut all = subscriber(b.addr, &[("#", 0)]);
    let mut plus = subscriber(b.addr, &[("+/x", 0), ("+/#", 0), ("+", 0)]);
    let mut dollar = subscriber(b.addr, &[("$t/#", 0), ("$t/+", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "$t/x", b"d", 1, 1, true);
    publish(&mut p, "$t", b"d", 0, 0, false);
    publish(&mut p, "control/x", b"c", 0, 0, false);
    p.ping();
    let topics = |v: Vec<Pub>| v.into_iter().map(|m| m.topic).collect::<Vec<_>>();
    assert_eq!(topics(drain(&mut all)), ["control/x"]);
    let plus_got = topics(drain(&mut plus));
    assert!(plus_got.iter().all(|t| t == "control/x"), "{plus_got:?}");
    assert!(!plus_got.is_empty());
    let dollar_got = topics(drain(&mut dollar));
    assert!(dollar_got.contains(&"$t/x".to_string()) && dollar_got.contains(&"$t".to_string()));
    // Nor are retained `$` messages sent to a new `#` or `+/x` subscription.
    assert_eq!(subscribe_and_collect(b.addr, "#", 0), vec![]);
    assert_eq!(subscribe_and_collect(b.addr, "+/x", 0), vec![]);
    assert_eq!(topics(subscribe_and_collect(b.addr, "$t/x", 0)), ["$t/x"]);
}

// [MQTT-4.7.3-1]
#[test]
fn empty_topic_name_or_filter_closes() {
    let b = TestBroker::start();
    // `30 02 00 00`: PUBLISH with an empty topic.
    assert_closes_undelivered(b.addr, &[0x30, 0x02, 0x00, 0x00]);
    assert_closes_undelivered(b.addr, &publish_packet("", b"x", 1, 1, false, false));
    // `82 05 00 01 00 00 00`: SUBSCRIBE with an empty filter.
    assert_closes(b.addr, &[0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]);
    assert_closes(b.addr, &[0xA2, 0x04, 0x00, 0x01, 0x00, 0x00]);
}

// [MQTT-4.7.3-3]
#[test]
fn topics_of_the_maximum_length_are_carried_intact() {
    let b = TestBroker::start();
    let long: String = (0..65_535)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut exact = subscriber(b.addr, &[(long.as_str(), 1)]);
    let mut all = subscriber(b.addr, &[("#", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, &long, b"L", 1, 1, false);
    p.ping();
    for s in [&mut exact, &mut all] {
        let got = drain(s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].topic.len(), 65_535);
        assert!(got[0].topic == long);
        assert_eq!(got[0].payload, b"L");
    }
}

// [MQTT-4.7.3-4]
#[test]
fn topic_matching_is_exact_without_normalisation() {
    let b = TestBroker::start();
    // `café` precomposed (63 61 66 C3 A9).
    let mut cafe = subscriber(b.addr, &[("caf\u{e9}", 0), ("Accounts", 0), ("finance", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "cafe\u{301}", b"nfd", 0, 0, false);
    publish(&mut p, "ACCOUNTS", b"upper", 0, 0, false);
    publish(&mut p, "accounts", b"lower", 0, 0, false);
    publish(&mut p, "/finance", b"slash", 0, 0, false);
    publish(&mut p, "finance/", b"slash2", 0, 0, false);
    publish(&mut p, "caf\u{e9}", b"nfc", 0, 0, false);
    publish(&mut p, "Accounts", b"same", 0, 0, false);
    publish(&mut p, "finance", b"fin", 0, 0, false);
    let got = delivered(&mut p, &mut cafe);
    assert_eq!(
        payloads(&got),
        vec![b"nfc".to_vec(), b"same".to_vec(), b"fin".to_vec()]
    );
    assert_eq!(got[0].topic.as_bytes(), &[0x63, 0x61, 0x66, 0xC3, 0xA9]);
}

/// The matching table of the reference (§4.7), over the wire.
#[test]
fn wildcard_matching_follows_the_standard_examples() {
    let b = TestBroker::start();
    let cases: &[(&str, &str, bool)] = &[
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("#", "a/b/c", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("finance", "/finance", false),
        ("/", "/", true),
        ("a b/+", "a b/c d", true),
    ];
    let mut p = client(b.addr, "pub");
    for (filter, name, want) in cases {
        let mut s = subscriber(b.addr, &[(filter, 0)]);
        // `$SYS/...` publishes from clients are dropped: use another `$`
        // topic for that row.
        let name = name.replace("$SYS", "$X");
        publish(&mut p, &name, b"m", 0, 0, false);
        let got = delivered(&mut p, &mut s);
        assert_eq!(!got.is_empty(), *want, "filter {filter:?} vs name {name:?}");
        if *want {
            assert_eq!(got[0].topic, name);
        }
    }
}

// ---------------------------------------------------------------------------
// §4.8 Error handling
// ---------------------------------------------------------------------------

// [MQTT-4.8.0-1] [MQTT-4.8.0-2]
#[test]
fn oversized_packet_closes_only_the_offending_connection() {
    let b = TestBroker::start_with(|c| c.max_packet_size = 1024);
    let mut sub = subscriber(b.addr, &[("t", 1)]);
    let mut other = client(b.addr, "other");
    // Exactly at the limit: accepted.
    let at_limit = vec![b'x'; 1024 - 5];
    publish(&mut other, "t", &at_limit, 1, 1, false);
    assert_eq!(payloads(&delivered(&mut other, &mut sub)), vec![at_limit]);
    sub.send(&[0x40, 0x02, 0x00, 0x01]);
    // One byte more: closed, not delivered.
    let mut a = client(b.addr, "big");
    a.send(&publish_packet("t", &[b'y'; 1024 - 4], 1, 1, false, false));
    a.expect_closed();
    // Decided from the length header alone: no body needed.
    let mut a = client(b.addr, "big");
    a.send(&[0x30, 0xFF, 0xFF, 0x7F]);
    a.expect_closed();
    // Other clients do not notice: pings answered, messages still flow.
    sub.ping();
    other.ping();
    publish(&mut other, "t", b"after", 1, 2, false);
    let got = delivered(&mut other, &mut sub);
    assert_eq!(payloads(&got), vec![b"after".to_vec()]);
}

// [MQTT-4.8.0-1]
#[test]
fn protocol_violation_closes_only_its_own_connection() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 0)]);
    let mut bad = client(b.addr, "bad");
    publish(&mut bad, "t", b"before", 0, 0, false);
    bad.send(&[0xF0, 0x00]);
    bad.expect_closed();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"after", 0, 0, false);
    let got = delivered(&mut p, &mut sub);
    assert_eq!(payloads(&got), vec![b"before".to_vec(), b"after".to_vec()]);
}

// ---------------------------------------------------------------------------
// §7 Conformance: plain TCP, no extensions
// ---------------------------------------------------------------------------

// [MQTT-7.1.1-1] [MQTT-7.0.0-2]
#[test]
fn plain_tcp_byte_stream_without_extensions() {
    let b = TestBroker::start();
    // One byte per write: packets need not align with TCP segments.
    let mut s = Raw::connect(b.addr);
    let mut bytes = connect_packet(&cid("plain"), true, 30);
    bytes.extend(subscribe_packet(1, &[("p/#", 2)]));
    for byte in &bytes {
        s.send(&[*byte]);
    }
    s.expect(&[0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x02]);
    // Many packets coalesced in one write.
    let mut p = Raw::connect(b.addr);
    let mut bytes = connect_packet(&cid("plain-pub"), true, 30);
    bytes.extend(publish_packet("p/0", b"zero", 0, 0, false, false));
    bytes.extend(publish_packet("p/1", b"one", 1, 1, false, false));
    bytes.extend(publish_packet("p/2", b"two", 2, 2, false, false));
    bytes.extend([0x62, 0x02, 0x00, 0x02, 0xC0, 0x00]);
    p.send(&bytes);
    p.expect(&[
        0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01, 0x50, 0x02, 0x00, 0x02, 0x70, 0x02, 0x00,
        0x02, 0xD0, 0x00,
    ]);
    let got = receive_acking(&mut s, 3);
    let seen: Vec<(&str, u8)> = got.iter().map(|m| (m.topic.as_str(), m.qos)).collect();
    assert_eq!(seen, [("p/0", 0), ("p/1", 1), ("p/2", 2)]);
    s.ping();
    s.send(&[0xE0, 0x00]);
    s.expect_closed();
}
