//! Raw-byte conformance tests for PUBLISH and its acknowledgements in MQTT
//! 3.1.1 plus Errata 01: flags, retained messages, the QoS 1 and QoS 2
//! flows, resending with DUP and message ordering.
//!
//! CONNECT/CONNACK, sessions, Will, keep-alive, takeover and redelivery on
//! reconnect have their own test files; the few reconnects here only check
//! statements of the PUBLISH sections.
//!
//! Every test talks TCP to a broker on an ephemeral loopback port. A
//! "nothing was delivered" check uses a barrier: the publisher's PINGRESP
//! proves the broker processed everything it sent, then the subscriber's
//! own PINGRESP arrives after anything queued for it before.

mod common;
use common::conformance::*;
use common::*;

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

// A client subscribed to the topic it publishes on gets the acknowledgement
// of its publish (PUBACK, PUBREC) before its own copy of the message, as
// from mosquitto. [MQTT-4.3.2-2] [MQTT-4.3.3-2]
#[test]
fn the_publishers_ack_comes_before_its_own_copy() {
    let b = TestBroker::start();
    let mut c = subscriber(b.addr, &[("self/t", 2)]);
    c.send(&publish_packet("self/t", b"q1", 1, 7, false, false));
    let (first, _) = c.read_packet().expect("a packet");
    assert_eq!(first, 0x40, "PUBACK first");
    let (first, _) = c.read_packet().expect("a packet");
    assert_eq!(first >> 4, 3, "then the copy");
    c.send(&publish_packet("self/t", b"q2", 2, 8, false, false));
    let (first, body) = c.read_packet().expect("a packet");
    assert_eq!((first, &body[..]), (0x50, &[0, 8][..]), "PUBREC first");
    let (first, _) = c.read_packet().expect("a packet");
    assert_eq!(first >> 4, 3, "then the copy");
}
