//! Bugs the `engine` fuzz target (`fuzz/engine_driver.rs`) found, each as
//! the shortest story that shows it.

use super::*;

/// A v5 CONNECT resuming session `id` with this Maximum Packet Size and
/// Receive Maximum.
fn connect_v5_limited(id: &str, max_packet: u32, receive_max: u16) -> Packet {
    let mut props = Properties::NONE;
    let p = props.values_mut();
    p.session_expiry_interval = Some(600);
    p.maximum_packet_size = Some(max_packet);
    p.receive_maximum = Some(receive_max);
    connect(V5, id, false, 0, props)
}

/// [MQTT-3.1.2-24], [MQTT-3.1.2-25]: messages in flight to a session are
/// sent again when it reconnects (now or as acknowledgements make room),
/// but never larger than the new connection's Maximum Packet Size: such a
/// message is dropped as if sent, and leaves the in-flight window, so
/// later messages still go.
#[test]
fn a_resend_larger_than_the_new_maximum_packet_size_is_dropped() {
    let mut h = Harness::new(config());
    let (sub, _) = h.connect(V4, "sub", false);
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let (publisher, _) = h.connect(V4, "pub", true);
    for pkid in 1..=2 {
        h.send(publisher, &publish("t", QoS::AtLeastOnce, pkid, &[7; 100]));
    }
    assert_eq!(h.publishes(sub).len(), 2, "both in flight, unacknowledged");
    h.send(sub, &disconnect());
    // Back as MQTT 5, taking at most 50 bytes a packet, one in flight: the
    // first resend goes at once, the second once a slot is free.
    let (again, ack) = h.connect_with(V5, &connect_v5_limited("sub", 50, 1));
    assert!(ack.session_present);
    assert!(h.publishes(again).is_empty(), "nothing over 50 bytes");
    assert_eq!(h.engine.stats().dropped_too_large, 2);
    assert_eq!(h.engine.stats().queued_messages, 0, "out of the window");
    h.send(publisher, &publish("t", QoS::AtLeastOnce, 3, b"small"));
    let got = h.publishes(again);
    assert_eq!(got.len(), 1, "the window has room");
    assert_eq!(&got[0].payload[..], b"small");
}

/// `memory_limit` counts a connection's Will with the frame it reads: a
/// frame that cannot fit beside the connection's own Will, even with
/// nothing else held, would wait for room forever (the Will goes only
/// with the connection), so it is refused like a frame larger than the
/// whole budget [MQTT-4.8.0-2]: DISCONNECT 0x95, connection closed.
#[test]
fn a_frame_that_cannot_fit_beside_its_own_will_is_refused() {
    let mut cfg = config();
    cfg.memory_limit = 40_000;
    let mut h = Harness::new(cfg);
    let none = Properties::NONE;
    let mut packet = connect_with_will(V5, "w", true, none.clone(), "will/w", none);
    if let Packet::Connect(c) = &mut packet {
        if let Some(will) = c.will.as_mut() {
            will.payload = bytes::Bytes::from(vec![1; 22_000]);
        }
    }
    let (c, _) = h.connect_with(V5, &packet);
    let mut wire = Wire::default();
    let big = publish("t", QoS::AtMostOnce, 0, &[2; 20_000]);
    protocol::encode(&big, V5, &mut wire.bytes).expect("encodable");
    h.deliver(c, &mut wire);
    h.advance(Duration::from_secs(1));
    assert!(h.is_closed(c), "not left waiting for room that never comes");
    match h.received(c).as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, ReasonCode::PacketTooLarge),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(h.engine.stats().memory_used, 0);
}

/// [MQTT-3.1.2-24]: no packet larger than the client's Maximum Packet
/// Size, not even CONNACK. midge's limits and features are left out of a
/// CONNACK they would push past it (the client then assumes none); if
/// what cannot be left out (here the Assigned Client Identifier) does not
/// fit either, the CONNECT is refused with a bare CONNACK 0x95.
#[test]
fn a_connack_stays_within_the_clients_maximum_packet_size() {
    let mut h = Harness::new(config());
    let limited = |max| {
        let mut props = Properties::NONE;
        props.values_mut().maximum_packet_size = Some(max);
        props
    };
    let written = |h: &Harness, c: Client| {
        let out = h.out.bytes.get(&c.key).map_or(0, BytesMut::len);
        out + h.ended.get(&c.key).map_or(0, BytesMut::len)
    };
    let c = h.open(V5);
    h.send(c, &connect(V5, "c", true, 0, limited(10)));
    assert!(written(&h, c) <= 10, "{} bytes", written(&h, c));
    let ack = h.connack(c);
    assert_eq!(ack.code, ReasonCode::Success);
    assert_eq!(ack.properties, Properties::NONE, "without the limits");
    let c = h.open(V5);
    h.send(c, &connect(V5, "", true, 0, limited(12)));
    assert!(h.is_closed(c));
    assert!(written(&h, c) <= 12, "{} bytes", written(&h, c));
    assert_eq!(h.connack(c).code, ReasonCode::PacketTooLarge);
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol error, even one whose
/// protocol name is unknown: the DISCONNECT says 0x82, not 0x84
/// (Unsupported Protocol Version belongs in CONNACK; a client rejects it
/// in DISCONNECT as malformed).
#[test]
fn a_second_connect_with_an_unknown_protocol_name_is_a_protocol_error() {
    let mut h = Harness::new(config());
    let (c, _) = h.connect(V5, "twice", true);
    let mut wire = Wire::default();
    let unknown_name = [0x10, 10, 0, 4, b'M', b'Q', b'X', b'X', 5, 0, 0, 0];
    wire.bytes.extend_from_slice(&unknown_name);
    h.deliver(c, &mut wire);
    assert!(h.is_closed(c));
    match h.received(c).as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}
