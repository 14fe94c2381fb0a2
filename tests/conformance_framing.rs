//! Raw-byte conformance tests for the framing statements of MQTT 3.1.1
//! plus Errata 01: data representation (UTF-8, Remaining Length, packet
//! identifiers), the fixed header, PINGREQ and DISCONNECT, error handling
//! and plain TCP.
//!
//! PUBLISH and the QoS flows, SUBSCRIBE/UNSUBSCRIBE and topics, and
//! CONNECT/sessions have their own test files (conformance_*.rs).
//!
//! Every test talks TCP to a broker on an ephemeral loopback port. A
//! "nothing was delivered" check uses a barrier: the publisher's PINGRESP
//! proves the broker processed everything it sent, then the subscriber's
//! own PINGRESP arrives after anything queued for it before.

mod common;
use common::conformance::*;
use common::*;

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

/// Whatever Remaining Length encoding a PUBLISH came in, its copies have
/// the shortest: a QoS 0 copy may be the received bytes themselves, but
/// only when they are what the broker would write.
#[test]
fn non_minimal_remaining_length_is_forwarded_minimal() {
    let b = TestBroker::start();
    let mut sub = subscriber(b.addr, &[("t", 0)]);
    let mut c = client(b.addr, "nm");
    c.send(&[0x30, 0x85, 0x80, 0x00, 0x00, 0x01, 0x74, b'h', b'i']);
    c.send(&[0x30, 0x85, 0x00, 0x00, 0x01, 0x74, b'h', b'o']);
    c.send(&[0x30, 0x05, 0x00, 0x01, 0x74, b'h', b'u']);
    sub.expect(&[0x30, 0x05, 0x00, 0x01, 0x74, b'h', b'i']);
    sub.expect(&[0x30, 0x05, 0x00, 0x01, 0x74, b'h', b'o']);
    sub.expect(&[0x30, 0x05, 0x00, 0x01, 0x74, b'h', b'u']);
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
