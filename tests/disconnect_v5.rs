//! The server's DISCONNECT to an MQTT 5 client: its reason code, and its
//! Reason String only when the packet stays within the client's Maximum
//! Packet Size.

mod common;
use common::*;

/// An MQTT 5 CONNECT (Clean Start, keep-alive 60) with these properties.
fn connect5(id: &str, properties: &[u8]) -> Vec<u8> {
    let mut body = sessions::field(b"MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 60, properties.len() as u8]);
    body.extend_from_slice(properties);
    body.extend_from_slice(&sessions::field(id.as_bytes()));
    packet(0x10, &body)
}

/// Connects, breaks the protocol with a second CONNECT, and returns the
/// DISCONNECT's body.
fn disconnect_after_second_connect(properties: &[u8]) -> Vec<u8> {
    let b = TestBroker::start();
    let mut c = Raw::connect(b.addr);
    c.send(&connect5("d", properties));
    let (first, _) = c.read_reply("CONNACK").expect("CONNACK");
    assert_eq!(first, 0x20);
    c.send(&connect5("d", properties));
    let (first, body) = c.read_packet().expect("DISCONNECT");
    assert_eq!(first, 0xE0);
    c.expect_closed();
    body
}

// A protocol error gets DISCONNECT 0x82 with the log's text as Reason
// String; a client whose Maximum Packet Size is 16 bytes gets it without
// the Reason String. [MQTT-3.1.2-24] [MQTT-4.13.1-1]
#[test]
fn disconnect_carries_its_reason_within_the_maximum_packet_size() {
    let body = disconnect_after_second_connect(&[]);
    assert_eq!(body[0], 0x82, "protocol error");
    assert!(
        body.windows(14).any(|w| w == b"second CONNECT"),
        "{body:02x?}"
    );
    let small = disconnect_after_second_connect(&[0x27, 0, 0, 0, 16]);
    assert_eq!(
        small,
        vec![0x82],
        "the code alone (short form), within 16 bytes"
    );
}
