//! Raw-byte conformance tests for SUBSCRIBE, SUBACK, UNSUBSCRIBE and
//! UNSUBACK in MQTT 5.0: options (No Local, Retain As Published, Retain
//! Handling), Subscription Identifiers, reason codes, and shared
//! subscriptions.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids.

mod common;
use common::v5::*;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// A broker whose ACL lets everyone use `ok/#` and nothing else.
fn acl_broker(name: &str) -> TestBroker {
    let acl = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&acl, "topic readwrite ok/#\n").unwrap();
    TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()))
}

/// Publishes `payload` to `topic` at QoS 1 from a fresh client.
fn publish_from(addr: SocketAddr, topic: &str, payload: &[u8], retain: bool) {
    let mut p = Raw::v5(addr, &cid5("pub"));
    p.send(&publish5(topic, payload, 1, 1, retain, &no_props()));
    p.read_ack(0x40, 1);
}

// [MQTT-3.8.1-1] [MQTT-3.10.1-1]
#[test]
fn subscribe_and_unsubscribe_flags_must_be_0010() {
    let b = TestBroker::start();
    assert_disconnects(
        b.addr,
        &[0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x74, 0x01],
        0x81,
    );
    assert_disconnects(
        b.addr,
        &[0xA0, 0x06, 0x00, 0x02, 0x00, 0x00, 0x01, 0x74],
        0x81,
    );
}

// [MQTT-3.8.3-2] [MQTT-3.10.3-2]
#[test]
fn requests_without_filters_are_refused() {
    let b = TestBroker::start();
    for bytes in [
        &[0x82, 0x03, 0x00, 0x01, 0x00][..],
        &[0xA2, 0x03, 0x00, 0x02, 0x00],
    ] {
        let mut c = Raw::v5(b.addr, &cid5("empty"));
        c.send(bytes);
        c.expect_disconnect_in(&[0x81, 0x82]);
    }
}

// [MQTT-3.8.3-5]
#[test]
fn subscription_option_values_are_checked() {
    let b = TestBroker::start();
    // Reserved bits: Malformed.
    assert_disconnects(b.addr, &subscribe5(1, &no_props(), &[("t", 0xC1)]), 0x81);
    // QoS 3 and Retain Handling 3: Protocol Error.
    assert_disconnects(b.addr, &subscribe5(1, &no_props(), &[("t", 0x03)]), 0x82);
    assert_disconnects(b.addr, &subscribe5(1, &no_props(), &[("t", 0x31)]), 0x82);
}

// [MQTT-3.8.3-3]
#[test]
fn no_local_keeps_a_clients_own_messages_from_it() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "nolocal");
    c.sub5("t", 0x05);
    c.send(&publish5("t", b"own", 1, 1, false, &no_props()));
    c.read_ack(0x40, 1);
    publish_from(b.addr, "t", b"other", false);
    let got = c.drain5();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"other");
}

// [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
#[test]
fn retain_handling_decides_the_retained_messages_at_subscribe() {
    let b = TestBroker::start();
    publish_from(b.addr, "r", b"kept", true);
    // 0: at every SUBSCRIBE, RETAIN 1.
    let mut c = sub_v5(b.addr, "r", 0x01);
    let got = c.drain5();
    assert_eq!((got.len(), got[0].retain), (1, true));
    c.sub5("r", 0x01);
    assert_eq!(c.drain5().len(), 1, "sent again on the same SUBSCRIBE");
    // 1: only if the subscription is new.
    let mut c = sub_v5(b.addr, "r", 0x11);
    assert_eq!(c.drain5().len(), 1);
    c.sub5("r", 0x11);
    assert!(c.drain5().is_empty(), "not for an existing subscription");
    // 2: never; live messages still arrive.
    let mut c = sub_v5(b.addr, "r", 0x21);
    assert!(c.drain5().is_empty());
    publish_from(b.addr, "r", b"live", false);
    assert_eq!(c.drain5()[0].payload, b"live");
}

