//! Raw-byte conformance tests for CONNECT in MQTT 3.1.1: the first packet,
//! protocol name and level, the connect flags, the payload fields and the
//! client identifier, and what a refused CONNECT gets.
//!
//! Sessions, the Will, keep alive and takeover have their own test files
//! (conformance_sessions.rs, conformance_will_keepalive.rs).
//!
//! Each test names the statement ids it checks in the comment right above
//! the test.

mod common;
use common::sessions::*;
use common::*;

// ------------------------------------------------------------- CONNECT

// [MQTT-3.1.0-1]
#[test]
fn first_packet_other_than_connect_closes_without_response() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "#", 0);
    // PINGREQ first: no PINGRESP, just a close.
    assert_rejected_without_connack(b.addr, &[0xC0, 0x00]);
    // PUBLISH first: closed, and nothing is routed.
    assert_rejected_without_connack(b.addr, &publish_packet("t", b"x", 0, 0, false, false));
    // SUBSCRIBE first: closed, no SUBACK.
    assert_rejected_without_connack(b.addr, &subscribe_packet(1, &[("t", 0)]));
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.0-2]
#[test]
fn second_connect_is_a_protocol_violation() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt(b.addr, "twice", true);
    c.send(&connect_packet("twice", true, 60));
    c.expect_closed();
    // Also for a second CONNECT with another client id.
    let (mut c, _) = Raw::mqtt(b.addr, "twice2", true);
    c.send(&connect_packet("other", true, 60));
    c.expect_closed();
}

// [MQTT-3.1.2-1] [MQTT-3.2.2-6] [MQTT-3.1.4-1]
#[test]
fn unknown_protocol_name_closes_without_connack() {
    let b = TestBroker::start();
    let id = field(b"a");
    for name in [&b"MQTX"[..], b"mqtt", b"MQIsdP", b"MQT", b""] {
        assert_rejected_without_connack(b.addr, &connect_raw(name, 4, 0x02, 60, &id));
    }
    // The server still serves proper clients.
    assert_accepted(b.addr, &connect_packet("a", true, 60));
}

// [MQTT-3.1.2-2] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
#[test]
fn unsupported_protocol_level_gets_connack_1_then_close() {
    let b = TestBroker::start();
    // "p" has a stored session: Session Present must still be 0 on refusal.
    let (mut p, _) = Raw::mqtt(b.addr, "p", false);
    p.send(&[0xE0, 0x00]);
    p.expect_closed();
    let id = field(b"p");
    for level in [0u8, 3, 6, 0xFF] {
        assert_refused_with(b.addr, &connect_raw(b"MQTT", level, 0x00, 60, &id), 0x01);
    }
    // MQIsdp with a level other than 3 is refused the same way.
    assert_refused_with(b.addr, &connect_raw(b"MQIsdp", 4, 0x00, 60, &id), 0x01);
    // The refusals did not touch the stored session.
    let (_, present) = Raw::mqtt(b.addr, "p", false);
    assert!(present, "session of p survives refused CONNECTs");
}

// A real version 5 CONNECT (with properties, a Will and its Will
// Properties) on the same listener as 3.x clients is accepted with an
// MQTT 5 CONNACK: reason code 0 and a property block.
#[test]
fn mqtt5_connect_with_properties_is_accepted_beside_3x() {
    let b = TestBroker::start();
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[5, 0x06, 0, 60]); // Clean Start, Will (QoS 0)
    body.extend_from_slice(&[5, 0x11, 0, 0, 0, 10]); // Session Expiry 10
    body.extend_from_slice(&field(b"v5"));
    body.extend_from_slice(&[2, 0x01, 1]); // Will: Payload Format UTF-8
    body.extend_from_slice(&field(b"will/t"));
    body.extend_from_slice(&field(b"bye"));
    let mut c = Raw::connect(b.addr);
    c.send(&packet(0x10, &body));
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK, got EOF");
    assert_eq!(first, 0x20, "CONNACK");
    assert_eq!(&body[..2], &[0x00, 0x00], "no session, Success");
    assert!(body.len() > 2, "an MQTT 5 CONNACK has a property block");
    assert_accepted(b.addr, &connect_packet("a", true, 60));
}

