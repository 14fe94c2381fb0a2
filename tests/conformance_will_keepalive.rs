//! Raw-byte conformance tests for the Will, keep alive and takeover in MQTT
//! 3.1.1: when a Will is published (and when not), with which QoS and
//! retain flag, the keep-alive timer, and a second connection with the
//! same client id.
//!
//! Each test names the statement ids it checks in the comment right above
//! the test.

mod common;
use common::sessions::*;
use common::*;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Proves the broker has finished with a killed client `id`: connecting
/// again with that id either finds it gone or takes it over, and either way
/// its Will (if any) is published before this CONNACK.
fn barrier_after_kill(addr: SocketAddr, id: &str) {
    let (mut c, _) = Raw::mqtt(addr, id, true);
    c.send(&[0xE0, 0x00]);
    c.expect_closed();
}

// ------------------------------------------------------------------ Will

/// Connects `id` (CleanSession 1) with a Will and returns the client.
fn with_will(
    addr: SocketAddr,
    id: &str,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
) -> Raw {
    let mut c = open_and_send(
        addr,
        &connect_with_will(id, true, 60, topic, payload, qos, retain),
    );
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c
}

// [MQTT-3.1.2-8] [MQTT-3.1.2-10] [MQTT-3.1.2-16]
#[test]
fn will_is_published_once_on_abrupt_close_not_retained() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w", 0);
    let a = with_will(b.addr, "A", "w", b"gone", 0, false);
    kill(a);
    let m = obs.read_publish();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.qos, m.retain),
        ("w", &b"gone"[..], 0, false)
    );
    // Exactly once: gone from the broker, and no second copy.
    barrier_after_kill(b.addr, "A");
    assert_nothing_delivered(&mut obs);
    // Will Retain 0: a later subscriber gets nothing.
    let mut late = observer(b.addr, "late", "w", 0);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.14.4-3] [MQTT-3.1.2-10]
#[test]
fn will_is_discarded_on_disconnect() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w", 0);
    let mut a = with_will(b.addr, "A", "w", b"gone", 0, false);
    a.send(&[0xE0, 0x00]);
    a.expect_closed(); // the server closes after DISCONNECT
    kill(a);
    barrier_after_kill(b.addr, "A");
    assert_nothing_delivered(&mut obs);
    // Also when the client closes its socket right after DISCONNECT,
    // with a retained Will.
    let mut a = with_will(b.addr, "A2", "w", b"gone2", 1, true);
    a.send(&[0xE0, 0x00]);
    kill(a);
    barrier_after_kill(b.addr, "A2");
    assert_nothing_delivered(&mut obs);
    let mut late = observer(b.addr, "late", "w", 1);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.1.2-12]
#[test]
fn no_will_flag_means_no_will() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "#", 0);
    let (a, _) = Raw::mqtt(b.addr, "A", true);
    kill(a);
    barrier_after_kill(b.addr, "A");
    // A protocol error without a Will publishes nothing either.
    let (mut a, _) = Raw::mqtt(b.addr, "A2", false);
    a.send(&[0xE1, 0x00]);
    a.expect_closed();
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.2-17]
#[test]
fn will_retain_1_publishes_a_retained_will() {
    let b = TestBroker::start();
    let mut c = with_will(b.addr, "pub", "w/r", b"old", 0, false);
    publish(&mut c, "w/r", b"old", 1, 1, true);
    let mut obs = observer(b.addr, "obs", "w/r", 1);
    assert_eq!(obs.read_publish().payload, b"old");
    let a = with_will(b.addr, "A", "w/r", b"gone", 1, true);
    kill(a);
    // The existing subscription gets it as a normal forward (RETAIN 0).
    let m = obs.read_publish();
    assert_eq!((&m.payload[..], m.retain), (&b"gone"[..], false));
    // A later subscriber gets it as the retained message, replacing "old".
    let mut late = observer(b.addr, "late", "w/r", 1);
    let m = late.read_publish();
    assert_eq!((&m.payload[..], m.retain, m.qos), (&b"gone"[..], true, 1));
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.1.2-17]
#[test]
fn retained_will_with_empty_payload_deletes_the_retained_message() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut c, "w/e", b"old", 0, 0, true);
    let mut obs = observer(b.addr, "obs", "w/e", 0);
    assert_eq!(obs.read_publish().payload, b"old");
    let a = with_will(b.addr, "A", "w/e", b"", 0, true);
    kill(a);
    let m = obs.read_publish();
    assert_eq!((&m.payload[..], m.retain), (&b""[..], false));
    let mut late = observer(b.addr, "late", "w/e", 0);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.1.2-8]
#[test]
fn will_qos_is_honoured() {
    let b = TestBroker::start();
    let mut obs1 = observer(b.addr, "obs1", "w/q", 1);
    let mut obs2 = observer(b.addr, "obs2", "w/q", 2);
    let mut obs0 = observer(b.addr, "obs0", "w/q", 0);
    let a = with_will(b.addr, "A", "w/q", b"q1", 1, false);
    kill(a);
    let m = obs1.read_publish();
    assert_eq!((&m.payload[..], m.qos, m.dup), (&b"q1"[..], 1, false));
    assert_ne!(m.pkid, 0);
    obs1.send(&puback(m.pkid));
    let m = obs2.read_publish();
    assert_eq!((&m.payload[..], m.qos), (&b"q1"[..], 1));
    let m = obs0.read_publish();
    assert_eq!((&m.payload[..], m.qos), (&b"q1"[..], 0));
    // Will QoS 2 to a QoS 2 subscription: the full QoS 2 flow.
    let a = with_will(b.addr, "A2", "w/q", b"q2", 2, false);
    kill(a);
    let m = obs2.read_publish();
    assert_eq!((&m.payload[..], m.qos), (&b"q2"[..], 2));
    obs2.send(&pubrec(m.pkid));
    obs2.expect(&pubrel(m.pkid));
    obs2.send(&pubcomp(m.pkid));
    assert_nothing_delivered(&mut obs2);
}

