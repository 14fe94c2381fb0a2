//! Raw-byte conformance tests for CONNECT and CONNACK in MQTT 5.0: the
//! first packet, protocol name and version, connect flags, payload fields,
//! client identifiers, what CONNACK announces, and refusals.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids
//! (every file named `*v5*` cites 5.0 ids; see tests/coverage.rs).

mod common;
use common::sessions::{field, AuthBroker};
use common::v5::*;
use common::*;
use std::net::SocketAddr;

/// CONNECT with this raw body after the fixed header.
fn connect_body(body: &[u8]) -> Vec<u8> {
    packet(0x10, body)
}

/// Protocol name, version 5, flags, Keep Alive 60 and an empty property
/// block; the payload follows.
fn head(flags: u8) -> Vec<u8> {
    let mut b = field(b"MQTT");
    b.extend([5, flags, 0, 60, 0]);
    b
}

/// The CONNECT is not acceptable: closed, no CONNACK or only a refusing
/// one (code >= 0x80), never a DISCONNECT [MQTT-3.14.0-1].
fn assert_not_accepted(addr: SocketAddr, bytes: &[u8]) {
    let mut c = Raw::connect(addr);
    c.send(bytes);
    if let Some((first, body)) = c.read_reply("close or a refusing CONNACK") {
        assert_eq!(first, 0x20, "only a CONNACK may answer: {first:#04x}");
        let ack = parse_connack5(&body);
        assert!(ack.code >= 0x80, "refusal code {:#04x}", ack.code);
        c.expect_closed();
    }
}

// [MQTT-3.1.0-1]
#[test]
fn first_packet_other_than_connect_closes_without_answer() {
    let b = TestBroker::start();
    for first in [
        &[0xC0, 0x00][..],
        &publish5("t", b"x", 0, 0, false, &no_props()),
    ] {
        let mut c = Raw::connect(b.addr);
        c.send(first);
        c.expect_closed();
    }
}

// [MQTT-3.1.0-2] [MQTT-3.2.0-2] [MQTT-4.13.1-1]
#[test]
fn second_connect_gets_disconnect_0x82_and_no_second_connack() {
    let b = TestBroker::start();
    let connect = Connect5::new("twice");
    let (mut c, _) = Raw::mqtt5(b.addr, &connect);
    c.violate(&connect.bytes(), 0x82);
}

// [MQTT-3.1.2-1] [MQTT-3.14.0-1]
#[test]
fn unknown_protocol_name_closes_without_connack() {
    let b = TestBroker::start();
    let mut body = field(b"MQTX");
    body.extend([5, 0x02, 0, 60, 0]);
    body.extend(field(b"a"));
    let mut c = Raw::connect(b.addr);
    c.send(&connect_body(&body));
    c.expect_closed();
}

// [MQTT-3.1.2-2] [MQTT-3.2.2-7]
#[test]
fn unsupported_protocol_version_is_refused_then_closed() {
    let b = TestBroker::start();
    let mut body = field(b"MQTT");
    body.extend([6, 0x02, 0, 60, 0]);
    body.extend(field(b"a"));
    let mut c = Raw::connect(b.addr);
    c.send(&connect_body(&body));
    // The 3.x form, which any client reads (mosquitto answers the same).
    c.expect(&[0x20, 0x02, 0x00, 0x01]);
    c.expect_closed();
}

// [MQTT-3.1.2-3] [MQTT-3.1.4-1]
#[test]
fn reserved_connect_flag_is_malformed() {
    let b = TestBroker::start();
    let mut body = head(0x03);
    body.extend(field(b"a"));
    assert_not_accepted(b.addr, &connect_body(&body));
}