// [MQTT-3.1.2-3] [MQTT-3.1.4-1]
#[test]
fn reserved_connect_flag_closes_without_connack() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0x03, &[b"a"]));
    assert_rejected_without_connack(b.addr, &connect_fields(0x01, &[b"a"]));
    // Control: the same CONNECT with the bit clear is accepted.
    assert_accepted(b.addr, &connect_fields(0x02, &[b"a"]));
}

// [MQTT-3.1.2-9] [MQTT-3.1.4-1]
#[test]
fn will_flag_requires_will_topic_and_message() {
    let b = TestBroker::start();
    // Will Flag, payload holds only the client id.
    assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"a"]));
    // Will Topic present, Will Message missing.
    assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"a", b"w"]));
    // Will Topic length prefix cut short.
    let mut p = field(b"a");
    p.push(0x00);
    assert_rejected_without_connack(b.addr, &connect_raw(b"MQTT", 4, 0x06, 60, &p));
    // Control: both present (the Will Message may be empty).
    assert_accepted(b.addr, &connect_fields(0x06, &[b"a", b"w", b""]));
}

// [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
#[test]
fn will_qos_and_retain_require_will_flag() {
    let b = TestBroker::start();
    // Will Retain without Will Flag.
    assert_rejected_without_connack(b.addr, &connect_fields(0x22, &[b"a"]));
    // Will QoS 1 / 2 without Will Flag.
    assert_rejected_without_connack(b.addr, &connect_fields(0x0A, &[b"a"]));
    assert_rejected_without_connack(b.addr, &connect_fields(0x12, &[b"a"]));
    // Will fields in the payload without Will Flag: surplus bytes.
    assert_rejected_without_connack(b.addr, &connect_fields(0x02, &[b"a", b"w", b"m"]));
    // Control: with the Will Flag, the same bits are fine.
    assert_accepted(b.addr, &connect_fields(0x2E, &[b"a", b"w", b"m"]));
}

// [MQTT-3.1.2-14]
#[test]
fn will_qos_3_closes_without_connack() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0x1E, &[b"a", b"w", b"m"]));
    // Control: Will QoS 2 is valid.
    assert_accepted(b.addr, &connect_fields(0x16, &[b"a", b"w", b"m"]));
}

// [MQTT-3.1.2-18]
#[test]
fn user_name_flag_0_means_no_user_name() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0x02, &[b"a", b"user"]));
}

// [MQTT-3.1.2-19]
#[test]
fn user_name_flag_1_requires_user_name() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0x82, &[b"a"]));
    // Control: with the user name present it is accepted.
    assert_accepted(b.addr, &connect_fields(0x82, &[b"a", b"user"]));
}

// [MQTT-3.1.2-20]
#[test]
fn password_flag_0_means_no_password() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0x82, &[b"a", b"user", b"pw"]));
}

// [MQTT-3.1.2-21]
#[test]
fn password_flag_1_requires_password() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0xC2, &[b"a", b"user"]));
    // Control: user name and password present.
    assert_accepted(b.addr, &connect_fields(0xC2, &[b"a", b"user", b"pw"]));
}

// [MQTT-3.1.2-22]
#[test]
fn password_without_user_name_closes_without_connack() {
    let b = TestBroker::start();
    assert_rejected_without_connack(b.addr, &connect_fields(0x42, &[b"a", b"pw"]));
    assert_rejected_without_connack(b.addr, &connect_fields(0x42, &[b"a"]));
}