// The server closing a connection for a protocol error publishes its Will.
// [MQTT-3.1.2-8]
#[test]
fn will_is_published_after_a_protocol_error() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w/+", 0);
    let errors: [(&str, Vec<u8>); 4] = [
        ("qos3", vec![0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01]),
        ("baddisconnect", vec![0xE1, 0x00]),
        ("reconnect", connect_packet("x", true, 60)),
        (
            "badsubscribe",
            vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00],
        ),
    ];
    for (name, bytes) in errors {
        let mut a = with_will(
            b.addr,
            name,
            &format!("w/{name}"),
            name.as_bytes(),
            0,
            false,
        );
        a.send(&bytes);
        a.expect_closed();
        let m = obs.read_publish();
        assert_eq!(m.topic, format!("w/{name}"));
        assert_eq!(m.payload, name.as_bytes());
    }
}

// ------------------------------------------------------------ Keep Alive

// [MQTT-3.1.2-24] [MQTT-3.1.2-8]
#[test]
fn keep_alive_1_closes_a_silent_client_and_publishes_its_will() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "ka/will", 0);
    let start = Instant::now();
    let mut a = open_and_send(
        b.addr,
        &connect_with_will("ka", true, 1, "ka/will", b"timed out", 0, false),
    );
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    // Still open at 1.0 s ...
    let open_for = Duration::from_millis(1000).saturating_sub(start.elapsed());
    a.expect_silence(open_for);
    assert!(start.elapsed() >= Duration::from_millis(1000));
    // ... closed by 2.5 s (deadline 1.5 s).
    a.expect_closed();
    let closed_at = start.elapsed();
    assert!(
        closed_at <= Duration::from_millis(2500),
        "closed after {closed_at:?}"
    );
    let m = obs.read_publish();
    assert_eq!(m.payload, b"timed out");
}

// [MQTT-3.1.2-24]
#[test]
fn keep_alive_2_with_a_pingreq_every_second_stays_open() {
    let b = TestBroker::start();
    let mut a = open_and_send(b.addr, &connect_packet("pinger", true, 2));
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(1));
        a.ping();
    }
}

// Any packet resets the keep-alive timer, not only PINGREQ.
// [MQTT-3.1.2-24]
#[test]
fn keep_alive_1_with_a_publish_every_half_second_stays_open() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "ka/t", 0);
    let mut a = open_and_send(b.addr, &connect_packet("talker", true, 1));
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    for i in 0..5u8 {
        std::thread::sleep(Duration::from_millis(500));
        a.send(&publish_packet("ka/t", &[i], 0, 0, false, false));
        assert_eq!(obs.read_publish().payload, [i]);
    }
    a.ping();
}

// -------------------------------------------------------------- Takeover

// [MQTT-3.1.4-2] [MQTT-3.2.2-2] [MQTT-3.1.2-8]
#[test]
fn takeover_closes_the_old_connection_and_publishes_its_will() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w", 0);
    let mut a = open_and_send(
        b.addr,
        &connect_with_will("x", false, 60, "w", b"A gone", 0, false),
    );
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    a.subscribe(1, &[("t", 1)]);
    let mut bb = open_and_send(b.addr, &connect_packet("x", false, 60));
    bb.expect(&[0x20, 0x02, 0x01, 0x00]);
    a.expect_closed();
    let m = obs.read_publish();
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("w", &b"A gone"[..]));
    // The session moved to B.
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"to B", 1, 1, false);
    let m = bb.read_publish();
    assert_eq!(m.payload, b"to B");
    bb.send(&puback(m.pkid));
    // Refused CONNECTs with the same id never kick B: bad protocol level
    // (0x01), reserved connect flag, wildcard in the Will Topic.
    assert_refused_with(
        b.addr,
        &connect_raw(b"MQTT", 3, 0x00, 60, &field(b"x")),
        0x01,
    );
    assert_rejected_without_connack(b.addr, &connect_fields(0x01, &[b"x"]));
    assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"x", b"w/#", b"m"]));
    bb.ping();
    publish(&mut publ, "t", b"still B", 1, 2, false);
    assert_eq!(bb.read_publish().payload, b"still B");
    // No second Will (B has none, A's was published once).
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.4-2]
#[test]
fn connect_refused_by_authentication_never_kicks_the_connected_client() {
    let b = AuthBroker::start();
    let mut bb = assert_accepted(b.addr, &connect_fields(0xC2, &[b"x", b"user", b"good"]));
    assert_refused_with(
        b.addr,
        &connect_fields(0xC2, &[b"x", b"user", b"bad"]),
        0x04,
    );
    bb.ping();
    // Control: an accepted CONNECT with the same id does kick it.
    let _c = assert_accepted(b.addr, &connect_fields(0xC2, &[b"x", b"user", b"good"]));
    bb.expect_closed();
}

// [MQTT-3.1.4-2] [MQTT-3.1.2-6] [MQTT-3.2.2-1]
#[test]
fn takeover_with_clean_session_1_discards_the_old_session() {
    let b = TestBroker::start();
    let (mut a, _) = Raw::mqtt(b.addr, "x", false);
    a.subscribe(1, &[("t", 1)]);
    let mut bb = open_and_send(b.addr, &connect_packet("x", true, 60));
    bb.expect(&[0x20, 0x02, 0x00, 0x00]);
    a.expect_closed();
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"gone", 1, 1, false);
    assert_nothing_delivered(&mut bb);
}
