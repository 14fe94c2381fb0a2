//! Shared subscriptions `$share/GROUP/FILTER` (MQTT 5 §4.8.2), from MQTT 5
//! and 3.1.1 clients: one member of each group gets each message, round
//! robin over the online members with room; a leaving member's messages go
//! to the others; groups survive a restart; invalid filters and No Local
//! are Protocol Errors. Ids are MQTT 5's.

mod common;
use common::persistence::{start as start_stored, store_dir};
use common::*;

use std::time::{Duration, Instant};

// ------------------------------------------------------------ MQTT 5 bytes

fn field(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// An MQTT 5 client: CONNECT (Session Expiry Interval `expiry` if given),
/// CONNACK 0 checked; returns the client and the CONNACK's properties.
fn v5(addr: std::net::SocketAddr, id: &str, clean: bool, expiry: Option<u32>) -> (Raw, Vec<u8>) {
    let mut props = Vec::new();
    if let Some(e) = expiry {
        props.push(0x11);
        props.extend(e.to_be_bytes());
    }
    v5_with(addr, id, clean, &props)
}

/// `v5` with these CONNECT properties.
fn v5_with(addr: std::net::SocketAddr, id: &str, clean: bool, props: &[u8]) -> (Raw, Vec<u8>) {
    let mut body = field(b"MQTT");
    body.extend([5, if clean { 2 } else { 0 }, 0, 60]);
    body.extend(remaining_length(props.len()));
    body.extend_from_slice(props);
    body.extend(field(id.as_bytes()));
    let mut c = Raw::connect(addr);
    c.send(&packet(0x10, &body));
    let (first, ack) = c.read_reply("CONNACK").expect("CONNACK, got EOF");
    assert_eq!((first, ack[1]), (0x20, 0), "CONNACK 0 for {id}");
    let (len, at) = varint(&ack[2..]);
    (c, ack[2 + at..2 + at + len].to_vec())
}

/// A Variable Byte Integer at the start of `b`: (value, bytes used).
fn varint(b: &[u8]) -> (usize, usize) {
    let mut v = 0;
    for (i, byte) in b.iter().enumerate().take(4) {
        v |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("bad variable byte integer {b:02x?}")
}

/// An MQTT 5 SUBSCRIBE: each filter with its options byte, and a
/// Subscription Identifier if given.
fn subscribe_v5(pkid: u16, id: Option<u32>, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut props = Vec::new();
    if let Some(id) = id {
        props.push(0x0B);
        props.extend(remaining_length(id as usize));
    }
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend(remaining_length(props.len()));
    body.extend(props);
    for (f, opts) in filters {
        body.extend(field(f.as_bytes()));
        body.push(*opts);
    }
    packet(0x82, &body)
}

/// Subscribes an MQTT 5 client and checks the SUBACK's codes.
fn sub_v5(c: &mut Raw, id: Option<u32>, filters: &[(&str, u8)], codes: &[u8]) {
    c.send(&subscribe_v5(1, id, filters));
    let (first, body) = c.read_reply("SUBACK").expect("SUBACK, got EOF");
    assert_eq!(first, 0x90);
    let mut want = vec![0, 1, 0];
    want.extend(codes);
    assert_eq!(body, want, "SUBACK codes");
}

/// A PUBLISH an MQTT 5 client got: QoS, payload and Subscription
/// Identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    qos: u8,
    payload: String,
    ids: Vec<usize>,
}

fn parse_v5(first: u8, body: &[u8]) -> (Got, u16) {
    let qos = (first >> 1) & 3;
    let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let mut at = 2 + tlen;
    let mut pkid = 0;
    if qos > 0 {
        pkid = u16::from_be_bytes([body[at], body[at + 1]]);
        at += 2;
    }
    let (len, used) = varint(&body[at..]);
    at += used;
    let (props, payload) = body[at..].split_at(len);
    let mut ids = Vec::new();
    let mut p = 0;
    while p < props.len() {
        assert_eq!(props[p], 0x0B, "only Subscription Identifiers expected");
        let (id, used) = varint(&props[p + 1..]);
        ids.push(id);
        p += 1 + used;
    }
    let payload = String::from_utf8(payload.to_vec()).unwrap();
    (Got { qos, payload, ids }, pkid)
}

/// Reads and acknowledges every PUBLISH an MQTT 5 client has waiting,
/// until a PINGREQ round trip brings nothing new.
fn drain_v5(c: &mut Raw) -> Vec<Got> {
    let mut got = Vec::new();
    for _ in 0..1000 {
        c.send(&[0xC0, 0]);
        let mut quiet = true;
        loop {
            let (first, body) = c.read_packet().expect("a packet, got EOF");
            match first >> 4 {
                0xD => break,
                3 => {
                    quiet = false;
                    let (p, pkid) = parse_v5(first, &body);
                    let [hi, lo] = pkid.to_be_bytes();
                    match p.qos {
                        1 => c.send(&[0x40, 2, hi, lo]),
                        2 => c.send(&[0x50, 2, hi, lo]),
                        _ => {}
                    }
                    got.push(p);
                }
                6 => {
                    quiet = false;
                    c.send(&[0x70, 2, body[0], body[1]]);
                }
                _ => panic!("unexpected packet {first:#04x}"),
            }
        }
        if quiet {
            return got;
        }
    }
    panic!("the broker never ran out of messages")
}

/// Payloads in arrival order.
fn texts(p: &[Pub]) -> Vec<String> {
    p.iter()
        .map(|p| String::from_utf8(p.payload.clone()).unwrap())
        .collect()
}

/// Publishes `n` messages "0".."n-1" on `topic` from a 3.1.1 client,
/// each acknowledged before the next.
fn publish_n(publisher: &mut Raw, topic: &str, n: usize, qos: u8) {
    for i in 0..n {
        let pkid = i as u16 + 1;
        publisher.publish_done(topic, i.to_string().as_bytes(), qos, pkid);
    }
}

/// Asserts that the parts hold "0".."n-1" exactly once in all.
fn once_in_all(parts: &[&[String]], n: usize) {
    let mut all: Vec<usize> = parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.parse::<usize>().unwrap()))
        .collect();
    all.sort();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "each message exactly once");
}

