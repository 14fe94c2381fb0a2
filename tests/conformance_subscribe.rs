//! Raw-byte conformance tests for SUBSCRIBE, UNSUBSCRIBE and topics in
//! MQTT 3.1.1 plus Errata 01: filters, SUBACK and UNSUBACK, Topic Names
//! and Topic Filters, and wildcard matching.
//!
//! Every test talks TCP to a broker on an ephemeral loopback port. A
//! "nothing was delivered" check uses a barrier: the publisher's PINGRESP
//! proves the broker processed everything it sent, then the subscriber's
//! own PINGRESP arrives after anything queued for it before.

mod common;
use common::conformance::*;
use common::*;

/// Reads a SUBACK for `pkid` and returns its return codes, checking that
/// only the codes 0x00, 0x01, 0x02 and 0x80 are used [MQTT-3.9.3-2].
fn read_suback(c: &mut Raw, pkid: u16) -> Vec<u8> {
    let (first, body) = c.read_reply("SUBACK").expect("SUBACK, got EOF");
    assert_eq!(first, 0x90, "expected SUBACK");
    assert!(body.len() >= 3);
    assert_eq!(&body[..2], &pkid.to_be_bytes(), "SUBACK packet id");
    let codes = body[2..].to_vec();
    for c in &codes {
        assert!(
            matches!(c, 0x00 | 0x01 | 0x02 | 0x80),
            "SUBACK return code {c:#04x}"
        );
    }
    codes
}

// ---------------------------------------------------------------------------
// §3.8–§3.9 SUBSCRIBE and SUBACK
// ---------------------------------------------------------------------------

// [MQTT-3.8.3-2]
#[test]
fn wildcard_filters_are_granted() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "wc");
    c.send(&subscribe_packet(
        3,
        &[("a/+", 1), ("#", 0), ("+/x/#", 2), ("+", 1), ("a/#", 2)],
    ));
    assert_eq!(read_suback(&mut c, 3), vec![1, 0, 2, 1, 2]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "a/b", b"1", 0, 0, false);
    let got = delivered(&mut p, &mut c);
    assert!(!got.is_empty() && got.iter().all(|m| m.topic == "a/b"));
}

// [MQTT-3.8.3-3]
#[test]
fn subscribe_without_filters_closes_without_suback() {
    let b = TestBroker::start();
    assert_closes(b.addr, &[0x82, 0x02, 0x00, 0x01]);
}

// [MQTT-3.8.3-4]
#[test]
fn requested_qos_with_reserved_bits_or_qos_3_closes() {
    let b = TestBroker::start();
    for q in [0x03u8, 0x04, 0x80, 0x41, 0xFC] {
        assert_closes(b.addr, &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, q]);
    }
    // A bad second pair also closes: no SUBACK at all for the packet.
    assert_closes(b.addr, &subscribe_packet(1, &[("a", 1), ("b", 3)]));
}

// [MQTT-3.8.4-3]
#[test]
fn identical_filter_replaces_the_subscription_and_resends_retained() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"kept", 1, 1, true);
    let mut c = client(b.addr, "re");
    c.subscribe(1, &[("t", 0)]);
    let got = drain(&mut c);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].qos, got[0].retain), (0, true));
    c.subscribe(2, &[("t", 1)]);
    let got = drain(&mut c);
    assert_eq!(got.len(), 1, "retained sent again: {got:?}");
    assert_eq!(
        (got[0].payload.as_slice(), got[0].qos, got[0].retain),
        (&b"kept"[..], 1, true)
    );
    c.send(&packet(0x40, &got[0].pkid.to_be_bytes()));
    // One subscription, now at QoS 1: a publish arrives exactly once.
    publish(&mut p, "t", b"new", 2, 2, false);
    let got = delivered(&mut p, &mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].payload.as_slice(), got[0].qos, got[0].retain),
        (&b"new"[..], 1, false)
    );
    c.send(&packet(0x40, &got[0].pkid.to_be_bytes()));
    // Replace it by a QoS 0 one: still one copy, now QoS 0.
    c.subscribe(3, &[("t", 0)]);
    let _retained = drain(&mut c);
    publish(&mut p, "t", b"low", 2, 3, false);
    let got = delivered(&mut p, &mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].payload.as_slice(), got[0].qos), (&b"low"[..], 0));
}

