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
