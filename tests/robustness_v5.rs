//! Bad MQTT 5 input never crashes or wedges the broker: a session's bytes
//! (CONNECT with properties and a Will, SUBSCRIBE with a Subscription
//! Identifier, PUBLISH with properties and a Topic Alias, acks with reason
//! codes, DISCONNECT with properties) cut at every byte, and with every
//! byte mutated, each on its own connection; the broker serves a
//! well-behaved client afterwards.

mod common;
use common::robustness::{assert_healthy, read_until_closed};
use common::v5::*;
use common::*;

/// One MQTT 5 session's worth of packets from a client.
fn session_bytes() -> Vec<u8> {
    let will = Will5 {
        props: Props::new().four(0x18, 1).byte(0x01, 1).pair("w", "1"),
        ..Will5::new("r/w", b"bye")
    };
    let connect = Connect5::new("fuzz5")
        .expiry(0)
        .props(Props::new().two(0x21, 5).four(0x27, 4096).two(0x22, 3))
        .will(will);
    let mut bytes = connect.bytes();
    bytes.extend(subscribe5(1, &Props::new().var(0x0B, 7), &[("r/#", 0x2A)]));
    let props = Props::new()
        .two(0x23, 2)
        .four(0x02, 30)
        .text(0x08, b"r/reply")
        .text(0x09, &[0, 1, 2])
        .pair("k", "v");
    bytes.extend(publish5("r/t", b"payload", 1, 3, false, &props));
    bytes.extend(publish5(
        "",
        b"again",
        2,
        4,
        false,
        &Props::new().two(0x23, 2),
    ));
    bytes.extend([0x62, 0x03, 0x00, 0x04, 0x00]);
    bytes.extend([0x40, 0x04, 0x00, 0x01, 0x00, 0x00]);
    bytes.extend([0xA2, 0x07, 0x00, 0x05, 0x00, 0x00, 0x02, b'r', b'/']);
    bytes.extend([0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]);
    bytes
}

/// Sends `bytes` on a new connection, half-closes, and waits until the
/// broker closes too (it must: either the stream ended inside a packet,
/// or it broke a rule, or it ended with DISCONNECT).
fn feed(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut c = Raw::connect(addr);
    c.send(bytes);
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    read_until_closed(&mut c.stream, WAIT);
}

#[test]
fn a_v5_session_cut_at_every_byte() {
    let b = TestBroker::start();
    let bytes = session_bytes();
    for cut in 0..bytes.len() {
        feed(b.addr, &bytes[..cut]);
    }
    assert_healthy(b.addr);
}

#[test]
fn a_v5_session_with_each_byte_mutated() {
    let b = TestBroker::start();
    let bytes = session_bytes();
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut m = bytes.clone();
            m[i] ^= flip;
            feed(b.addr, &m);
        }
    }
    assert_healthy(b.addr);
    // And a v5 client is served too.
    let mut c = Raw::v5(b.addr, "after-fuzz");
    c.sub5("ok", 1);
    c.ping();
}

#[test]
fn a_v5_session_with_two_bytes_mutated() {
    let b = TestBroker::start();
    let bytes = session_bytes();
    let n = bytes.len();
    for i in 0..n {
        // A second byte spread over the stream (a property length and a
        // value, a length and a flag...), changed by another amount.
        let j = (i * 37 + 11) % n;
        let mut m = bytes.clone();
        m[i] ^= 0x40;
        m[j] = m[j].wrapping_add(1 + (i % 7) as u8);
        feed(b.addr, &m);
    }
    assert_healthy(b.addr);
}

/// The unmutated session is served whole: CONNACK 0, SUBACK, PUBACK,
/// PUBREC, PUBCOMP, the PUBLISHes to its own subscription, UNSUBACK, and
/// the close after its DISCONNECT.
#[test]
fn the_v5_session_is_valid() {
    let b = TestBroker::start();
    let mut c = Raw::connect(b.addr);
    c.send(&session_bytes());
    let got = read_until_closed(&mut c.stream, WAIT);
    let mut firsts = Vec::new();
    let mut rest = &got[..];
    while let Some(&first) = rest.first() {
        let len = rest[1] as usize; // every reply here is under 128 bytes
        firsts.push(first & 0xF0);
        rest = &rest[2 + len..];
    }
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(firsts[0], 0x20, "CONNACK first: {firsts:02x?}");
    assert_eq!(sorted, vec![0x20, 0x30, 0x30, 0x40, 0x50, 0x70, 0x90, 0xB0]);
}