// [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2]
#[test]
fn multi_filter_subscribe_gets_one_suback_with_codes_in_order() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "multi");
    // `a` QoS 2, `b` QoS 0, `c` QoS 1 -> `90 05 <id> 02 00 01`.
    c.send(&subscribe_packet(0x0102, &[("a", 2), ("b", 0), ("c", 1)]));
    c.expect(&[0x90, 0x05, 0x01, 0x02, 0x02, 0x00, 0x01]);
    // Exactly one SUBACK: the next packet is the PINGRESP.
    c.ping();
    // Same filter twice in one packet: like two SUBSCRIBEs, the last wins.
    c.send(&subscribe_packet(7, &[("d", 0), ("d", 2)]));
    assert_eq!(read_suback(&mut c, 7), vec![0, 2]);
    let mut p = client(b.addr, "pub");
    for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
        publish(&mut p, t, t.as_bytes(), 2, i as u16 + 1, false);
    }
    let got = delivered(&mut p, &mut c);
    let seen: Vec<(&str, u8)> = got.iter().map(|m| (m.topic.as_str(), m.qos)).collect();
    assert_eq!(seen, [("a", 2), ("b", 0), ("c", 1), ("d", 2)]);
}

// [MQTT-3.8.4-6]
#[test]
fn delivered_qos_is_the_minimum_of_published_and_granted() {
    let b = TestBroker::start();
    let mut s1 = subscriber(b.addr, &[("t", 1)]);
    let mut s2 = subscriber(b.addr, &[("t", 2)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "t", b"2", 2, 1, false);
    publish(&mut p, "t", b"1", 1, 2, false);
    publish(&mut p, "t", b"0", 0, 0, false);
    p.ping();
    let q1: Vec<u8> = drain(&mut s1).iter().map(|m| m.qos).collect();
    let q2: Vec<u8> = drain(&mut s2).iter().map(|m| m.qos).collect();
    assert_eq!(q1, [1, 1, 0]);
    assert_eq!(q2, [2, 1, 0]);
}

// ---------------------------------------------------------------------------
// §3.10–§3.11 UNSUBSCRIBE and UNSUBACK
// ---------------------------------------------------------------------------

// [MQTT-3.10.3-2]
#[test]
fn unsubscribe_without_filters_closes_without_unsuback() {
    let b = TestBroker::start();
    assert_closes(b.addr, &[0xA2, 0x02, 0x00, 0x01]);
}

// [MQTT-3.10.4-1] [MQTT-3.10.4-2]
#[test]
fn unsubscribe_compares_filters_literally_and_stops_delivery() {
    let b = TestBroker::start();
    let mut c = subscriber(b.addr, &[("a/+", 1)]);
    let mut p = client(b.addr, "pub");
    // `a/b` matches `a/+` but is not the same filter: nothing is deleted.
    c.send(&unsubscribe_packet(2, &["a/b"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x02]);
    c.send(&unsubscribe_packet(3, &["a/#", "+/+", "A/+"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x03]);
    publish(&mut p, "a/b", b"1", 0, 0, false);
    assert_eq!(payloads(&delivered(&mut p, &mut c)), vec![b"1".to_vec()]);
    // The exact filter deletes it: no new messages afterwards.
    c.send(&unsubscribe_packet(4, &["a/+"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x04]);
    publish(&mut p, "a/b", b"2", 0, 0, false);
    publish(&mut p, "a/c", b"3", 1, 1, false);
    publish(&mut p, "a/d", b"4", 2, 2, false);
    assert_eq!(delivered(&mut p, &mut c), vec![]);
}

// [MQTT-3.10.4-3]
#[test]
fn unsubscribe_completes_qos_deliveries_already_started() {
    let b = TestBroker::start();
    let mut p = client(b.addr, "pub");
    // In session: a QoS 2 delivery started before the UNSUBSCRIBE finishes.
    let mut c = subscriber(b.addr, &[("t", 2)]);
    publish(&mut p, "t", b"q2", 2, 1, false);
    let m = c.read_publish();
    let id = m.pkid.to_be_bytes();
    c.send(&unsubscribe_packet(5, &["t"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x05]);
    c.send(&[0x50, 0x02, id[0], id[1]]);
    c.expect(&[0x62, 0x02, id[0], id[1]]);
    c.send(&[0x70, 0x02, id[0], id[1]]);
    c.ping();
    // Across a reconnect: an unacknowledged QoS 1 PUBLISH is resent even
    // though its subscription is gone.
    let id_s = cid("unsub-persist");
    let (mut s, _) = Raw::mqtt(b.addr, &id_s, false);
    s.subscribe(1, &[("u", 1)]);
    publish(&mut p, "u", b"q1", 1, 2, false);
    let m = s.read_publish();
    s.send(&unsubscribe_packet(2, &["u"]));
    s.expect(&[0xB0, 0x02, 0x00, 0x02]);
    drop(s);
    p.ping();
    let (mut s, present) = Raw::mqtt(b.addr, &id_s, false);
    assert!(present);
    let again = s.read_publish();
    assert_eq!(
        (again.pkid, again.dup, again.payload.as_slice()),
        (m.pkid, true, &b"q1"[..])
    );
    s.send(&packet(0x40, &again.pkid.to_be_bytes()));
    // ... and nothing new for the deleted subscription.
    publish(&mut p, "u", b"later", 1, 3, false);
    assert_eq!(delivered(&mut p, &mut s), vec![]);
}

// [MQTT-3.10.4-5]
#[test]
fn unsuback_is_sent_even_when_nothing_was_subscribed() {
    let b = TestBroker::start();
    let mut c = client(b.addr, "none");
    c.send(&unsubscribe_packet(0x0A0B, &["zzz"]));
    c.expect(&[0xB0, 0x02, 0x0A, 0x0B]);
    c.send(&unsubscribe_packet(2, &["#", "a/+/b"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x02]);
    c.ping();
}

// [MQTT-3.10.4-6]
#[test]
fn multi_filter_unsubscribe_gets_one_unsuback() {
    let b = TestBroker::start();
    let mut c = subscriber(b.addr, &[("a", 1), ("b", 2), ("c", 0)]);
    c.send(&unsubscribe_packet(9, &["a", "b", "never"]));
    c.expect(&[0xB0, 0x02, 0x00, 0x09]);
    // Exactly one UNSUBACK: the next packet is the PINGRESP.
    c.ping();
    let mut p = client(b.addr, "pub");
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        publish(&mut p, t, t.as_bytes(), 1, i as u16 + 1, false);
    }
    let got = delivered(&mut p, &mut c);
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["c"]);
}

// ---------------------------------------------------------------------------
// §4.7 Topic Names and Topic Filters
// ---------------------------------------------------------------------------

// [MQTT-4.7.1-2]
#[test]
fn misplaced_multi_level_wildcard_in_filter_closes() {
    let b = TestBroker::start();
    for f in ["a/#/b", "a#", "#/", "#/a", "a/b#", "##"] {
        assert_closes(b.addr, &subscribe_packet(1, &[(f, 0)]));
    }
    // Also when it is the second filter of the packet, and in UNSUBSCRIBE.
    assert_closes(b.addr, &subscribe_packet(1, &[("ok", 0), ("a/#/b", 1)]));
    // `A2 08 00 01 00 04 61 2F 23 2F`: unsubscribe `a/#/`.
    assert_closes(
        b.addr,
        &[0xA2, 0x08, 0x00, 0x01, 0x00, 0x04, 0x61, 0x2F, 0x23, 0x2F],
    );
}

// [MQTT-4.7.1-3]
#[test]
fn partial_level_single_level_wildcard_in_filter_closes() {
    let b = TestBroker::start();
    for f in ["a/b+", "+a", "a/+b/c", "++", "+/a+"] {
        assert_closes(b.addr, &subscribe_packet(1, &[(f, 0)]));
    }
    assert_closes(b.addr, &unsubscribe_packet(1, &["a+"]));
}

// [MQTT-4.7.2-1]
#[test]
fn filters_starting_with_a_wildcard_do_not_match_dollar_topics() {
    let b = TestBroker::start();
    let mut all = subscriber(b.addr, &[("#", 0)]);
    let mut plus = subscriber(b.addr, &[("+/x", 0), ("+/#", 0), ("+", 0)]);
    let mut dollar = subscriber(b.addr, &[("$t/#", 0), ("$t/+", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "$t/x", b"d", 1, 1, true);
    publish(&mut p, "$t", b"d", 0, 0, false);
    publish(&mut p, "control/x", b"c", 0, 0, false);
    p.ping();
    let topics = |v: Vec<Pub>| v.into_iter().map(|m| m.topic).collect::<Vec<_>>();
    assert_eq!(topics(drain(&mut all)), ["control/x"]);
    let plus_got = topics(drain(&mut plus));
    assert!(plus_got.iter().all(|t| t == "control/x"), "{plus_got:?}");
    assert!(!plus_got.is_empty());
    let dollar_got = topics(drain(&mut dollar));
    assert!(dollar_got.contains(&"$t/x".to_string()) && dollar_got.contains(&"$t".to_string()));
    // Nor are retained `$` messages sent to a new `#` or `+/x` subscription.
    assert_eq!(subscribe_and_collect(b.addr, "#", 0), vec![]);
    assert_eq!(subscribe_and_collect(b.addr, "+/x", 0), vec![]);
    assert_eq!(topics(subscribe_and_collect(b.addr, "$t/x", 0)), ["$t/x"]);
}

// [MQTT-4.7.3-1]
#[test]
fn empty_topic_name_or_filter_closes() {
    let b = TestBroker::start();
    // `30 02 00 00`: PUBLISH with an empty topic.
    assert_closes_undelivered(b.addr, &[0x30, 0x02, 0x00, 0x00]);
    assert_closes_undelivered(b.addr, &publish_packet("", b"x", 1, 1, false, false));
    // `82 05 00 01 00 00 00`: SUBSCRIBE with an empty filter.
    assert_closes(b.addr, &[0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]);
    assert_closes(b.addr, &[0xA2, 0x04, 0x00, 0x01, 0x00, 0x00]);
}

// [MQTT-4.7.3-3]
#[test]
fn topics_of_the_maximum_length_are_carried_intact() {
    let b = TestBroker::start();
    let long: String = (0..65_535)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut exact = subscriber(b.addr, &[(long.as_str(), 1)]);
    let mut all = subscriber(b.addr, &[("#", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, &long, b"L", 1, 1, false);
    p.ping();
    for s in [&mut exact, &mut all] {
        let got = drain(s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].topic.len(), 65_535);
        assert!(got[0].topic == long);
        assert_eq!(got[0].payload, b"L");
    }
}

// [MQTT-4.7.3-4]
#[test]
fn topic_matching_is_exact_without_normalisation() {
    let b = TestBroker::start();
    // `café` precomposed (63 61 66 C3 A9).
    let mut cafe = subscriber(b.addr, &[("caf\u{e9}", 0), ("Accounts", 0), ("finance", 0)]);
    let mut p = client(b.addr, "pub");
    publish(&mut p, "cafe\u{301}", b"nfd", 0, 0, false);
    publish(&mut p, "ACCOUNTS", b"upper", 0, 0, false);
    publish(&mut p, "accounts", b"lower", 0, 0, false);
    publish(&mut p, "/finance", b"slash", 0, 0, false);
    publish(&mut p, "finance/", b"slash2", 0, 0, false);
    publish(&mut p, "caf\u{e9}", b"nfc", 0, 0, false);
    publish(&mut p, "Accounts", b"same", 0, 0, false);
    publish(&mut p, "finance", b"fin", 0, 0, false);
    let got = delivered(&mut p, &mut cafe);
    assert_eq!(
        payloads(&got),
        vec![b"nfc".to_vec(), b"same".to_vec(), b"fin".to_vec()]
    );
    assert_eq!(got[0].topic.as_bytes(), &[0x63, 0x61, 0x66, 0xC3, 0xA9]);
}

/// The matching table of the reference (§4.7), over the wire.
#[test]
fn wildcard_matching_follows_the_standard_examples() {
    let b = TestBroker::start();
    let cases: &[(&str, &str, bool)] = &[
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("#", "a/b/c", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("finance", "/finance", false),
        ("/", "/", true),
        ("a b/+", "a b/c d", true),
    ];
    let mut p = client(b.addr, "pub");
    for (filter, name, want) in cases {
        let mut s = subscriber(b.addr, &[(filter, 0)]);
        // `$SYS/...` publishes from clients are dropped: use another `$`
        // topic for that row.
        let name = name.replace("$SYS", "$X");
        publish(&mut p, &name, b"m", 0, 0, false);
        let got = delivered(&mut p, &mut s);
        assert_eq!(!got.is_empty(), *want, "filter {filter:?} vs name {name:?}");
        if *want {
            assert_eq!(got[0].topic, name);
        }
    }
}