// [MQTT-3.3.1-12] [MQTT-3.3.1-13]
#[test]
fn retain_as_published_decides_the_forwarded_retain_flag() {
    let b = TestBroker::start();
    let mut plain = sub_v5(b.addr, "t", 0x21);
    let mut rap = sub_v5(b.addr, "t", 0x29);
    publish_from(b.addr, "t", b"r", true);
    publish_from(b.addr, "t", b"n", false);
    let flags = |c: &mut Raw| c.drain5().iter().map(|m| m.retain).collect::<Vec<_>>();
    assert_eq!(flags(&mut plain), vec![false, false]);
    assert_eq!(flags(&mut rap), vec![true, false]);
}

// [MQTT-3.8.4-3]
#[test]
fn identical_filter_replaces_the_subscription_and_its_identifier() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "replace");
    assert_eq!(
        c.subscribe5(1, &Props::new().var(0x0B, 5), &[("t", 0)]),
        vec![0]
    );
    assert_eq!(c.subscribe5(2, &no_props(), &[("t", 1)]), vec![1]);
    publish_from(b.addr, "t", b"x", false);
    let got = c.drain5();
    assert_eq!(got.len(), 1, "one subscription");
    assert_eq!(got[0].qos, 1);
    assert!(
        !got[0].props.has(0x0B),
        "the identifier went with the old one"
    );
}

// [MQTT-3.8.4-4]
#[test]
fn resubscribing_resends_retained_and_loses_nothing() {
    let b = TestBroker::start();
    publish_from(b.addr, "t", b"retained", true);
    let mut s = sub_v5(b.addr, "t", 1);
    assert_eq!(s.drain5().len(), 1);
    let mut p = Raw::v5(b.addr, "stream");
    for i in 0..100u16 {
        p.send(&publish5(
            "t",
            &i.to_be_bytes(),
            1,
            i + 1,
            false,
            &no_props(),
        ));
        if i == 50 {
            s.send(&subscribe5(9, &no_props(), &[("t", 1)]));
        }
    }
    for i in 0..100u16 {
        p.read_ack(0x40, i + 1);
    }
    let mut live = Vec::new();
    let mut retained = 0;
    let mut suback = false;
    s.send(&[0xC0, 0x00]);
    for _ in 0..300 {
        let (first, body) = s.read_packet().expect("packet");
        match first {
            0x90 => suback = true,
            0xD0 => break,
            _ => {
                let m = parse_publish5(first, &body);
                s.send(&[0x40, 0x02, (m.pkid >> 8) as u8, m.pkid as u8]);
                if m.retain {
                    retained += 1;
                } else {
                    live.push(m.payload);
                }
            }
        }
    }
    // What was still owed at the PINGRESP (the window was full under
    // load): the retained copy may be among it.
    for m in s.drain5() {
        if m.retain {
            retained += 1;
        } else {
            live.push(m.payload);
        }
    }
    assert!(suback);
    assert_eq!(retained, 1, "the retained message again");
    let want: Vec<Vec<u8>> = (0..100u16).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(live, want, "each message exactly once, in order");
}

// [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.9.3-1] [MQTT-3.9.3-2]
#[test]
fn several_filters_get_one_suback_with_a_code_each() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "multi");
    c.send(&subscribe5(1, &no_props(), &[("a", 2), ("b", 0), ("c", 1)]));
    c.expect(&[0x90, 0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01]);
    publish_from(b.addr, "b", b"x", false);
    assert_eq!(c.drain5().len(), 1, "every filter subscribed");
}

// [MQTT-3.8.4-7] [MQTT-3.9.3-2] [MQTT-3.9.2-1] [MQTT-3.9.2-2]
#[test]
fn a_refused_filter_gets_a_failure_code_within_the_size_limit() {
    let b = acl_broker("v5-sub.acl");
    let small = Connect5::new("small").props(Props::new().four(0x27, 16));
    let (mut c, _) = Raw::mqtt5(b.addr, &small);
    c.send(&subscribe5(1, &no_props(), &[("ok", 1), ("secret", 1)]));
    let (first, body) = c.read_reply("SUBACK").unwrap();
    assert_eq!(first, 0x90);
    assert!(2 + body.len() <= 16, "SUBACK within 16 bytes: {body:02x?}");
    assert_eq!(&body[body.len() - 2..], &[0x01, 0x87]);
}