// [MQTT-3.1.2-9] [MQTT-3.1.2-11] [MQTT-3.1.2-12] [MQTT-3.1.2-13] [MQTT-3.1.4-1]
#[test]
fn will_flags_must_match_the_will_fields() {
    let b = TestBroker::start();
    // Will Flag without Will Properties, Topic and Payload.
    let mut body = head(0x06);
    body.extend(field(b"a"));
    assert_not_accepted(b.addr, &connect_body(&body));
    // Will QoS 1 / Will Retain without the Will Flag.
    for flags in [0x0A, 0x22] {
        let mut body = head(flags);
        body.extend(field(b"a"));
        assert_not_accepted(b.addr, &connect_body(&body));
    }
    // Will QoS 3.
    let mut will = Connect5::new("a").will(Will5::new("w", b"x"));
    assert_not_accepted(b.addr, &will.bytes_with_flags(0x1E));
    // Control: a proper Will is accepted.
    will.will.as_mut().unwrap().qos = 1;
    Raw::mqtt5(b.addr, &will).0.ping();
}

// [MQTT-3.1.2-16] [MQTT-3.1.2-17] [MQTT-3.1.2-18] [MQTT-3.1.2-19]
#[test]
fn user_name_and_password_fields_follow_their_flags() {
    let b = TestBroker::start();
    // User Name Flag 0 with a surplus field.
    let mut body = head(0x02);
    body.extend(field(b"a"));
    body.extend(field(b"u"));
    assert_not_accepted(b.addr, &connect_body(&body));
    // User Name Flag 1, the payload ends after the ClientId.
    let mut body = head(0x82);
    body.extend(field(b"a"));
    assert_not_accepted(b.addr, &connect_body(&body));
    // Password Flag 0 with User Name and a surplus field.
    let mut body = head(0x82);
    body.extend(field(b"a"));
    body.extend(field(b"u"));
    body.extend(field(b"p"));
    assert_not_accepted(b.addr, &connect_body(&body));
    // Password Flag 1 with a User Name only.
    let mut body = head(0xC2);
    body.extend(field(b"a"));
    body.extend(field(b"u"));
    assert_not_accepted(b.addr, &connect_body(&body));
    // New in 5.0: a Password without a User Name is allowed.
    let (mut c, _) = Raw::mqtt5(b.addr, &Connect5::new("a").password(b"p"));
    c.ping();
}

// [MQTT-3.1.3-1] [MQTT-3.1.2-7]
#[test]
fn payload_fields_in_order_are_all_used() {
    let b = AuthBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0);
    let will = Will5 {
        props: Props::new().text(0x03, b"text/plain"),
        ..Will5::new("w", b"gone")
    };
    let connect = Connect5::new("all6")
        .will(will)
        .user(b"ursula")
        .password(b"secret");
    let (c, _) = Raw::mqtt5(b.addr, &connect);
    let seen = b.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.0, "all6");
    assert_eq!(seen.1.as_deref(), Some("ursula"));
    assert_eq!(seen.2.as_deref(), Some(&b"secret"[..]));
    sessions::kill(c);
    let w = obs.read_publish5();
    assert_eq!((w.topic.as_str(), &w.payload[..]), ("w", &b"gone"[..]));
    assert_eq!(w.props.bytes(0x03), Some(&b"text/plain"[..]));
}

// [MQTT-3.1.3-3] [MQTT-3.1.3-4] [MQTT-3.1.3-12]
#[test]
fn client_id_and_user_name_must_be_utf8_strings() {
    let b = TestBroker::start();
    // The CONNECT ends after its properties: no ClientId.
    assert_not_accepted(b.addr, &connect_body(&head(0x02)));
    // ClientId FF FE.
    let mut body = head(0x02);
    body.extend(field(&[0xFF, 0xFE]));
    assert_not_accepted(b.addr, &connect_body(&body));
    // User Name ED A0 80 (an encoded surrogate).
    let c = Connect5::new("a").user(&[0xED, 0xA0, 0x80]);
    assert_not_accepted(b.addr, &c.bytes());
}

// [MQTT-3.1.3-5] [MQTT-3.1.4-5] [MQTT-3.2.2-1] [MQTT-3.2.2-8]
#[test]
fn short_alphanumeric_client_ids_are_accepted_with_0x00() {
    let b = TestBroker::start();
    for id in ["abcdefghijklmnopqrstuvw", "0", "Z9y8X7"] {
        let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new(id));
        assert!(!ack.present);
        c.ping();
    }
}

