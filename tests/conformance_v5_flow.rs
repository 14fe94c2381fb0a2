//! Raw-byte conformance tests for MQTT 5.0 flow control and sizes: Receive
//! Maximum both ways, Maximum Packet Size both ways, and Topic Aliases
//! both ways.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids.

mod common;
use common::v5::*;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// A subscriber to `t` at QoS `qos` with these CONNECT properties.
fn subscriber(addr: SocketAddr, id: &str, props: Props, qos: u8) -> Raw {
    let (mut c, _) = Raw::mqtt5(addr, &Connect5::new(id).props(props));
    c.sub5("t", qos);
    c
}

/// Publishes `n` messages (payload = their number) to `t` at `qos`.
fn publish_n(addr: SocketAddr, n: u16, qos: u8) {
    let mut p = Raw::v5(addr, &cid5("pub"));
    for i in 1..=n {
        p.pub5("t", &i.to_be_bytes(), qos, i, &no_props());
    }
}

fn ack(kind: u8, pkid: u16) -> [u8; 4] {
    let [hi, lo] = pkid.to_be_bytes();
    [kind, 0x02, hi, lo]
}

// [MQTT-4.9.0-1] [MQTT-4.9.0-2] [MQTT-4.9.0-3] [MQTT-3.3.4-10]
#[test]
fn receive_maximum_1_allows_one_message_in_flight() {
    let b = TestBroker::start();
    let mut s = subscriber(b.addr, "rm1", Props::new().two(0x21, 1), 1);
    publish_n(b.addr, 3, 1);
    let first = s.read_publish5();
    assert_eq!(first.payload, 1u16.to_be_bytes());
    s.expect_silence(Duration::from_millis(200));
    // Blocked, but other packets are answered at once.
    s.ping();
    assert_eq!(s.subscribe5(5, &no_props(), &[("other", 0)]), vec![0]);
    let mut last = first;
    for want in 2..=3u16 {
        s.send(&ack(0x40, last.pkid));
        last = s.read_publish5();
        assert_eq!(last.payload, want.to_be_bytes(), "in order");
        s.expect_silence(Duration::from_millis(100));
    }
    s.send(&ack(0x40, last.pkid));
    assert!(s.drain5().is_empty());
}

// [MQTT-4.9.0-2]
#[test]
fn a_refusing_pubrec_frees_the_send_quota() {
    let b = TestBroker::start();
    let mut s = subscriber(b.addr, "rm1q2", Props::new().two(0x21, 1), 2);
    publish_n(b.addr, 2, 2);
    let m = s.read_publish5();
    s.expect_silence(Duration::from_millis(200));
    let [hi, lo] = m.pkid.to_be_bytes();
    s.send(&[0x50, 0x03, hi, lo, 0x80]);
    let next = s.read_publish5();
    assert_eq!(next.payload, 2u16.to_be_bytes());
    assert!(next.pkid != 0);
}

// [MQTT-3.3.4-9] [MQTT-4.4.0-1] [MQTT-2.2.1-4] [MQTT-3.3.1-1] [MQTT-4.6.0-1]
#[test]
fn never_more_unacknowledged_than_the_receive_maximum() {
    let b = TestBroker::start();
    let connect = Connect5::new("rm5")
        .clean(false)
        .expiry(60)
        .props(Props::new().two(0x21, 5));
    let (mut s, _) = Raw::mqtt5(b.addr, &connect);
    s.sub5("t", 1);
    publish_n(b.addr, 20, 1);
    let first: Vec<Pub5> = (0..5).map(|_| s.read_publish5()).collect();
    s.expect_silence(Duration::from_millis(300));
    sessions::kill(s);
    let (mut s, connack) = Raw::mqtt5(b.addr, &connect);
    assert!(connack.present);
    // The same five again, with their ids and DUP 1; nothing more.
    for want in &first {
        let m = s.read_publish5();
        assert_eq!(
            (m.pkid, m.dup, &m.payload),
            (want.pkid, true, &want.payload)
        );
    }
    s.expect_silence(Duration::from_millis(300));
    for m in &first {
        s.send(&ack(0x40, m.pkid));
    }
    assert_eq!(s.drain5().len(), 15, "the rest once acknowledged");
}

