//! Raw-byte conformance tests for MQTT 5.0 error handling: Malformed
//! Packets and Protocol Errors answered with DISCONNECT and a close, the
//! server's DISCONNECT and what it may carry, DISCONNECT and AUTH from the
//! client, and acknowledgements that stay within the client's Maximum
//! Packet Size.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids.

mod common;
use common::sessions::kill;
use common::v5::*;
use common::*;

/// Size on the wire of a packet read as (first byte, body).
fn wire_size(body: &[u8]) -> usize {
    1 + remaining_length(body.len()).len() + body.len()
}

// [MQTT-4.13.1-1] [MQTT-4.13.2-1]
#[test]
fn errors_close_only_their_own_connection() {
    let b = TestBroker::start();
    let mut bystander = Raw::v5(b.addr, "bystander");
    // A server-to-client packet type, PINGRESP, type 0, a fifth length byte.
    assert_disconnects(b.addr, &[0x20, 0x03, 0x00, 0x00, 0x00], 0x82);
    assert_disconnects(b.addr, &[0xD0, 0x00], 0x82);
    assert_disconnects(b.addr, &[0x00, 0x00], 0x81);
    assert_disconnects(b.addr, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], 0x81);
    bystander.ping();
}

// [MQTT-1.5.5-1]
#[test]
fn variable_byte_integers_must_be_minimal() {
    let b = TestBroker::start();
    // SUBSCRIBE whose Property Length is 80 00.
    let bytes = [0x82, 0x08, 0x00, 0x01, 0x80, 0x00, 0x00, 0x01, 0x74, 0x01];
    assert_disconnects(b.addr, &bytes, 0x81);
    // Every length the server writes is minimal (the parser checks it):
    // a property block over 127 bytes forces a two-byte length.
    let mut s = sub_v5(b.addr, "t", 0);
    let mut p = Raw::v5(b.addr, "long-props");
    p.pub5("t", b"x", 0, 0, &Props::new().pair("k", &"v".repeat(200)));
    assert_eq!(s.drain5()[0].props.user()[0].len(), 202);
}

// Properties a packet may not carry (Malformed), given twice or out of
// range (Protocol Error), or running past the packet (Malformed); no id.
// [MQTT-4.13.1-1]
#[test]
fn bad_property_blocks_are_refused() {
    let b = TestBroker::start();
    let cases: [(Props, u8); 5] = [
        (Props::new().four(0x11, 1), 0x81),
        (Props::new().two(0x23, 1).two(0x23, 1), 0x82),
        (Props::new().byte(0x01, 1).byte(0x01, 1), 0x82),
        (Props::new().byte(0x01, 2), 0x82),
        (Props::new().raw(&[0x7F, 0x00]), 0x81),
    ];
    for (props, code) in cases {
        assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &props), code);
    }
    // Property Length past the end of the packet.
    assert_disconnects(b.addr, &[0x30, 0x05, 0x00, 0x01, 0x74, 0x09, 0x01], 0x81);
}

// [MQTT-3.12.4-1]
#[test]
fn pingreq_is_answered_and_has_no_body() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "ping");
    for _ in 0..3 {
        c.send(&[0xC0, 0x00]);
        c.expect(&[0xD0, 0x00]);
    }
    c.violate(&[0xC0, 0x01, 0x00], 0x81);
}

// [MQTT-3.14.1-1] [MQTT-3.14.2-1] [MQTT-3.1.2-8]
#[test]
fn invalid_disconnect_from_the_client_is_an_error_and_keeps_the_will() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0);
    let cases: [(&[u8], u8); 3] = [
        // Reserved flags set.
        (&[0xE1, 0x00], 0x81),
        // A code only the server sends (Session taken over).
        (&[0xE0, 0x01, 0x8E], 0x82),
        // A code not defined at all.
        (&[0xE0, 0x01, 0x05], 0x82),
    ];
    for (bytes, code) in cases {
        let connect = Connect5::new("bad-bye").will(Will5::new("w", b"x"));
        let (mut c, _) = Raw::mqtt5(b.addr, &connect);
        c.violate(bytes, code);
        assert_eq!(obs.read_publish5().payload, b"x", "the Will goes");
    }
}

// [MQTT-3.14.2-2] [MQTT-3.14.2-3] [MQTT-3.14.2-4] [MQTT-3.14.4-1] [MQTT-3.14.4-2]
#[test]
fn server_disconnect_fits_the_clients_maximum_packet_size() {
    let b = TestBroker::start();
    let small = Connect5::new("small-x").props(Props::new().four(0x27, 8));
    let (mut a, _) = Raw::mqtt5(b.addr, &small);
    a.sub5("t", 0);
    let _b2 = Raw::v5(b.addr, "small-x");
    let (first, body) = a.read_packet().expect("DISCONNECT");
    assert_eq!(first, 0xE0);
    assert!(wire_size(&body) <= 8, "DISCONNECT {body:02x?} over 8 bytes");
    assert_eq!(parse_reason(&body).0, 0x8E);
    // Nothing after it: the connection closes.
    a.expect_closed();
    // Without a limit the server says why, in a Reason String only.
    let (mut a, _) = Raw::mqtt5(b.addr, &Connect5::new("big-x"));
    let _b3 = Raw::v5(b.addr, "big-x");
    let props = a.expect_disconnect(0x8E);
    assert!(props.bytes(0x1F).is_some_and(|r| !r.is_empty()));
}