// [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16]
#[test]
fn empty_client_ids_get_distinct_assigned_identifiers() {
    let b = TestBroker::start();
    let empty = Connect5::new("").clean(false).expiry(60);
    let (mut a, ack_a) = Raw::mqtt5(b.addr, &empty);
    let (mut c, ack_c) = Raw::mqtt5(b.addr, &empty);
    let id_a = ack_a
        .props
        .bytes(0x12)
        .expect("Assigned Client Identifier")
        .to_vec();
    let id_c = ack_c
        .props
        .bytes(0x12)
        .expect("Assigned Client Identifier")
        .to_vec();
    assert!(!id_a.is_empty());
    assert_ne!(id_a, id_c, "assigned identifiers are unique");
    // Neither connection was taken over by the other.
    a.ping();
    c.ping();
    // The session is kept under the assigned id.
    a.sub5("t", 1);
    a.disconnect();
    let id = String::from_utf8(id_a).unwrap();
    let (_, ack) = Raw::mqtt5(b.addr, &Connect5::new(&id).clean(false).expiry(60));
    assert!(ack.present, "the session of the assigned id is resumed");
    assert!(
        !ack.props.has(0x12),
        "no Assigned Client Identifier for a given id"
    );
}

// [MQTT-3.1.3-8] [MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-3.14.0-1]
#[test]
fn refused_empty_client_id_gets_0x85_then_close() {
    let b = TestBroker::start_with(|c| c.security.allow_zero_length_client_id = false);
    for clean in [false, true] {
        let mut c = Raw::connect(b.addr);
        c.send(&Connect5::new("").clean(clean).bytes());
        c.expect_refused5(0x85);
    }
}

// [MQTT-3.1.3-11] [MQTT-4.7.0-1] [MQTT-3.1.4-1]
#[test]
fn will_topic_must_be_a_valid_topic_name() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "#", 0);
    let bad_utf8 = Will5 {
        topic: vec![0xC3, 0x28],
        ..Will5::new("", b"x")
    };
    assert_not_accepted(b.addr, &Connect5::new("a").will(bad_utf8).bytes());
    for topic in ["w/+", "w/#", ""] {
        assert_not_accepted(
            b.addr,
            &Connect5::new("a").will(Will5::new(topic, b"x")).bytes(),
        );
    }
    assert!(obs.drain5().is_empty(), "no Will of a refused CONNECT");
}

// [MQTT-3.1.4-1] [MQTT-2.2.2-1]
#[test]
fn malformed_properties_in_connect_close_without_acceptance() {
    let b = TestBroker::start();
    // No Property Length: the ClientId's length is read as properties.
    let mut body = field(b"MQTT");
    body.extend([5, 0x02, 0, 60]);
    body.extend(field(b"a"));
    assert_not_accepted(b.addr, &connect_body(&body));
    // Session Expiry Interval inside the Will Properties.
    let will = Will5 {
        props: Props::new().four(0x11, 1),
        ..Will5::new("w", b"x")
    };
    assert_not_accepted(b.addr, &Connect5::new("a").will(will).bytes());
    // Maximum QoS (a CONNACK property) in CONNECT; Session Expiry twice;
    // Receive Maximum 0; Maximum Packet Size 0; Request Problem
    // Information 2; Authentication Data without a method.
    for props in [
        Props::new().byte(0x24, 1),
        Props::new().four(0x11, 10).four(0x11, 10),
        Props::new().two(0x21, 0),
        Props::new().four(0x27, 0),
        Props::new().byte(0x17, 2),
        Props::new().text(0x16, b"d"),
    ] {
        assert_not_accepted(b.addr, &Connect5::new("a").props(props).bytes());
    }
}

