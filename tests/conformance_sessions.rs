//! Raw-byte conformance tests for the session side of MQTT 3.1.1: CONNACK
//! and Session Present, session state, redelivery on reconnect and
//! retained messages across sessions.
//!
//! CONNECT itself, the Will, keep alive and takeover have their own test
//! files (conformance_connect.rs, conformance_will_keepalive.rs).
//!
//! Each test names the statement ids it checks in the comment right above
//! its `#[test]`.

mod common;
use common::sessions::*;
use common::*;

use std::time::Duration;

// ------------------------------------------------- CONNACK and sessions

// [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] [MQTT-3.1.2-6] [MQTT-3.1.4-3]
#[test]
fn session_present_reflects_the_stored_session() {
    let b = TestBroker::start();
    let connack = |id: &str, clean: bool| {
        let mut c = open_and_send(b.addr, &connect_packet(id, clean, 60));
        let ack = read_connack(&mut c);
        c.send(&[0xE0, 0x00]);
        c.expect_closed();
        ack
    };
    // New id, CleanSession 0: no stored session.
    assert_eq!(connack("p", false), (false, 0));
    // Stored session that holds nothing still counts.
    assert_eq!(connack("p", false), (true, 0));
    assert_eq!(connack("p", false), (true, 0));
    // CleanSession 1 with a stored session: Session Present 0 ...
    assert_eq!(connack("p", true), (false, 0));
    // ... and the stored session is gone, CleanSession 1 left nothing.
    assert_eq!(connack("p", false), (false, 0));
    // A CleanSession 1 session is never stored.
    assert_eq!(connack("q", true), (false, 0));
    assert_eq!(connack("q", false), (false, 0));
}

// [MQTT-3.1.2-4] [MQTT-3.1.4-3]
#[test]
fn clean_session_0_resumes_subscriptions() {
    let b = TestBroker::start();
    let (mut p, present) = Raw::mqtt(b.addr, "p", false);
    assert!(!present);
    p.subscribe(1, &[("t", 1)]);
    p.send(&[0xE0, 0x00]);
    p.expect_closed();
    // Reconnect without subscribing.
    let mut p = open_and_send(b.addr, &connect_packet("p", false, 60));
    p.expect(&[0x20, 0x02, 0x01, 0x00]);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"again", 1, 1, false);
    let m = p.read_publish();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.qos),
        ("t", &b"again"[..], 1)
    );
    // The session also survives an abrupt close; the unacknowledged
    // message is resent.
    kill(p);
    let mut p = open_and_send(b.addr, &connect_packet("p", false, 60));
    p.expect(&[0x20, 0x02, 0x01, 0x00]);
    let again = p.read_publish();
    assert_eq!(
        (again.pkid, &again.payload[..], again.dup),
        (m.pkid, &b"again"[..], true)
    );
}

// [MQTT-3.1.2-5] [MQTT-4.5.0-1]
#[test]
fn offline_session_stores_qos1_and_qos2_messages() {
    let b = TestBroker::start();
    let (mut p, _) = Raw::mqtt(b.addr, "p", false);
    p.subscribe(1, &[("t", 2)]);
    p.send(&[0xE0, 0x00]);
    p.expect_closed();
    let mut online = observer(b.addr, "online", "t", 2);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"q1", 1, 1, false);
    publish(&mut publ, "t", b"q2", 2, 2, false);
    // The online subscriber gets them now.
    assert_eq!(online.read_publish().payload, b"q1");
    assert_eq!(online.read_publish().payload, b"q2");
    // The offline one after reconnecting, at the published QoS, DUP 0.
    let mut p = open_and_send(b.addr, &connect_packet("p", false, 60));
    p.expect(&[0x20, 0x02, 0x01, 0x00]);
    let m1 = p.read_publish();
    assert_eq!((&m1.payload[..], m1.qos, m1.dup), (&b"q1"[..], 1, false));
    let m2 = p.read_publish();
    assert_eq!((&m2.payload[..], m2.qos, m2.dup), (&b"q2"[..], 2, false));
    assert_ne!(m1.pkid, 0);
    assert_ne!(m2.pkid, 0);
    assert_ne!(m1.pkid, m2.pkid);
}