// [MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-5] [MQTT-3.11.3-1] [MQTT-3.11.3-2]
#[test]
fn unsubscribe_compares_filters_literally() {
    let b = TestBroker::start();
    let mut c = sub_v5(b.addr, "a/+", 0);
    assert_eq!(c.unsubscribe5(2, &["a/b"]), vec![0x11]);
    publish_from(b.addr, "a/b", b"1", false);
    assert_eq!(c.drain5().len(), 1, "a/+ still subscribed");
    assert_eq!(c.unsubscribe5(3, &["a/+"]), vec![0x00]);
    publish_from(b.addr, "a/b", b"2", false);
    c.expect_silence(Duration::from_millis(200));
    assert!(c.drain5().is_empty());
}

// [MQTT-3.10.4-6] [MQTT-3.11.3-1] [MQTT-3.11.2-1] [MQTT-3.11.2-2]
#[test]
fn several_filters_get_one_unsuback_with_a_code_each() {
    let b = TestBroker::start();
    let small = Connect5::new("unsub").props(Props::new().four(0x27, 16));
    let (mut c, _) = Raw::mqtt5(b.addr, &small);
    c.sub5("t", 0);
    c.send(&unsubscribe5(2, &["t", "zzz"]));
    c.expect(&[0xB0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11]);
}

// [MQTT-3.10.4-3]
#[test]
fn unsubscribe_completes_deliveries_already_started() {
    let b = TestBroker::start();
    let connect = Connect5::new("unsub-inflight").clean(false).expiry(60);
    let (mut c, _) = Raw::mqtt5(b.addr, &connect);
    c.sub5("t", 1);
    publish_from(b.addr, "t", b"started", false);
    let m = c.read_publish5();
    assert_eq!(c.unsubscribe5(2, &["t"]), vec![0x00]);
    sessions::kill(c);
    let (mut c, ack) = Raw::mqtt5(b.addr, &connect);
    assert!(ack.present);
    let again = c.read_publish5();
    assert_eq!(
        (again.pkid, again.dup, &again.payload[..]),
        (m.pkid, true, &b"started"[..])
    );
}

// [MQTT-3.3.4-3]
#[test]
fn deliveries_carry_the_subscription_identifier() {
    let b = TestBroker::start();
    publish_from(b.addr, "t", b"retained", true);
    let mut c = Raw::v5(b.addr, "sid");
    assert_eq!(
        c.subscribe5(1, &Props::new().var(0x0B, 5), &[("t", 1)]),
        vec![1]
    );
    publish_from(b.addr, "t", b"live", false);
    let got = c.drain5();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|m| m.props.all_nums(0x0B) == vec![5]),
        "{got:?}"
    );
    // The largest identifier.
    let max = 268_435_455;
    assert_eq!(
        c.subscribe5(2, &Props::new().var(0x0B, max), &[("u", 0)]),
        vec![0]
    );
    publish_from(b.addr, "u", b"x", false);
    assert_eq!(c.drain5()[0].props.all_nums(0x0B), vec![max as u32]);
}

// [MQTT-3.3.4-4] [MQTT-3.3.4-5]
#[test]
fn overlapping_subscriptions_carry_all_their_identifiers() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "sids");
    c.subscribe5(1, &Props::new().var(0x0B, 7), &[("t/#", 1)]);
    c.subscribe5(2, &Props::new().var(0x0B, 9), &[("t/+", 1)]);
    publish_from(b.addr, "t/x", b"x", false);
    let got = c.drain5();
    let mut ids: Vec<u32> = got.iter().flat_map(|m| m.props.all_nums(0x0B)).collect();
    ids.sort();
    assert_eq!(ids, vec![7, 9], "{got:?}");
    if got.len() == 2 {
        assert!(got.iter().all(|m| m.props.all_nums(0x0B).len() == 1));
    }
}