// [MQTT-3.1.4-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-3.1.4-6] [MQTT-3.14.0-1]
#[test]
fn failed_authentication_is_refused_and_nothing_after_it_is_processed() {
    let b = AuthBroker::start();
    // "p" has a session: Session Present is still 0 on the refusal.
    let keep = Connect5::new("p").clean(false).expiry(60);
    Raw::mqtt5(b.addr, &keep).0.disconnect();
    let mut bytes = keep.clone().user(b"u").password(b"bad").bytes();
    bytes.extend(publish5("r", b"kept?", 0, 0, true, &no_props()));
    let mut c = Raw::connect(b.addr);
    c.send(&bytes);
    c.expect_refused5(0x86);
    // The pipelined retained PUBLISH was not processed.
    let mut late = Raw::v5(b.addr, "late");
    late.sub5("r", 0);
    assert!(late.drain5().is_empty(), "nothing retained on r");
}

// [MQTT-3.2.0-1] [MQTT-3.1.4-5] [MQTT-2.2.2-1]
#[test]
fn connack_comes_first_and_has_a_property_block() {
    let b = TestBroker::start();
    let mut bytes = Connect5::new("first").bytes();
    bytes.extend(subscribe5(7, &no_props(), &[("t", 1)]));
    bytes.extend([0xC0, 0x00]);
    let mut c = Raw::connect(b.addr);
    c.send(&bytes);
    let ack = c.read_connack5();
    assert_eq!((ack.present, ack.code), (false, 0));
    let (first, body) = c.read_reply("SUBACK").unwrap();
    // Packet id, Property Length 0, granted QoS 1.
    assert_eq!((first, body), (0x90, vec![0, 7, 0, 1]));
    assert_eq!(c.read_packet(), Some((0xD0, vec![])));
}

// [MQTT-3.2.2-2] [MQTT-3.1.4-4]
#[test]
fn clean_start_1_answers_session_present_0() {
    let b = TestBroker::start();
    let keep = Connect5::new("p2").clean(false).expiry(60);
    Raw::mqtt5(b.addr, &keep).0.disconnect();
    let (_, ack) = Raw::mqtt5(b.addr, &Connect5::new("p2").expiry(60));
    assert!(!ack.present);
}

// [MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-3.2.2-11] [MQTT-3.2.2-12]
#[test]
fn maximum_qos_1_is_announced_and_enforced() {
    let b = TestBroker::start_with(|c| c.max_qos = midge::protocol::QoS::AtLeastOnce);
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("q1"));
    assert_eq!(ack.props.num(0x24), Some(1), "Maximum QoS 1 announced");
    // SUBSCRIBE at QoS 2 is accepted, granted 1.
    assert_eq!(c.subscribe5(1, &no_props(), &[("t", 2)]), vec![1]);
    // A QoS 2 PUBLISH: DISCONNECT 0x9B.
    c.violate(&publish5("t", b"x", 2, 9, false, &no_props()), 0x9B);
    // A Will at QoS 2: CONNACK 0x9B.
    let mut will = Will5::new("w", b"x");
    will.qos = 2;
    let mut c = Raw::connect(b.addr);
    c.send(&Connect5::new("w2").will(will).bytes());
    c.expect_refused5(0x9B);
}

// [MQTT-3.2.2-13] [MQTT-3.2.2-14]
#[test]
fn retain_unavailable_is_announced_and_enforced() {
    let b = TestBroker::start_with(|c| c.retain_available = false);
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("r0"));
    assert_eq!(ack.props.num(0x25), Some(0), "Retain Available 0");
    c.violate(&publish5("t", b"x", 0, 0, true, &no_props()), 0x9A);
    let mut will = Will5::new("w", b"x");
    will.retain = true;
    let mut c = Raw::connect(b.addr);
    c.send(&Connect5::new("wr").will(will).bytes());
    c.expect_refused5(0x9A);
}