// ------------------------------------------------------------------ tests

/// 3.1.1 clients share `$share/g/t` as mosquitto lets them: each message
/// goes to one member, round robin; another group and an ordinary
/// subscriber get their own copies.
#[test]
fn three_members_take_turns_and_other_subscribers_get_every_message() {
    let b = TestBroker::start();
    let mut members: Vec<Raw> = (0..3)
        .map(|i| {
            let (mut c, _) = Raw::mqtt(b.addr, &format!("member-{i}"), true);
            c.subscribe(1, &[("$share/g/t", 1)]);
            c
        })
        .collect();
    let (mut other_group, _) = Raw::mqtt(b.addr, "other-group", true);
    other_group.subscribe(1, &[("$share/h/t", 0)]);
    let (mut plain, _) = Raw::mqtt(b.addr, "plain", true);
    plain.subscribe(1, &[("t", 1)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publish_n(&mut publisher, "t", 9, 1);
    let got: Vec<Vec<String>> = members.iter_mut().map(|m| texts(&m.drain())).collect();
    // Round robin: the first member to join gets the first message.
    assert_eq!(got[0], ["0", "3", "6"]);
    assert_eq!(got[1], ["1", "4", "7"]);
    assert_eq!(got[2], ["2", "5", "8"]);
    assert_eq!(texts(&other_group.drain()).len(), 9);
    assert_eq!(texts(&plain.drain()).len(), 9);
}

/// [MQTT-4.8.2-3]: each member gets the QoS it was granted and its own
/// Subscription Identifier; CONNACK announces shared subscriptions (no
/// `2A 00`); a retained message is not sent to a joining member.
#[test]
fn v5_members_get_their_own_qos_and_identifier_and_no_retained() {
    let b = TestBroker::start();
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publisher.send(&publish_packet("t", b"retained", 1, 1, true, false));
    publisher.expect(&[0x40, 2, 0, 1]);
    let (mut a, props) = v5(b.addr, "a", true, None);
    assert!(
        !props.windows(2).any(|w| w == [0x2A, 0]),
        "Shared Subscription Available 0 in CONNACK {props:02x?}"
    );
    let (mut c, _) = v5(b.addr, "c", true, None);
    sub_v5(&mut a, Some(5), &[("$share/g/t", 1)], &[1]);
    sub_v5(&mut c, Some(6), &[("$share/g/t", 2)], &[2]);
    publish_n(&mut publisher, "t", 20, 2);
    let (at_a, at_c) = (drain_v5(&mut a), drain_v5(&mut c));
    assert!(at_a.iter().all(|p| p.qos == 1 && p.ids == [5]), "{at_a:?}");
    assert!(at_c.iter().all(|p| p.qos == 2 && p.ids == [6]), "{at_c:?}");
    let payloads = |g: &[Got]| g.iter().map(|p| p.payload.clone()).collect::<Vec<_>>();
    once_in_all(&[&payloads(&at_a), &payloads(&at_c)], 20);
    assert_eq!((at_a.len(), at_c.len()), (10, 10));
}

/// A member that unsubscribes, or whose session ends, gets nothing more;
/// the group goes with its last member.
#[test]
fn members_that_leave_get_nothing_more() {
    let b = TestBroker::start_polled(|_| {});
    let (mut a, _) = Raw::mqtt(b.addr, "a", true);
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    let (mut d, _) = Raw::mqtt(b.addr, "d", true);
    for m in [&mut a, &mut c, &mut d] {
        m.subscribe(1, &[("$share/g/t", 1)]);
    }
    // Memberships count as subscriptions ($SYS/broker/subscriptions/count).
    assert_eq!(b.stats().subscriptions, 3);
    a.send(&unsubscribe_packet(2, &["$share/g/t"]));
    a.expect(&[0xB0, 2, 0, 2]);
    d.disconnect();
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publish_n(&mut publisher, "t", 4, 1);
    assert!(a.drain().is_empty());
    assert_eq!(texts(&c.drain()), ["0", "1", "2", "3"]);
    assert_eq!(b.stats().subscriptions, 1);
    c.send(&unsubscribe_packet(3, &["$share/g/t"]));
    c.expect(&[0xB0, 2, 0, 3]);
    assert_eq!(b.stats().subscriptions, 0);
}

/// A member that disconnects with a QoS 1 message unacknowledged: the
/// message goes to another member (its clean session ends; MQTT 5
/// §4.8.2 says the server should), and so do those queued for it.
#[test]
fn unacknowledged_qos1_messages_go_to_another_member_when_one_leaves() {
    let b = TestBroker::start_with(|c| c.max_inflight = 1);
    let (mut a, _) = Raw::mqtt(b.addr, "a", true);
    a.subscribe(1, &[("$share/g/t", 1)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publisher.publish_done("t", b"first", 1, 1);
    let first = a.read_publish();
    assert_eq!(first.payload, b"first");
    // Not acknowledged: a's window (1) is full, so the next one queues.
    publisher.publish_done("t", b"second", 1, 2);
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    c.subscribe(1, &[("$share/g/t", 1)]);
    drop(a); // no DISCONNECT, no PUBACK
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < 2 {
        let (first, body) = c
            .read_packet_by(deadline, "the handed-over messages")
            .unwrap();
        let p = parse_publish(first, &body);
        c.send(&[0x40, 2, (p.pkid >> 8) as u8, p.pkid as u8]);
        got.push(String::from_utf8(p.payload).unwrap());
    }
    got.sort();
    assert_eq!(got, ["first", "second"]);
}

/// A persistent member that disconnects: while another member is online
/// its unacknowledged QoS 1 message goes there, and is not resent to it
/// when it comes back.
#[test]
fn a_persistent_member_that_disconnects_hands_over_to_online_members() {
    let b = TestBroker::start();
    let (mut a, _) = Raw::mqtt(b.addr, "a", false);
    a.subscribe(1, &[("$share/g/t", 1)]);
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    c.subscribe(1, &[("$share/g/t", 1)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publisher.publish_done("t", b"for a", 1, 1);
    assert_eq!(a.read_publish().payload, b"for a");
    a.disconnect();
    assert_eq!(texts(&c.drain()), ["for a"]);
    let (mut a, present) = Raw::mqtt(b.addr, "a", false);
    assert!(present);
    assert!(a.drain().is_empty(), "handed over, so not resent");
}

/// A session taken over by a new connection of its client keeps its
/// messages: the new connection gets the unacknowledged one again
/// [MQTT-4.4.0-1], the other member nothing.
#[test]
fn a_member_taken_over_keeps_its_messages() {
    let b = TestBroker::start();
    let (mut a, _) = Raw::mqtt(b.addr, "a", false);
    a.subscribe(1, &[("$share/g/t", 1)]);
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    c.subscribe(1, &[("$share/g/t", 1)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publisher.publish_done("t", b"for a", 1, 1);
    assert_eq!(a.read_publish().payload, b"for a");
    let (mut again, present) = Raw::mqtt(b.addr, "a", false);
    assert!(present);
    let resent = again.read_publish();
    assert_eq!((resent.dup, &resent.payload[..]), (true, &b"for a"[..]));
    assert!(c.drain().is_empty());
    drop(a);
}

/// [MQTT-4.8.2-4]: a QoS 2 message sent once stays with its member over a
/// disconnect and is resent to it; [MQTT-4.8.2-5]: when its session ends
/// first, no other member gets it.
#[test]
fn a_qos2_message_sent_once_stays_with_its_member() {
    let b = TestBroker::start();
    let (mut a, _) = v5(b.addr, "a", false, Some(60));
    sub_v5(&mut a, None, &[("$share/g/t", 2)], &[2]);
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    c.subscribe(1, &[("$share/g/t", 2)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publisher.publish_done("t", b"exactly once", 2, 1);
    let (first, _) = a.read_packet().expect("PUBLISH");
    assert_eq!(first & 0xF6, 0x34, "QoS 2 PUBLISH");
    drop(a); // before PUBREC
    c.expect_silence(Duration::from_millis(300));
    let (mut a, _) = v5(b.addr, "a", false, Some(1));
    let (first, body) = a.read_packet().expect("the PUBLISH again");
    assert_eq!(first & 0xFE, 0x3C, "QoS 2 with DUP");
    assert_eq!(parse_v5(first, &body).0.payload, "exactly once");
    drop(a); // again before PUBREC; its session ends 1 s later
    c.expect_silence(Duration::from_millis(2500));
}

/// A member whose window is full is skipped while another has room; with
/// every member offline, messages queue round robin in their sessions.
#[test]
fn busy_members_are_skipped_and_offline_members_queue_in_turn() {
    let b = TestBroker::start_with(|c| c.max_inflight = 1);
    let (mut a, _) = Raw::mqtt(b.addr, "a", false);
    let (mut c, _) = Raw::mqtt(b.addr, "c", false);
    a.subscribe(1, &[("$share/g/t", 1)]);
    c.subscribe(1, &[("$share/g/t", 1)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    // "0" fills a's window; c reads and acknowledges as it goes, so it
    // gets every later one (round robin alone would give a "2").
    publisher.publish_done("t", b"0", 1, 1);
    for i in 1..4u16 {
        publisher.publish_done("t", i.to_string().as_bytes(), 1, i + 1);
        assert_eq!(texts(&c.drain()), [i.to_string()]);
    }
    assert_eq!(texts(&a.drain()), ["0"]);
    a.disconnect();
    c.disconnect();
    publish_n(&mut publisher, "t", 4, 1);
    let (mut a, _) = Raw::mqtt(b.addr, "a", false);
    let (mut c, _) = Raw::mqtt(b.addr, "c", false);
    let (at_a, at_c) = (texts(&a.drain()), texts(&c.drain()));
    assert_eq!((at_a.len(), at_c.len()), (2, 2));
    once_in_all(&[&at_a, &at_c], 4);
}

/// A message larger than a member's Maximum Packet Size goes to a member
/// that takes it (MQTT 5 §4.8.2 allows that or dropping it).
#[test]
fn a_message_too_large_for_one_member_goes_to_another() {
    let b = TestBroker::start();
    let (mut small, _) = v5_with(b.addr, "small", true, &[0x27, 0, 0, 0, 64]);
    sub_v5(&mut small, None, &[("$share/g/t", 1)], &[1]);
    let (mut large, _) = Raw::mqtt(b.addr, "large", true);
    large.subscribe(1, &[("$share/g/t", 1)]);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    let big = [b'x'; 100];
    for pkid in 1..=3 {
        publisher.publish_done("t", &big, 1, pkid);
    }
    assert!(drain_v5(&mut small).is_empty());
    assert_eq!(large.drain().len(), 3);
}

/// A persistent session's shared subscription is stored with its whole
/// `$share/g/t` filter and joins its group again after a restart.
#[test]
fn shared_subscriptions_survive_a_restart() {
    let dir = store_dir("shared");
    {
        let mut b = start_stored(&dir);
        let (mut a, _) = Raw::mqtt(b.addr, "a", false);
        a.subscribe(1, &[("$share/g/t", 1)]);
        a.disconnect();
        let (mut v, _) = v5(b.addr, "v", false, Some(600));
        sub_v5(&mut v, Some(9), &[("$share/h/t", 1)], &[1]);
        v.disconnect();
        b.stop();
    }
    let b = start_stored(&dir);
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publisher.publish_done("t", b"kept for a", 1, 1);
    let (mut a, present) = Raw::mqtt(b.addr, "a", false);
    assert!(present);
    assert_eq!(texts(&a.drain()), ["kept for a"]);
    // An MQTT 5 member's options and identifier come back too.
    let (mut v, _) = v5(b.addr, "v", false, Some(600));
    let got = drain_v5(&mut v);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].payload.as_str(), &got[0].ids[..]),
        ("kept for a", &[9][..])
    );
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    c.subscribe(1, &[("$share/g/t", 1)]);
    publish_n(&mut publisher, "t", 2, 1);
    once_in_all(&[&texts(&a.drain()), &texts(&c.drain())], 2);
}

/// [MQTT-4.8.2-1], [MQTT-4.8.2-2]: an empty share name, one with `+` or
/// `#`, or no filter after it is a Protocol Error (DISCONNECT 0x82, as
/// mosquitto); [MQTT-3.8.3-4]: so is No Local on a shared subscription. A
/// 3.1.1 client is closed.
#[test]
fn invalid_shared_filters_and_no_local_are_protocol_errors() {
    let b = TestBroker::start();
    for (filter, opts) in [
        ("$share//t", 1),
        ("$share/g", 1),
        ("$share/g/", 1),
        ("$share/g+/t", 1),
        ("$share/#/t", 1),
        ("$share/g/a/#/b", 1),
        ("$share/g/t", 0x05), // No Local
    ] {
        let (mut c, _) = v5(b.addr, "bad", true, None);
        c.send(&subscribe_v5(1, None, &[(filter, opts)]));
        let (first, body) = c.read_packet().expect("DISCONNECT, got EOF");
        assert_eq!((first, body[0]), (0xE0, 0x82), "{filter} options {opts}");
        c.expect_closed();
    }
    for filter in ["$share//t", "$share/g"] {
        let (mut c, _) = Raw::mqtt(b.addr, "bad-311", true);
        c.send(&subscribe_packet(1, &[(filter, 1)]));
        c.expect_closed();
    }
    let (mut c, _) = Raw::mqtt(b.addr, "fine", true);
    c.subscribe(1, &[("$share/g/t", 1), ("$share", 0)]);
}

/// The ACL is asked about the filter without `$share/GROUP/`, as in
/// mosquitto.
#[test]
fn the_acl_judges_the_filter_inside() {
    let acl = process::temp_file("shared.acl", "topic read jobs/#\n");
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl));
    let (mut c, _) = Raw::mqtt(b.addr, "worker", true);
    c.send(&subscribe_packet(
        1,
        &[("$share/g/jobs/#", 1), ("$share/g/x", 1)],
    ));
    assert_eq!(c.read_reply("SUBACK"), Some((0x90, vec![0, 1, 1, 0x80])));
}

/// mosquitto_sub as an MQTT 5 member shares a group with a raw client.
#[test]
fn mosquitto_sub_v5_is_a_member() {
    if std::process::Command::new("mosquitto_sub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: mosquitto_sub is missing (scripts/install-test-deps.sh)");
        assert!(std::env::var_os("CI").is_none(), "mosquitto_sub missing");
        return;
    }
    let b = TestBroker::start_polled(|_| {});
    let (mut raw, _) = Raw::mqtt(b.addr, "raw", true);
    raw.subscribe(1, &[("$share/g/t", 1)]);
    let port = b.addr.port().to_string();
    let sub = std::process::Command::new("mosquitto_sub")
        .args(["-V", "5", "-h", "127.0.0.1", "-p", &port, "-q", "1"])
        .args(["-t", "$share/g/t", "-C", "2", "-W", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub starts");
    let deadline = Instant::now() + WAIT;
    while b.stats().subscriptions < 2 {
        assert!(Instant::now() < deadline, "mosquitto_sub did not subscribe");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut publisher, _) = Raw::mqtt(b.addr, "publisher", true);
    publish_n(&mut publisher, "t", 4, 1);
    let out = sub.wait_with_output().expect("mosquitto_sub ends");
    let at_sub: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(at_sub.len(), 2, "mosquitto_sub got {at_sub:?}");
    once_in_all(&[&at_sub, &texts(&raw.drain())], 4);
}