// QoS 0 is not queued for offline sessions (queue_qos0 false, the default);
// with queue_qos0 it is.
// [MQTT-3.1.2-5]
#[test]
fn offline_qos0_follows_the_queue_qos0_option() {
    for queue_qos0 in [false, true] {
        let b = TestBroker::start_with(|c| c.queue_qos0 = queue_qos0);
        let (mut p, _) = Raw::mqtt(b.addr, "p", false);
        p.subscribe(1, &[("t", 1)]);
        p.send(&[0xE0, 0x00]);
        p.expect_closed();
        let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
        publish(&mut publ, "t", b"zero", 0, 0, false);
        publish(&mut publ, "t", b"one", 1, 1, false);
        let mut p = open_and_send(b.addr, &connect_packet("p", false, 60));
        p.expect(&[0x20, 0x02, 0x01, 0x00]);
        if queue_qos0 {
            let m = p.read_publish();
            assert_eq!((&m.payload[..], m.qos), (&b"zero"[..], 0));
        }
        let m = p.read_publish();
        assert_eq!((&m.payload[..], m.qos), (&b"one"[..], 1));
        p.send(&puback(m.pkid));
        assert_nothing_delivered(&mut p);
    }
}

// [MQTT-3.1.2-6] [MQTT-3.2.2-1]
#[test]
fn clean_session_1_discards_the_old_session() {
    let b = TestBroker::start();
    let (mut p, _) = Raw::mqtt(b.addr, "p", false);
    p.subscribe(1, &[("t", 1)]);
    p.send(&[0xE0, 0x00]);
    p.expect_closed();
    // A message queued for the offline session.
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"queued", 1, 1, false);
    // CleanSession 1: fresh session, nothing queued, no subscription.
    let mut p = open_and_send(b.addr, &connect_packet("p", true, 60));
    p.expect(&[0x20, 0x02, 0x00, 0x00]);
    publish(&mut publ, "t", b"live", 1, 2, false);
    assert_nothing_delivered(&mut p);
    // Its own subscriptions die with the connection.
    p.subscribe(2, &[("u", 1)]);
    p.send(&[0xE0, 0x00]);
    p.expect_closed();
    publish(&mut publ, "u", b"after", 1, 3, false);
    publish(&mut publ, "t", b"after", 1, 4, false);
    let mut p = open_and_send(b.addr, &connect_packet("p", false, 60));
    p.expect(&[0x20, 0x02, 0x00, 0x00]);
    assert_nothing_delivered(&mut p);
    publish(&mut publ, "t", b"later", 1, 5, false);
    publish(&mut publ, "u", b"later", 1, 6, false);
    assert_nothing_delivered(&mut p);
}

// [MQTT-3.1.2-7]
#[test]
fn retained_messages_outlive_sessions() {
    let b = TestBroker::start();
    // CleanSession 1 publisher.
    let (mut c, _) = Raw::mqtt(b.addr, "pub1", true);
    publish(&mut c, "r/1", b"one", 1, 1, true);
    c.send(&[0xE0, 0x00]);
    c.expect_closed();
    // CleanSession 0 publisher whose session is then discarded.
    let (mut c, _) = Raw::mqtt(b.addr, "pub2", false);
    publish(&mut c, "r/2", b"two", 0, 0, true);
    kill(c);
    let (mut c, present) = Raw::mqtt(b.addr, "pub2", true);
    assert!(!present);
    c.send(&[0xE0, 0x00]);
    c.expect_closed();
    let (mut s, _) = Raw::mqtt(b.addr, "sub", true);
    s.subscribe(1, &[("r/1", 1)]);
    let m = s.read_publish();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.retain),
        ("r/1", &b"one"[..], true)
    );
    s.subscribe(2, &[("r/2", 1)]);
    let m = s.read_publish();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.retain),
        ("r/2", &b"two"[..], true)
    );
}

// A resumed session's subscriptions are not new: no retained copies.
// [MQTT-3.1.2-4]
#[test]
fn resumed_session_gets_no_retained_copies() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut c, "r", b"kept", 1, 1, true);
    let (mut s, _) = Raw::mqtt(b.addr, "s", false);
    s.subscribe(1, &[("r", 1)]);
    let m = s.read_publish();
    assert!(m.retain);
    s.send(&puback(m.pkid));
    s.send(&[0xE0, 0x00]);
    s.expect_closed();
    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    assert_nothing_delivered(&mut s);
    // The subscription is there: a live publish arrives with RETAIN 0.
    publish(&mut c, "r", b"new", 1, 2, true);
    let m = s.read_publish();
    assert_eq!((&m.payload[..], m.retain), (&b"new"[..], false));
}