// [MQTT-3.2.2-19] [MQTT-3.2.2-20]
#[test]
fn refusing_connack_fits_the_clients_maximum_packet_size() {
    let b = AuthBroker::start();
    let connect = Connect5::new("small")
        .props(Props::new().four(0x27, 8))
        .user(b"u")
        .password(b"bad");
    let mut c = Raw::connect(b.addr);
    c.send(&connect.bytes());
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK");
    assert_eq!(first, 0x20);
    let size = 1 + remaining_length(body.len()).len() + body.len();
    assert!(
        size <= 8,
        "CONNACK of {size} bytes, client takes 8: {body:02x?}"
    );
    let ack = parse_connack5(&body);
    assert_eq!(ack.code, 0x86);
    assert!(!ack.props.has(0x26), "no User Property");
    c.expect_closed();
}

// [MQTT-3.1.2-28]
#[test]
fn response_information_only_when_requested() {
    let b = TestBroker::start();
    let (_, ack) = Raw::mqtt5(b.addr, &Connect5::new("rr0"));
    assert!(!ack.props.has(0x1A), "no Response Information unasked");
    let asked = Connect5::new("rr0").props(Props::new().byte(0x19, 0));
    let (_, ack) = Raw::mqtt5(b.addr, &asked);
    assert!(!ack.props.has(0x1A), "no Response Information with 19 00");
    // Asked: it may come (midge sends none); the CONNECT is accepted.
    let asked = Connect5::new("rr1").props(Props::new().byte(0x19, 1));
    Raw::mqtt5(b.addr, &asked).0.ping();
}

// [MQTT-3.1.2-29]
#[test]
fn request_problem_information_0_keeps_acks_bare() {
    let acl = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("v5-rpi.acl");
    std::fs::write(&acl, "topic readwrite ok/#\n").unwrap();
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let connect = Connect5::new("quiet").props(Props::new().byte(0x17, 0));
    let (mut c, _) = Raw::mqtt5(b.addr, &connect);
    c.send(&subscribe5(3, &no_props(), &[("secret", 1)]));
    let (first, body) = c.read_reply("SUBACK").unwrap();
    assert_eq!(
        (first, body),
        (0x90, vec![0, 3, 0, 0x87]),
        "refused, no properties"
    );
    c.send(&publish5("secret", b"x", 1, 4, false, &no_props()));
    c.expect(&[0x40, 0x03, 0x00, 0x04, 0x87]);
    c.send(&unsubscribe5(5, &["secret"]));
    c.expect(&[0xB0, 0x04, 0x00, 0x05, 0x00, 0x11]);
}

// [MQTT-4.12.0-1] [MQTT-4.12.0-6]
#[test]
fn unsupported_authentication_method_is_refused_with_0x8c() {
    let b = TestBroker::start();
    let method = Connect5::new("am").props(Props::new().text(0x15, b"X"));
    let mut c = Raw::connect(b.addr);
    c.send(&method.bytes());
    let ack = c.expect_refused5(0x8C);
    assert!(!ack.props.has(0x15));
    // Without a method: no Authentication Method in CONNACK, no AUTH ever.
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("plain"));
    assert!(!ack.props.has(0x15) && !ack.props.has(0x16));
    c.sub5("t", 1);
    let mut p = Raw::v5(b.addr, "plain-pub");
    assert_eq!(p.pub5("t", b"x", 1, 1, &no_props()), 0);
    // drain5 fails on any packet but PUBLISH, PUBREL and PINGRESP.
    assert_eq!(c.drain5().len(), 1);
}

// What CONNACK announces by default: the limits midge sets and the
// features it lacks; nothing it has no reason to send.
#[test]
fn connack_announces_midges_terms() {
    let b = TestBroker::start();
    let (_, ack) = Raw::mqtt5(b.addr, &Connect5::new("terms"));
    assert_eq!(ack.props.num(0x22), Some(10), "Topic Alias Maximum");
    assert_eq!(ack.props.num(0x21), Some(1000), "Receive Maximum");
    // Shared subscriptions are available: absent means available.
    for absent in [0x11, 0x12, 0x13, 0x15, 0x1A, 0x24, 0x25, 0x2A] {
        assert!(!ack.props.has(absent), "property {absent:#04x} unexpected");
    }
}