// [MQTT-3.1.3-1] [MQTT-3.1.2-8]
#[test]
fn payload_fields_in_order_are_all_used() {
    let b = AuthBroker::start();
    let mut obs = observer(b.addr, "obs", "will/topic", 0);
    // ClientId, Will Topic, Will Message, User Name, Password.
    let bytes = connect_fields(
        0xC6,
        &[b"cid", b"will/topic", b"will message", b"alice", b"secret"],
    );
    let c = assert_accepted(b.addr, &bytes);
    {
        let seen = b.seen.lock().unwrap();
        let last = seen.last().expect("authenticator called");
        assert_eq!(last.0, "cid");
        assert_eq!(last.1.as_deref(), Some("alice"));
        assert_eq!(last.2.as_deref(), Some(&b"secret"[..]));
    }
    kill(c);
    let will = obs.read_publish();
    assert_eq!(will.topic, "will/topic");
    assert_eq!(will.payload, b"will message");
}

// [MQTT-3.1.3-3] [MQTT-3.1.4-1]
#[test]
fn missing_client_id_closes_without_connack() {
    let b = TestBroker::start();
    // Remaining Length ends right after the variable header.
    assert_rejected_without_connack(b.addr, &connect_raw(b"MQTT", 4, 0x02, 60, &[]));
    // Only one byte of the length prefix.
    assert_rejected_without_connack(b.addr, &connect_raw(b"MQTT", 4, 0x02, 60, &[0x00]));
    // Length prefix longer than the rest of the packet.
    assert_rejected_without_connack(b.addr, &connect_raw(b"MQTT", 4, 0x02, 60, &[0, 5, b'a']));
}

// [MQTT-3.1.3-4]
#[test]
fn client_id_must_be_well_formed_utf8() {
    let b = TestBroker::start();
    for bad in [
        &[0xFF, 0xFE][..],
        &[0xED, 0xA0, 0x80],
        &[0xC3, 0x28],
        &[b'a', 0x00],
    ] {
        assert_rejected_without_connack(b.addr, &connect_fields(0x02, &[bad]));
    }
    // Control: non-ASCII but well-formed UTF-8 is fine.
    assert_accepted(b.addr, &connect_fields(0x02, &["é€".as_bytes()]));
}

// [MQTT-3.1.3-5] [MQTT-3.1.4-4]
#[test]
fn short_alphanumeric_client_ids_are_accepted() {
    let b = TestBroker::start();
    for id in ["abcdefghijklmnopqrstuvw", "0", "ABCxyz0123456789", "Z"] {
        let mut c = open_and_send(b.addr, &connect_packet(id, true, 60));
        c.expect(&[0x20, 0x02, 0x00, 0x00]);
        c.ping();
    }
    // CleanSession 0 too.
    let mut c = open_and_send(
        b.addr,
        &connect_packet("ABCDEFGHIJKLMNOPQRSTUVW", false, 60),
    );
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.ping();
}

// [MQTT-3.1.3-6]
#[test]
fn empty_client_ids_get_distinct_sessions() {
    let b = TestBroker::start();
    let (mut c1, sp1) = Raw::mqtt(b.addr, "", true);
    let (mut c2, sp2) = Raw::mqtt(b.addr, "", true);
    assert!(!sp1 && !sp2);
    c1.subscribe(1, &[("e/1", 0)]);
    c2.subscribe(1, &[("e/2", 0)]);
    let (mut p, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut p, "e/1", b"one", 0, 0, false);
    publish(&mut p, "e/2", b"two", 0, 0, false);
    // Neither was taken over by the other; each gets only its own topic.
    let m1 = c1.read_publish();
    assert_eq!((m1.topic.as_str(), &m1.payload[..]), ("e/1", &b"one"[..]));
    let m2 = c2.read_publish();
    assert_eq!((m2.topic.as_str(), &m2.payload[..]), ("e/2", &b"two"[..]));
    assert_nothing_delivered(&mut c1);
    assert_nothing_delivered(&mut c2);
}