// Subscription Identifier 0, or given twice: Protocol Error (no id).
#[test]
fn subscription_identifier_zero_or_twice_is_a_protocol_error() {
    let b = TestBroker::start();
    let zero = Props::new().var(0x0B, 0);
    assert_disconnects(b.addr, &subscribe5(1, &zero, &[("t", 1)]), 0x82);
    let twice = Props::new().var(0x0B, 1).var(0x0B, 2);
    assert_disconnects(b.addr, &subscribe5(1, &twice, &[("t", 1)]), 0x82);
}

// ------------------------------------------------- shared subscriptions

// [MQTT-3.8.3-4]
#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let b = TestBroker::start();
    assert_disconnects(
        b.addr,
        &subscribe5(1, &no_props(), &[("$share/g/t", 0x05)]),
        0x82,
    );
}

// [MQTT-4.8.2-1] [MQTT-4.8.2-2]
#[test]
fn invalid_share_names_are_refused() {
    let b = TestBroker::start();
    for filter in ["$share//t", "$share/g+/t", "$share/g"] {
        let mut c = Raw::v5(b.addr, &cid5("share"));
        c.send(&subscribe5(1, &no_props(), &[(filter, 1)]));
        match c.read_packet().expect("SUBACK or DISCONNECT") {
            (0xE0, body) => assert!([0x81, 0x82, 0x8F].contains(&parse_reason(&body).0)),
            (0x90, body) => assert_eq!(body.last(), Some(&0x8F)),
            other => panic!("unexpected {other:02x?}"),
        }
    }
}

// [MQTT-4.8.2-3]
#[test]
fn each_member_gets_its_granted_qos_and_one_copy_in_total() {
    let b = TestBroker::start();
    publish_from(b.addr, "t", b"retained", true);
    let mut a = Raw::v5(b.addr, "share-a");
    a.sub5("$share/g/t", 1);
    let mut c = Raw::v5(b.addr, "share-b");
    c.sub5("$share/g/t", 2);
    let mut p = Raw::v5(b.addr, "share-pub");
    for i in 1..=20u16 {
        p.pub5("t", &i.to_be_bytes(), 2, i, &no_props());
    }
    let (got_a, got_c) = (a.drain5(), c.drain5());
    assert!(got_a.iter().all(|m| m.qos == 1 && !m.retain));
    assert!(got_c.iter().all(|m| m.qos == 2 && !m.retain));
    assert_eq!(
        got_a.len() + got_c.len(),
        20,
        "each message once, no retained"
    );
}

// [MQTT-4.8.2-4] [MQTT-4.8.2-5]
#[test]
fn interrupted_shared_qos2_delivery_stays_with_its_client() {
    let b = TestBroker::start();
    let connect = Connect5::new("share-q2").clean(false).expiry(60);
    let (mut a, _) = Raw::mqtt5(b.addr, &connect);
    a.sub5("$share/g/t", 2);
    let mut other = Raw::v5(b.addr, "share-other");
    let mut p = Raw::v5(b.addr, "share-q2-pub");
    p.pub5("t", b"m", 2, 1, &no_props());
    // Whoever got it: make it A by joining B only now.
    let m = a.read_publish5();
    sessions::kill(a);
    other.sub5("$share/g/t", 2);
    assert!(other.drain5().is_empty(), "not given to another member");
    let (mut a, _) = Raw::mqtt5(b.addr, &connect);
    let again = a.read_publish5();
    assert_eq!((again.pkid, again.dup), (m.pkid, true));
}

// [MQTT-4.8.2-6]
#[test]
fn a_refused_shared_message_is_not_redirected() {
    let b = TestBroker::start();
    let mut a = Raw::v5(b.addr, "share-refuse");
    a.sub5("$share/g/t", 1);
    publish_from(b.addr, "t", b"m", false);
    let m = a.read_publish5();
    a.send(&[0x40, 0x03, (m.pkid >> 8) as u8, m.pkid as u8, 0x80]);
    let mut late = Raw::v5(b.addr, "share-late");
    late.sub5("$share/g/t", 1);
    assert!(late.drain5().is_empty());
}