// [MQTT-3.15.1-1] [MQTT-4.12.0-7] [MQTT-3.15.2-1]
#[test]
fn auth_without_an_authentication_method_is_refused() {
    let b = TestBroker::start();
    assert_disconnects(b.addr, &[0xF1, 0x00], 0x81);
    assert_disconnects(b.addr, &[0xF0, 0x00], 0x82);
    let reauth = [0xF0, 0x06, 0x19, 0x04, 0x15, 0x00, 0x01, 0x58];
    assert_disconnects(b.addr, &reauth, 0x82);
    // AUTH with a code AUTH never carries.
    assert_disconnects(b.addr, &[0xF0, 0x01, 0x80], 0x82);
}

// [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3] [MQTT-3.7.2-2] [MQTT-3.7.2-3]
#[test]
fn acks_to_a_publisher_stay_within_its_maximum_packet_size() {
    let acl = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("v5-acks.acl");
    std::fs::write(&acl, "topic readwrite ok/#\n").unwrap();
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let small = Connect5::new("acks16").props(Props::new().four(0x27, 16));
    let (mut c, _) = Raw::mqtt5(b.addr, &small);
    let sends: [(u8, Vec<u8>); 3] = [
        (0x40, publish5("secret", b"x", 1, 1, false, &no_props())),
        (0x50, publish5("secret", b"x", 2, 2, false, &no_props())),
        (0x70, vec![0x62, 0x02, 0x00, 0x03]),
    ];
    for (want, bytes) in sends {
        c.send(&bytes);
        let (first, body) = c.read_packet().expect("ack");
        assert_eq!(first, want);
        assert!(
            wire_size(&body) <= 16,
            "{first:#04x} {body:02x?} over 16 bytes"
        );
        assert!(parse_reason(&body[2..]).1 .0.is_empty(), "no properties");
    }
}

// [MQTT-3.6.2-2] [MQTT-3.6.2-3]
#[test]
fn pubrels_reach_a_subscriber_with_a_small_maximum_packet_size() {
    let b = TestBroker::start();
    let small = Connect5::new("rel16").props(Props::new().four(0x27, 16));
    let (mut s, _) = Raw::mqtt5(b.addr, &small);
    s.sub5("t", 2);
    let mut p = Raw::v5(b.addr, "rel16-pub");
    p.pub5("t", b"x", 2, 1, &no_props());
    let m = s.read_publish5();
    let [hi, lo] = m.pkid.to_be_bytes();
    s.send(&[0x50, 0x02, hi, lo]);
    let (first, body) = s.read_packet().expect("PUBREL");
    assert_eq!((first, wire_size(&body) <= 16), (0x62, true));
    assert_eq!(parse_reason(&body[2..]).0, 0);
    s.send(&[0x70, 0x02, hi, lo]);
    s.ping();
}

// [MQTT-4.2-1]
#[test]
fn packets_split_and_joined_across_writes_are_read_as_a_byte_stream() {
    let b = TestBroker::start();
    let mut s = sub_v5(b.addr, "t", 1);
    let mut c = Raw::connect(b.addr);
    let mut bytes = Connect5::new("stream").bytes();
    for i in 1..=3u16 {
        bytes.extend(publish5(
            "t",
            &i.to_be_bytes(),
            1,
            i,
            false,
            &Props::new().pair("n", "v"),
        ));
    }
    // One byte at a time.
    for byte in bytes {
        c.send(&[byte]);
    }
    assert_eq!(c.read_connack5().code, 0);
    for i in 1..=3u16 {
        assert_eq!(c.read_ack(0x40, i), 0);
    }
    let got: Vec<Vec<u8>> = s.drain5().into_iter().map(|m| m.payload).collect();
    assert_eq!(got, vec![vec![0, 1], vec![0, 2], vec![0, 3]]);
    kill(c);
}

// A server shutting down tells MQTT 5 clients so (0x8B), then closes.
// [MQTT-3.14.4-1] [MQTT-3.14.4-2]
#[test]
fn shutdown_sends_disconnect_0x8b() {
    let mut b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "bye");
    c.ping();
    let reader = std::thread::spawn(move || c.expect_disconnect(0x8B));
    b.stop();
    reader.join().expect("DISCONNECT 0x8B, then the close");
}

// A client that stops reading (its receive window full, the server's
// writes blocked) is still closed when its Keep Alive runs out.
// [MQTT-4.13.2-1] [MQTT-3.1.2-22]
#[test]
fn keep_alive_closes_a_client_whose_writes_are_blocked() {
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt5(b.addr, &Connect5::new("stuck").keep_alive(1));
    c.sub5("t", 0);
    let mut p = Raw::v5(b.addr, "stuck-pub");
    let payload = [b'x'; 8192];
    for _ in 0..400 {
        p.send(&publish5("t", &payload, 0, 0, false, &no_props()));
    }
    p.ping();
    // Read nothing for longer than 1.5 x Keep Alive, then everything
    // left: it must end in EOF.
    std::thread::sleep(Duration::from_millis(1800));
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match common::read_some(&mut c.stream, &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close within {WAIT:?}: {e}"),
        }
        assert!(start.elapsed() < WAIT, "no close within {WAIT:?}");
    }
    p.ping();
}