// [MQTT-3.1.3-7] [MQTT-3.1.3-8] [MQTT-3.1.3-9] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
#[test]
fn empty_client_id_with_clean_session_0_is_refused() {
    let b = TestBroker::start();
    assert_refused_with(
        b.addr,
        &[
            0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0, 0x3C, 0, 0,
        ],
        0x02,
    );
    // With a Will too: refused, and the Will is never published.
    let mut obs = observer(b.addr, "obs", "w", 0);
    assert_refused_with(b.addr, &connect_fields(0x04, &[b"", b"w", b"x"]), 0x02);
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.3-9]
#[test]
fn empty_client_id_refused_when_not_allowed() {
    let b = TestBroker::start_with(|c| c.security.allow_zero_length_client_id = false);
    assert_refused_with(b.addr, &connect_packet("", true, 60), 0x02);
    assert_refused_with(b.addr, &connect_packet("", false, 60), 0x02);
    assert_accepted(b.addr, &connect_packet("x", true, 60));
}

// [MQTT-3.1.3-10]
#[test]
fn will_topic_must_be_well_formed_utf8() {
    let b = TestBroker::start();
    for bad in [&[0xC3, 0x28][..], &[0xED, 0xA0, 0x80], &[b'w', 0x00]] {
        assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"a", bad, b"m"]));
    }
}

// [MQTT-3.1.3-11]
#[test]
fn user_name_must_be_well_formed_utf8() {
    let b = TestBroker::start();
    for bad in [&[0xED, 0xA0, 0x80][..], &[0xFF], &[b'u', 0x00]] {
        assert_rejected_without_connack(b.addr, &connect_fields(0x82, &[b"a", bad]));
        assert_rejected_without_connack(b.addr, &connect_fields(0xC2, &[b"a", bad, b"pw"]));
    }
}

// [MQTT-3.1.4-1] [MQTT-3.2.2-6]
#[test]
fn malformed_connect_gets_no_connack() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "#", 0);
    // Will Flag set, Remaining Length too short for the Will fields.
    let full = connect_fields(0x06, &[b"a", b"w", b"gone"]);
    let mut short = full[..full.len() - 3].to_vec();
    short[1] -= 3;
    assert_rejected_without_connack(b.addr, &short);
    // Invalid Will Topic (wildcard, empty).
    assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"a", b"w/#", b"m"]));
    assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"a", b"", b"m"]));
    // Trailing byte after the last field.
    let mut p = field(b"a");
    p.push(0x00);
    assert_rejected_without_connack(b.addr, &connect_raw(b"MQTT", 4, 0x02, 60, &p));
    // Reserved fixed-header flags on CONNECT.
    let mut bad = connect_packet("a", true, 60);
    bad[0] = 0x11;
    assert_rejected_without_connack(b.addr, &bad);
    // None of these Wills was stored, so none is published.
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.4-5]
#[test]
fn nothing_after_a_refused_connect_is_processed() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "r", 0);
    // Refused for the client id, with a retained PUBLISH in the same write.
    let mut bytes = connect_packet("", false, 60);
    bytes.extend(publish_packet("r", b"bad", 0, 0, true, false));
    bytes.extend([0xC0, 0x00]);
    let mut c = open_and_send(b.addr, &bytes);
    c.expect(&[0x20, 0x02, 0x00, 0x02]);
    c.expect_closed();
    // Refused for the protocol level, same again.
    let mut bytes = connect_raw(b"MQTT", 3, 0x02, 60, &field(b"a"));
    bytes.extend(publish_packet("r", b"bad", 1, 1, true, false));
    let mut c = open_and_send(b.addr, &bytes);
    c.expect(&[0x20, 0x02, 0x00, 0x01]);
    c.expect_closed();
    // Not routed, not stored as retained.
    assert_nothing_delivered(&mut obs);
    let mut late = observer(b.addr, "late", "r", 1);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.2.0-1] [MQTT-3.1.4-4]