// [MQTT-3.1.3-2]
#[test]
fn sessions_are_keyed_by_client_id() {
    let b = TestBroker::start();
    for (id, filter) in [("p1", "k/1"), ("p2", "k/2")] {
        let (mut c, _) = Raw::mqtt(b.addr, id, false);
        c.subscribe(1, &[(filter, 1)]);
        c.send(&[0xE0, 0x00]);
        c.expect_closed();
    }
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "k/1", b"for p1", 1, 1, false);
    publish(&mut publ, "k/2", b"for p2", 1, 2, false);
    for (id, topic, payload) in [("p1", "k/1", b"for p1"), ("p2", "k/2", b"for p2")] {
        let mut c = open_and_send(b.addr, &connect_packet(id, false, 60));
        c.expect(&[0x20, 0x02, 0x01, 0x00]);
        let m = c.read_publish();
        assert_eq!((m.topic.as_str(), &m.payload[..]), (topic, &payload[..]));
        c.send(&puback(m.pkid));
        assert_nothing_delivered(&mut c);
    }
}

// [MQTT-4.1.0-1] [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.6.0-1] [MQTT-2.3.1-4]
#[test]
fn unacknowledged_and_queued_messages_survive_a_reconnect() {
    let b = TestBroker::start_with(|c| c.max_inflight = 3);
    let (mut s, _) = Raw::mqtt(b.addr, "s", false);
    s.subscribe(1, &[("t", 1)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    for i in 1..=5u16 {
        publish(&mut publ, "t", format!("m{i}").as_bytes(), 1, i, false);
    }
    // Three in flight (window 3), distinct non-zero ids, DUP 0; never acked.
    let first: Vec<Pub> = (0..3).map(|_| s.read_publish()).collect();
    for (i, m) in first.iter().enumerate() {
        assert_eq!(m.payload, format!("m{}", i + 1).as_bytes());
        assert_eq!((m.qos, m.dup), (1, false));
        assert_ne!(m.pkid, 0);
    }
    assert_ne!(first[0].pkid, first[1].pkid);
    assert_ne!(first[1].pkid, first[2].pkid);
    assert_ne!(first[0].pkid, first[2].pkid);
    assert_nothing_delivered(&mut s);
    kill(s);
    // Reconnect: the three again, same ids, DUP 1, original order; then the
    // two queued ones, DUP 0.
    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    for m in &first {
        let again = s.read_publish();
        assert_eq!(again.pkid, m.pkid);
        assert_eq!(again.payload, m.payload);
        assert!(again.dup, "resent PUBLISH has DUP 1");
        assert_eq!(again.qos, 1);
        s.send(&puback(again.pkid));
    }
    for i in 4..=5 {
        let m = s.read_publish();
        assert_eq!(m.payload, format!("m{i}").as_bytes());
        assert!(!m.dup, "first transmission has DUP 0");
        assert_ne!(m.pkid, 0);
        s.send(&puback(m.pkid));
    }
    assert_nothing_delivered(&mut s);
    // Everything acknowledged: nothing is resent on the next reconnect.
    kill(s);
    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    assert_nothing_delivered(&mut s);
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.6.0-1] [MQTT-4.3.2-1] [MQTT-4.3.3-1] [MQTT-2.3.1-4]
#[test]
fn reconnect_resends_publishes_and_pubrels_with_original_ids() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt(b.addr, "s", false);
    s.subscribe(1, &[("t", 2)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"a", 1, 1, false);
    publish(&mut publ, "t", b"b", 1, 2, false);
    publish(&mut publ, "t", b"c", 2, 3, false);
    let a = s.read_publish();
    let bb = s.read_publish();
    let c = s.read_publish();
    assert_eq!((&a.payload[..], a.qos, a.dup), (&b"a"[..], 1, false));
    assert_eq!((&bb.payload[..], bb.qos, bb.dup), (&b"b"[..], 1, false));
    assert_eq!((&c.payload[..], c.qos, c.dup), (&b"c"[..], 2, false));
    let ids = [a.pkid, bb.pkid, c.pkid];
    assert!(ids.iter().all(|&i| i != 0), "ids non-zero: {ids:?}");
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    // PUBREC c -> PUBREL c; no PUBCOMP, no PUBACKs.
    s.send(&pubrec(c.pkid));
    s.expect(&pubrel(c.pkid));
    assert_nothing_delivered(&mut s);
    kill(s);

    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    let mut publishes = Vec::new();
    let mut pubrels = Vec::new();
    for _ in 0..3 {
        let (first, body) = s.read_packet().expect("resent packet");
        match first {
            0x62 => pubrels.push(body),
            f if f >> 4 == 3 => publishes.push(parse_publish(f, &body)),
            f => panic!("unexpected packet {f:#04x}"),
        }
    }
    // Never the PUBLISH c again, only its PUBREL.
    assert_eq!(pubrels, vec![c.pkid.to_be_bytes().to_vec()]);
    assert_eq!(publishes.len(), 2);
    for (got, want) in publishes.iter().zip([&a, &bb]) {
        assert_eq!(
            (got.pkid, &got.payload, got.qos),
            (want.pkid, &want.payload, 1)
        );
        assert!(got.dup, "resent PUBLISH has DUP 1");
    }
    assert_nothing_delivered(&mut s);
    // Complete everything; the next reconnect resends nothing.
    s.send(&puback(a.pkid));
    s.send(&puback(bb.pkid));
    s.send(&pubcomp(c.pkid));
    assert_nothing_delivered(&mut s);
    s.send(&[0xE0, 0x00]);
    s.expect_closed();
    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    assert_nothing_delivered(&mut s);
}

// [MQTT-4.6.0-4] [MQTT-4.4.0-1]
#[test]
fn pubrels_are_resent_in_pubrec_order() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt(b.addr, "s", false);
    s.subscribe(1, &[("t", 2)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"k1", 2, 1, false);
    publish(&mut publ, "t", b"k2", 2, 2, false);
    let k1 = s.read_publish().pkid;
    let k2 = s.read_publish().pkid;
    s.send(&pubrec(k2));
    s.expect(&pubrel(k2));
    s.send(&pubrec(k1));
    s.expect(&pubrel(k1));
    kill(s);
    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    s.expect(&pubrel(k2));
    s.expect(&pubrel(k1));
    s.send(&pubcomp(k2));
    s.send(&pubcomp(k1));
    assert_nothing_delivered(&mut s);
}

// [MQTT-3.10.4-3] [MQTT-4.4.0-1]
#[test]
fn unsubscribe_completes_deliveries_already_started() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt(b.addr, "s", false);
    s.subscribe(1, &[("t", 2)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"one", 1, 1, false);
    publish(&mut publ, "t", b"two", 2, 2, false);
    let m1 = s.read_publish();
    let m2 = s.read_publish();
    s.send(&unsubscribe_packet(9, &["t"]));
    s.expect(&[0xB0, 0x02, 0x00, 0x09]);
    // The QoS 2 flow carries on after the UNSUBACK.
    s.send(&pubrec(m2.pkid));
    s.expect(&pubrel(m2.pkid));
    // New messages are not added any more.
    publish(&mut publ, "t", b"three", 1, 3, false);
    assert_nothing_delivered(&mut s);
    kill(s);
    // The unacknowledged ones are still resent on reconnect.
    let mut s = open_and_send(b.addr, &connect_packet("s", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    let again = s.read_publish();
    assert_eq!(
        (again.pkid, &again.payload[..], again.dup),
        (m1.pkid, &b"one"[..], true)
    );
    s.expect(&pubrel(m2.pkid));
    s.send(&puback(m1.pkid));
    s.send(&pubcomp(m2.pkid));
    assert_nothing_delivered(&mut s);
}

// [MQTT-4.1.0-2] [MQTT-3.1.2-24]
#[test]
fn keep_alive_0_idle_connection_stays_open_and_subscribed() {
    let b = TestBroker::start();
    let mut s = open_and_send(b.addr, &connect_packet("idle", true, 0));
    s.expect(&[0x20, 0x02, 0x00, 0x00]);
    s.subscribe(1, &[("t", 0)]);
    s.expect_silence(Duration::from_secs(3));
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"still here", 0, 0, false);
    assert_eq!(s.read_publish().payload, b"still here");
}
