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
use std::time::Duration;

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
    let (first, body) = c.read_packet().expect("SUBACK");
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
        &[0x82, 0x09, 0x00, 0x01, 0x00, 0x04, 0x61, 0xED, 0xA0, 0x80, 0x00],
    );
    // Overlong NUL in `a/` + ...
    assert_closes(
        b.addr,
        &[0x82, 0x09, 0x00, 0x01, 0x00, 0x04, 0x61, 0x2F, 0xC0, 0x80, 0x00],
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