#[test]
fn connack_is_the_first_packet_the_server_sends() {
    let b = TestBroker::start();
    let mut bytes = connect_packet("first", true, 60);
    bytes.extend(subscribe_packet(7, &[("t", 1)]));
    bytes.extend([0xC0, 0x00]);
    let mut c = open_and_send(b.addr, &bytes);
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.expect(&[0x90, 0x03, 0x00, 0x07, 0x01]);
    c.expect(&[0xD0, 0x00]);
}

// [MQTT-3.2.0-1]
#[test]
fn connack_precedes_messages_waiting_in_the_session() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt(b.addr, "waiting", false);
    s.subscribe(1, &[("t", 1)]);
    s.send(&[0xE0, 0x00]);
    s.expect_closed();
    let (mut p, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut p, "t", b"queued", 1, 1, false);
    let mut s = open_and_send(b.addr, &connect_packet("waiting", false, 60));
    s.expect(&[0x20, 0x02, 0x01, 0x00]);
    let m = s.read_publish();
    assert_eq!(m.payload, b"queued");
}

// MQTT 3.1 compatibility ("MQIsdp", level 3).
// [MQTT-3.1.3-9]
#[test]
fn mqtt_3_1_clients_are_accepted_without_session_present() {
    let b = TestBroker::start();
    let v31 = |id: &[u8], flags: u8| connect_raw(b"MQIsdp", 3, flags, 60, &field(id));
    // First connect, CleanSession 0.
    let mut c = open_and_send(b.addr, &v31(b"old", 0x00));
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.subscribe(1, &[("t31", 1)]);
    c.send(&[0xE0, 0x00]);
    c.expect_closed();
    // Resumed session: still Session Present 0, but the subscription is kept.
    let mut c = open_and_send(b.addr, &v31(b"old", 0x00));
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    let (mut p, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut p, "t31", b"hi", 1, 1, false);
    let m = c.read_publish();
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("t31", &b"hi"[..]));
    // Empty client id: 0x02 whatever CleanSession says.
    assert_refused_with(b.addr, &v31(b"", 0x02), 0x02);
    assert_refused_with(b.addr, &v31(b"", 0x00), 0x02);
    // Ids longer than 23 characters are accepted.
    let mut c = open_and_send(b.addr, &v31(b"a-rather-long-mqtt31-client-id", 0x02));
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.ping();
}

/// MQTT 3.1 set DUP on a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE (their
/// fixed header carried DUP and QoS 1); 3.1.1 fixed those flags at 0010
/// [MQTT-3.6.1-1]. A 3.1 client's resend is answered, as mosquitto does; a
/// 3.1.1 client's is still a protocol violation (conformance_framing).
#[test]
fn mqtt_3_1_resends_with_dup_set_are_answered() {
    let b = TestBroker::start();
    let mut c = open_and_send(
        b.addr,
        &connect_raw(b"MQIsdp", 3, 0x02, 60, &field(b"v31dup")),
    );
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.send(&publish_packet("t", b"x", 2, 7, false, false));
    c.expect(&[0x50, 0x02, 0x00, 0x07]);
    c.send(&[0x6A, 0x02, 0x00, 0x07]); // PUBREL, DUP set
    c.expect(&[0x70, 0x02, 0x00, 0x07]);
    let mut sub = subscribe_packet(8, &[("t", 1)]);
    sub[0] |= 0x08; // SUBSCRIBE, DUP set
    c.send(&sub);
    c.expect(&[0x90, 0x03, 0x00, 0x08, 0x01]);
    let mut unsub = unsubscribe_packet(9, &["t"]);
    unsub[0] |= 0x08; // UNSUBSCRIBE, DUP set
    c.send(&unsub);
    c.expect(&[0xB0, 0x02, 0x00, 0x09]);
    c.ping();
}