// [MQTT-3.3.4-9]
#[test]
fn a_reconnect_with_a_smaller_receive_maximum_resends_only_that_many() {
    let b = TestBroker::start();
    let connect = |max| {
        let props = Props::new().two(0x21, max);
        Connect5::new("rm-shrink")
            .clean(false)
            .expiry(60)
            .props(props)
    };
    let (mut s, _) = Raw::mqtt5(b.addr, &connect(5));
    s.sub5("t", 1);
    publish_n(b.addr, 8, 1);
    let first: Vec<Pub5> = (0..5).map(|_| s.read_publish5()).collect();
    sessions::kill(s);
    let (mut s, _) = Raw::mqtt5(b.addr, &connect(2));
    for want in &first[..2] {
        let again = s.read_publish5();
        assert_eq!((again.pkid, again.dup), (want.pkid, true));
    }
    s.expect_silence(Duration::from_millis(300));
    // Each acknowledgement lets one more go: the held ones first, with
    // their ids and DUP, then the three never sent, all in order.
    let mut payloads: Vec<Vec<u8>> = first[..2].iter().map(|p| p.payload.clone()).collect();
    let mut last = first[1].pkid;
    for (i, want) in first[2..].iter().enumerate() {
        s.send(&[0x40, 0x02, (last >> 8) as u8, last as u8]);
        let next = s.read_publish5();
        assert_eq!((next.pkid, next.dup), (want.pkid, true), "held message {i}");
        payloads.push(next.payload);
        last = next.pkid;
    }
    for _ in 0..3 {
        s.send(&[0x40, 0x02, (last >> 8) as u8, last as u8]);
        let next = s.read_publish5();
        assert!(!next.dup, "never sent before");
        payloads.push(next.payload);
        last = next.pkid;
    }
    let mut sorted = payloads.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 8, "all eight, once each");
}

// [MQTT-3.3.4-7]
#[test]
fn more_than_the_servers_receive_maximum_is_disconnected_with_0x93() {
    let b = TestBroker::start_with(|c| c.max_inflight = 2);
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("flood"));
    assert_eq!(ack.props.num(0x21), Some(2));
    for id in 1..=2u16 {
        c.send(&publish5("t", b"x", 2, id, false, &no_props()));
        c.read_ack(0x50, id);
    }
    c.violate(&publish5("t", b"x", 2, 3, false, &no_props()), 0x93);
}

// [MQTT-3.1.2-24] [MQTT-3.1.2-25]
#[test]
fn messages_larger_than_the_clients_maximum_packet_size_are_skipped() {
    let b = TestBroker::start();
    let connect = Connect5::new("small")
        .clean(false)
        .expiry(60)
        .props(Props::new().four(0x27, 64).two(0x21, 1));
    let (mut s, _) = Raw::mqtt5(b.addr, &connect);
    s.sub5("t", 1);
    let mut other = Raw::v5(b.addr, "big-other");
    other.sub5("t", 1);
    let mut p = Raw::v5(b.addr, "big-pub");
    p.pub5("t", &[b'x'; 100], 1, 1, &no_props());
    p.pub5("t", b"small", 1, 2, &no_props());
    // Receive Maximum 1: the large one took no slot, the small one came.
    let m = s.read_publish5();
    assert_eq!(m.payload, b"small");
    sessions::kill(s);
    assert_eq!(other.drain5().len(), 2, "another client gets both");
    let (mut s, _) = Raw::mqtt5(b.addr, &connect);
    let again = s.read_publish5();
    assert_eq!((again.dup, &again.payload[..]), (true, &b"small"[..]));
    s.send(&ack(0x40, again.pkid));
    // Nothing that big is ever sent to it.
    assert!(s.drain5().is_empty());
}

// [MQTT-3.1.2-24] [MQTT-3.1.2-25] [MQTT-3.1.2-26]
#[test]
fn a_copy_is_sized_with_its_topic_alias() {
    let b = TestBroker::start();
    let props = Props::new().four(0x27, 64).two(0x22, 5);
    let (mut s, _) = Raw::mqtt5(b.addr, &Connect5::new("alias-size").props(props));
    s.sub5("t", 0);
    let mut p = Raw::v5(b.addr, "alias-size-pub");
    // 64 bytes without a Topic Alias, 67 with the one it would get first.
    p.pub5("t", &[b'a'; 58], 0, 0, &no_props());
    // 64 bytes with a new alias; then 64 bytes by the alias alone.
    p.pub5("t", &[b'b'; 55], 0, 0, &no_props());
    p.pub5("t", &[b'c'; 56], 0, 0, &no_props());
    s.send(&[0xC0, 0x00]);
    let mut got = Vec::new();
    loop {
        let (first, body) = s.read_packet().expect("packet");
        let size = 1 + remaining_length(body.len()).len() + body.len();
        assert!(size <= 64, "a packet of {size} bytes, the client takes 64");
        if first == 0xD0 {
            break;
        }
        got.push(parse_publish5(first, &body));
    }
    let seen: Vec<(&str, u8, Option<u32>)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload[0], m.props.num(0x23)))
        .collect();
    assert_eq!(seen, vec![("t", b'b', Some(1)), ("", b'c', Some(1))]);
}

// [MQTT-3.2.2-15]
#[test]
fn a_packet_above_the_servers_maximum_is_disconnected_with_0x95() {
    let b = TestBroker::start_with(|c| c.max_packet_size = 1024);
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("too-big"));
    let announced = ack.props.num(0x27).expect("Maximum Packet Size");
    assert!((1024..=1029).contains(&announced), "announced {announced}");
    // Remaining Length 2,000 and only the first bytes of the body.
    let mut start = vec![0x30, 0xD0, 0x0F, 0x00, 0x01, b't', 0x00];
    start.extend([b'x'; 3]);
    c.violate(&start, 0x95);
}

// [MQTT-3.3.2-12] [MQTT-3.1.2-27]
#[test]
fn inbound_aliases_up_to_the_maximum_are_accepted() {
    let b = TestBroker::start();
    let mut s = sub_v5(b.addr, "t", 0);
    let (mut p, ack) = Raw::mqtt5(b.addr, &Connect5::new("alias"));
    assert_eq!(ack.props.num(0x22), Some(10));
    for alias in [1u16, 10] {
        p.send(&publish5(
            "t",
            b"x",
            0,
            0,
            false,
            &Props::new().two(0x23, alias),
        ));
        p.send(&publish5(
            "",
            b"y",
            0,
            0,
            false,
            &Props::new().two(0x23, alias),
        ));
        p.ping();
        let got = s.drain5();
        let got: Vec<(&str, &[u8])> = got
            .iter()
            .inspect(|m| assert!(!m.props.has(0x23), "no alias toward s"))
            .map(|m| (m.topic.as_str(), &m.payload[..]))
            .collect();
        assert_eq!(got, vec![("t", &b"x"[..]), ("t", &b"y"[..])]);
    }
}

// [MQTT-3.3.2-8] [MQTT-3.2.2-17] [MQTT-3.3.2-9]
#[test]
fn alias_0_or_above_the_maximum_is_disconnected_with_0x94() {
    let b = TestBroker::start();
    for alias in [0u16, 11, 0xFFFF] {
        let alias = Props::new().two(0x23, alias);
        assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &alias), 0x94);
    }
}

// [MQTT-3.2.2-18]
#[test]
fn no_aliases_when_the_server_announces_none() {
    let b = TestBroker::start_with(|c| c.max_topic_alias = 0);
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("noalias"));
    assert!(ack.props.num(0x22).unwrap_or(0) == 0);
    c.violate(
        &publish5("t", b"x", 0, 0, false, &Props::new().two(0x23, 1)),
        0x94,
    );
}

// [MQTT-3.3.2-7]
#[test]
fn inbound_aliases_last_one_connection() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "alias-life");
    c.send(&publish5(
        "t",
        b"x",
        0,
        0,
        false,
        &Props::new().two(0x23, 1),
    ));
    c.ping();
    c.disconnect();
    let mut c = Raw::v5(b.addr, "alias-life");
    c.violate(
        &publish5("", b"y", 0, 0, false, &Props::new().two(0x23, 1)),
        0x82,
    );
    // An alias never set.
    let never = publish5("", b"y", 0, 0, false, &Props::new().two(0x23, 2));
    assert_disconnects(b.addr, &never, 0x82);
}

// A retained message set through an alias is stored under its topic,
// without the Topic Alias property (§4.5).
#[test]
fn a_retained_message_set_through_an_alias_keeps_no_alias() {
    let b = TestBroker::start();
    let mut p = Raw::v5(b.addr, "alias-ret");
    p.send(&publish5("r", b"1", 0, 0, true, &Props::new().two(0x23, 3)));
    p.send(&publish5("", b"2", 0, 0, true, &Props::new().two(0x23, 3)));
    p.ping();
    let got = sub_v5(b.addr, "r", 0).drain5();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].topic.as_str(), &got[0].payload[..]),
        ("r", &b"2"[..])
    );
    assert!(!got[0].props.has(0x23));
}

// [MQTT-3.1.2-26] [MQTT-3.3.2-11] [MQTT-3.3.2-8]
#[test]
fn outbound_aliases_stay_within_the_clients_maximum() {
    let b = TestBroker::start();
    let connect = Connect5::new("alias-out").props(Props::new().two(0x22, 2));
    let (mut s, _) = Raw::mqtt5(b.addr, &connect);
    s.sub5("#", 0);
    let mut p = Raw::v5(b.addr, "alias-out-pub");
    for _round in 0..3 {
        for t in ["a", "b", "c", "d", "e"] {
            p.send(&publish5(t, b"x", 0, 0, false, &no_props()));
        }
    }
    p.ping();
    let got = s.drain5();
    assert_eq!(got.len(), 15);
    let mut known = std::collections::HashMap::new();
    let mut used = false;
    for m in &got {
        match (m.props.num(0x23), m.topic.as_str()) {
            (Some(a), "") => {
                assert!(known.contains_key(&a), "alias {a} used before it was set");
                used = true;
            }
            (Some(a), t) => {
                assert!((1..=2).contains(&a), "alias {a} above the maximum 2");
                known.insert(a, t.to_string());
            }
            (None, t) => assert!(!t.is_empty()),
        }
    }
    assert!(used, "repeated topics go by alias");
    // A client without a Topic Alias Maximum never gets one.
    let mut plain = sub_v5(b.addr, "#", 0);
    p.send(&publish5("a", b"x", 0, 0, false, &no_props()));
    p.send(&publish5("a", b"x", 0, 0, false, &no_props()));
    p.ping();
    assert!(plain
        .drain5()
        .iter()
        .all(|m| !m.props.has(0x23) && m.topic == "a"));
}
