//! Raw-byte conformance tests for PUBLISH and its acknowledgements in MQTT
//! 5.0: strings and flags, packet identifiers, the Application Message's
//! properties forwarded unaltered, retained messages, the QoS exchanges as
//! receiver and sender, and topic rules.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids.

mod common;
use common::v5::*;
use common::*;

/// A publisher and a subscriber (options `opts`) to `filter`.
fn pair(addr: std::net::SocketAddr, filter: &str, opts: u8) -> (Raw, Raw) {
    (Raw::v5(addr, &cid5("pub")), sub_v5(addr, filter, opts))
}

// [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-3.3.2-1] [MQTT-3.8.3-1] [MQTT-3.10.3-1] [MQTT-4.7.3-2]
#[test]
fn ill_formed_strings_are_malformed_packets() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "#", 0);
    // SUBSCRIBE filter "a" + encoded surrogate.
    let mut bad_filter = vec![0x82, 0x0A, 0x00, 0x01, 0x00, 0x00, 0x04, 0x61, 0xED, 0xA0];
    bad_filter.extend([0x80, 0x00]);
    assert_disconnects(b.addr, &bad_filter, 0x81);
    // UNSUBSCRIBE filter ED B0 80.
    let bad_unsub = [0xA2, 0x08, 0x00, 0x02, 0x00, 0x00, 0x03, 0xED, 0xB0, 0x80];
    assert_disconnects(b.addr, &bad_unsub, 0x81);
    // PUBLISH topic C0 AF; topic "a\0b"; topic FF.
    assert_disconnects(b.addr, &[0x30, 0x05, 0x00, 0x02, 0xC0, 0xAF, 0x00], 0x81);
    assert_disconnects(
        b.addr,
        &[0x30, 0x06, 0x00, 0x03, 0x61, 0x00, 0x62, 0x00],
        0x81,
    );
    assert_disconnects(b.addr, &[0x30, 0x04, 0x00, 0x01, 0xFF, 0x00], 0x81);
    // Content Type FF inside the properties.
    let bad_ct = publish5(
        "t",
        b"x",
        0,
        0,
        false,
        &Props::new().raw(&[0x03, 0x00, 0x01, 0xFF]),
    );
    assert_disconnects(b.addr, &bad_ct, 0x81);
    assert!(obs.drain5().is_empty(), "nothing ill-formed was delivered");
}

// [MQTT-1.5.7-1]
#[test]
fn user_property_halves_must_be_utf8_strings() {
    let b = TestBroker::start();
    let bad_name = Props::new().raw(&[0x26, 0x00, 0x02, 0xC0, 0x80, 0x00, 0x00]);
    assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &bad_name), 0x81);
    let bad_value = Props::new().raw(&[0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0xFF]);
    assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &bad_value), 0x81);
}

// [MQTT-1.5.4-3] [MQTT-4.7.3-4]
#[test]
fn byte_order_mark_is_kept_as_a_character() {
    let b = TestBroker::start();
    let mut plain = sub_v5(b.addr, "a", 0);
    let mut bom = sub_v5(b.addr, "\u{FEFF}a", 0);
    let mut p = Raw::v5(b.addr, "bom-pub");
    p.pub5("\u{FEFF}a", b"x", 0, 0, &no_props());
    assert!(plain.drain5().is_empty());
    let got = bom.drain5();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic.as_bytes(), b"\xEF\xBB\xBFa");
}

// [MQTT-2.1.3-1] [MQTT-3.6.1-1] [MQTT-4.13.1-1]
#[test]
fn wrong_fixed_header_flags_are_malformed() {
    let b = TestBroker::start();
    for bytes in [
        &[0x41, 0x02, 0x00, 0x01][..],
        &[0x51, 0x02, 0x00, 0x01],
        &[0x60, 0x02, 0x00, 0x01],
        &[0x71, 0x02, 0x00, 0x01],
        &[0xC1, 0x00],
    ] {
        assert_disconnects(b.addr, bytes, 0x81);
    }
    // Other clients are not affected.
    Raw::v5(b.addr, "still-fine").ping();
}

// [MQTT-2.1.3-1] [MQTT-2.2.1-2] [MQTT-4.3.1-1] [MQTT-3.3.1-2]
#[test]
fn server_packets_carry_the_reserved_flag_values() {
    let b = TestBroker::start();
    let mut s = Raw::v5(b.addr, "flags-sub");
    s.sub5("t", 2);
    let mut p = Raw::v5(b.addr, "flags-pub");
    for qos in 0..3 {
        p.pub5("t", b"m", qos, 1 + qos as u16, &no_props());
    }
    s.send(&[0xC0, 0x00]);
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let (first, body) = s.read_packet().unwrap();
        if first == 0x30 {
            // QoS 0: the Property Length follows the topic directly.
            assert_eq!(&body[..4], &[0x00, 0x01, b't', 0x00]);
        }
        firsts.push(first);
    }
    assert_eq!(firsts, vec![0x30, 0x32, 0x34, 0xD0]);
    s.send(&[0x50, 0x02, 0x00, 0x02]);
    s.expect(&[0x62, 0x02, 0x00, 0x02]);
}

/// A QoS 0 copy takes its subscriber's layout (MQTT 5's with a Property
/// Length) whichever level its publisher spoke: it is the received bytes
/// only where they are what the broker would write.
#[test]
fn qos0_copies_take_each_subscribers_layout() {
    let b = TestBroker::start();
    let mut sub5 = sub_v5(b.addr, "t", 0);
    let mut sub4 = common::conformance::subscriber(b.addr, &[("t", 0)]);
    let mut p5 = Raw::v5(b.addr, &cid5("pub5"));
    p5.send(&publish5("t", b"hi", 0, 0, false, &no_props()));
    sub5.expect(&[0x30, 0x06, 0x00, 0x01, b't', 0x00, b'h', b'i']);
    sub4.expect(&[0x30, 0x05, 0x00, 0x01, b't', b'h', b'i']);
    let mut p4 = common::conformance::client(b.addr, "pub4");
    p4.send(&[0x30, 0x05, 0x00, 0x01, b't', b'h', b'o']);
    sub5.expect(&[0x30, 0x06, 0x00, 0x01, b't', 0x00, b'h', b'o']);
    sub4.expect(&[0x30, 0x05, 0x00, 0x01, b't', b'h', b'o']);
}

// [MQTT-2.2.1-3]
#[test]
fn packet_identifier_zero_is_refused() {
    let b = TestBroker::start();
    let sub0 = [0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 0x74, 0x01];
    assert_disconnects(b.addr, &sub0, 0x82);
    assert_disconnects(b.addr, &publish5("t", b"x", 1, 0, false, &no_props()), 0x82);
    assert_disconnects(
        b.addr,
        &[0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 0x74],
        0x82,
    );
}

// [MQTT-2.2.1-5] [MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8] [MQTT-4.3.3-11]
#[test]
fn acknowledgements_carry_the_publish_packet_identifier() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "acks");
    // QoS 0: nothing; the PINGRESP is next.
    c.send(&publish5("t", b"x", 0, 0, false, &no_props()));
    c.ping();
    // 0x10: nobody subscribes to t (a success code).
    c.send(&publish5("t", b"x", 1, 0x1234, false, &no_props()));
    assert_eq!(c.read_ack(0x40, 0x1234), 0x10);
    c.send(&publish5("t", b"x", 2, 9, false, &no_props()));
    assert_eq!(c.read_ack(0x50, 9), 0x10);
    c.send(&[0x62, 0x02, 0x00, 0x09]);
    c.expect(&[0x70, 0x02, 0x00, 0x09]);
}

// [MQTT-2.2.1-6] [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.10.4-4]
#[test]
fn suback_and_unsuback_echo_the_request_id() {
    let b = TestBroker::start();
    let mut c = Raw::v5(b.addr, "ids");
    c.send(&[0x82, 0x07, 0xBE, 0xEF, 0x00, 0x00, 0x01, 0x74, 0x01]);
    c.expect(&[0x90, 0x04, 0xBE, 0xEF, 0x00, 0x01]);
    c.send(&[0xA2, 0x06, 0xCA, 0xFE, 0x00, 0x00, 0x01, 0x74]);
    c.expect(&[0xB0, 0x04, 0xCA, 0xFE, 0x00, 0x00]);
}

// [MQTT-3.3.1-3] [MQTT-4.3.2-2] [MQTT-4.3.3-2]
#[test]
fn outbound_dup_is_the_servers_own() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "t", 2);
    let mut dup1 = publish5("t", b"x", 1, 1, false, &no_props());
    dup1[0] |= 0x08;
    p.send(&dup1);
    assert_eq!(p.read_ack(0x40, 1), 0);
    let mut dup2 = publish5("t", b"y", 2, 2, false, &no_props());
    dup2[0] |= 0x08;
    p.send(&dup2);
    p.finish_publish(2, 2);
    let got = s.drain5();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| !m.dup), "first transmissions have DUP 0");
    assert_eq!((got[0].qos, got[1].qos), (1, 2));
}

// [MQTT-3.3.1-2] [MQTT-3.3.1-4]
#[test]
fn qos_3_and_dup_with_qos_0_are_malformed() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "#", 0);
    assert_disconnects(
        b.addr,
        &[0x36, 0x06, 0x00, 0x01, 0x74, 0x00, 0x01, 0x00],
        0x81,
    );
    assert_disconnects(b.addr, &[0x38, 0x04, 0x00, 0x01, 0x74, 0x00], 0x81);
    assert!(obs.drain5().is_empty());
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-8]
#[test]
fn retained_message_is_replaced_with_its_properties() {
    let b = TestBroker::start();
    let mut p = Raw::v5(b.addr, "ret");
    p.send(&publish5(
        "r",
        b"v1",
        1,
        1,
        true,
        &Props::new().pair("v", "1"),
    ));
    p.read_ack(0x40, 1);
    p.send(&publish5(
        "r",
        b"v2",
        1,
        2,
        true,
        &Props::new().pair("v", "2"),
    ));
    p.read_ack(0x40, 2);
    p.pub5("r", b"not retained", 1, 3, &no_props());
    let mut late = Raw::v5(b.addr, "ret-late");
    late.sub5("r", 2);
    let got = late.drain5();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&got[0].payload[..], got[0].qos, got[0].retain),
        (&b"v2"[..], 1, true)
    );
    assert_eq!(got[0].props.user(), vec!["v=2"]);
}

// [MQTT-3.3.1-6] [MQTT-3.3.1-7]
#[test]
fn empty_retained_payload_is_delivered_and_deletes() {
    let b = TestBroker::start();
    let mut p = Raw::v5(b.addr, "del");
    p.send(&publish5("r", b"v1", 0, 0, true, &no_props()));
    p.ping();
    let mut s = sub_v5(b.addr, "r", 0);
    assert_eq!(s.drain5().len(), 1, "the retained copy");
    p.send(&[0x31, 0x04, 0x00, 0x01, 0x72, 0x00]);
    p.ping();
    let got = s.drain5();
    assert_eq!(got.len(), 1, "the empty message is delivered");
    assert!(got[0].payload.is_empty());
    let mut late = sub_v5(b.addr, "r", 0);
    assert!(late.drain5().is_empty(), "nothing stored");
}

// [MQTT-3.3.2-2] [MQTT-4.7.0-1] [MQTT-4.7.3-1]
#[test]
fn topic_names_without_wildcards_and_not_empty() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "#", 0);
    for topic in ["a/+", "a/#", "+"] {
        let mut c = Raw::v5(b.addr, &cid5("wild"));
        c.send(&publish5(topic, b"x", 0, 0, false, &no_props()));
        c.expect_disconnect_in(&[0x81, 0x82, 0x90]);
    }
    // An empty topic without a Topic Alias.
    assert_disconnects(b.addr, &[0x30, 0x04, 0x00, 0x00, 0x00, 0x78], 0x82);
    assert!(obs.drain5().is_empty());
}

// [MQTT-3.3.2-3]
#[test]
fn delivery_carries_the_published_topic_name() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "a/+", 0);
    p.pub5("a/b", b"x", 0, 0, &no_props());
    assert_eq!(s.drain5()[0].topic, "a/b");
}

// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]
#[test]
fn application_message_properties_are_forwarded_unaltered() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "req", 1);
    let props = Props::new()
        .byte(0x01, 1)
        .text(0x03, b"text")
        .text(0x08, b"r")
        .text(0x09, &[0x00, 0xFF, 0x00])
        .pair("k", "2")
        .pair("k", "1")
        .pair("k", "2");
    p.pub5("req", "é".as_bytes(), 1, 1, &props);
    let m = &s.drain5()[0];
    assert_eq!(m.props.num(0x01), Some(1));
    assert_eq!(m.props.bytes(0x03), Some(&b"text"[..]));
    assert_eq!(m.props.bytes(0x08), Some(&b"r"[..]));
    assert_eq!(m.props.bytes(0x09), Some(&[0x00, 0xFF, 0x00][..]));
    assert_eq!(m.props.user(), vec!["k=2", "k=1", "k=2"]);
    // Nothing is added that was not sent: no expiry, no alias.
    assert!(!m.props.has(0x02) && !m.props.has(0x23) && !m.props.has(0x0B));
}

// [MQTT-3.3.2-13] [MQTT-3.3.2-14] [MQTT-3.3.2-19]
#[test]
fn response_topic_and_content_type_are_checked() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "#", 0);
    let bad_rt = Props::new().raw(&[0x08, 0x00, 0x02, 0xC3, 0x28]);
    assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &bad_rt), 0x81);
    for wild in [&b"r/#"[..], b"+"] {
        let rt = Props::new().text(0x08, wild);
        assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &rt), 0x82);
    }
    let bad_ct = Props::new().raw(&[0x03, 0x00, 0x01, 0x80]);
    assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &bad_ct), 0x81);
    assert!(obs.drain5().is_empty());
}

// [MQTT-3.3.4-2] [MQTT-3.8.4-8]
#[test]
fn delivered_qos_is_the_lower_of_published_and_granted() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "q", 1);
    p.pub5("q", b"2", 2, 1, &no_props());
    p.pub5("q", b"0", 0, 0, &no_props());
    let got = s.drain5();
    assert_eq!(got.iter().map(|m| m.qos).collect::<Vec<_>>(), vec![1, 0]);
    // Overlapping subscriptions: a copy at the highest granted QoS.
    let mut o = Raw::v5(b.addr, "overlap");
    o.sub5("a/#", 0);
    o.sub5("a/b", 2);
    p.pub5("a/b", b"x", 2, 2, &no_props());
    let got = o.drain5();
    assert!(got.iter().any(|m| m.qos == 2), "got {got:?}");
}

// [MQTT-3.3.4-6]
#[test]
fn subscription_identifier_from_a_client_is_a_protocol_error() {
    let b = TestBroker::start();
    let props = Props::new().var(0x0B, 1);
    assert_disconnects(b.addr, &publish5("t", b"x", 0, 0, false, &props), 0x82);
}

// [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-4.3.3-9]
#[test]
fn refused_publishes_get_puback_and_pubrec_codes() {
    let acl = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("v5-pub.acl");
    std::fs::write(&acl, "topic readwrite ok/#\n").unwrap();
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let mut c = Raw::v5(b.addr, "denied");
    c.send(&publish5("secret", b"x", 1, 5, false, &no_props()));
    assert_eq!(c.read_ack(0x40, 5), 0x87);
    // QoS 2: refused with PUBREC 0x87, and the same id again is new.
    for _ in 0..2 {
        c.send(&publish5("secret", b"x", 2, 9, false, &no_props()));
        assert_eq!(c.read_ack(0x50, 9), 0x87);
    }
    // Payload Format Indicator 1 with a payload that is not UTF-8: 0x99.
    let text = Props::new().byte(0x01, 1);
    c.send(&publish5("ok/t", &[0xFF], 1, 7, false, &text));
    assert_eq!(c.read_ack(0x40, 7), 0x99);
    c.ping();
}

// [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1]
#[test]
fn client_ack_codes_outside_the_packets_list_are_errors() {
    let b = TestBroker::start();
    assert_disconnects(b.addr, &[0x40, 0x03, 0x00, 0x01, 0x05], 0x82);
    assert_disconnects(b.addr, &[0x50, 0x03, 0x00, 0x01, 0x92], 0x82);
    assert_disconnects(b.addr, &[0x62, 0x03, 0x00, 0x09, 0x10], 0x82);
    assert_disconnects(b.addr, &[0x70, 0x03, 0x00, 0x09, 0x87], 0x82);
    // A PUBREL for an unknown id: PUBCOMP 0x92 (Packet Identifier not found).
    let mut c = Raw::v5(b.addr, "rel");
    c.send(&[0x62, 0x02, 0x12, 0x34]);
    assert_eq!(c.read_ack(0x70, 0x1234), 0x92);
    c.ping();
}

// [MQTT-4.3.2-5]
#[test]
fn after_puback_the_same_id_is_a_new_message() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "t", 1);
    p.pub5("t", b"m", 1, 1, &no_props());
    let mut again = publish5("t", b"m", 1, 1, false, &no_props());
    again[0] |= 0x08;
    p.send(&again);
    p.read_ack(0x40, 1);
    assert_eq!(s.drain5().len(), 2);
}

// [MQTT-4.3.3-10] [MQTT-4.3.3-12]
#[test]
fn qos2_receiver_delivers_once_per_exchange() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "t", 2);
    p.send(&publish5("t", b"m", 2, 9, false, &no_props()));
    p.read_ack(0x50, 9);
    let mut dup = publish5("t", b"m", 2, 9, false, &no_props());
    dup[0] |= 0x08;
    p.send(&dup);
    p.read_ack(0x50, 9);
    p.send(&[0x62, 0x02, 0x00, 0x09]);
    assert_eq!(p.read_ack(0x70, 9), 0);
    assert_eq!(s.drain5().len(), 1, "repeat before PUBREL not delivered");
    // After PUBCOMP the id starts a new message.
    p.pub5("t", b"m2", 2, 9, &no_props());
    assert_eq!(s.drain5().len(), 1);
}

// [MQTT-2.2.1-4] [MQTT-4.3.2-1] [MQTT-4.3.2-3] [MQTT-4.3.3-1] [MQTT-4.3.3-3]
#[test]
fn outbound_ids_are_unique_while_unacknowledged() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "t", 2);
    for i in 1..=6u16 {
        p.pub5("t", b"m", 1 + (i % 2) as u8, i, &no_props());
    }
    let mut ids = Vec::new();
    for _ in 0..6 {
        let m = s.read_publish5();
        assert!(m.pkid != 0 && !m.dup);
        ids.push(m.pkid);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 6, "ids {ids:?} in use at once are distinct");
    // Unacknowledged: nothing is resent on a live connection [MQTT-4.4.0-1].
    s.expect_silence(std::time::Duration::from_millis(300));
}

// [MQTT-4.3.3-4] [MQTT-4.3.3-5] [MQTT-4.3.3-6] [MQTT-4.6.0-4]
#[test]
fn qos2_sender_releases_on_pubrec_in_order() {
    let b = TestBroker::start();
    let (mut p, mut s) = pair(b.addr, "t", 2);
    p.pub5("t", b"1", 2, 1, &no_props());
    p.pub5("t", b"2", 2, 2, &no_props());
    let (m1, m2) = (s.read_publish5(), s.read_publish5());
    // PUBRECs in reverse order: PUBRELs follow in the order received.
    for id in [m2.pkid, m1.pkid] {
        let id = id.to_be_bytes();
        s.send(&[0x50, 0x02, id[0], id[1]]);
    }
    assert_eq!(s.read_ack(0x62, m2.pkid), 0);
    assert_eq!(s.read_ack(0x62, m1.pkid), 0);
    // No PUBLISH again, nothing else until PUBCOMP.
    s.expect_silence(std::time::Duration::from_millis(200));
    for id in [m1.pkid, m2.pkid] {
        let id = id.to_be_bytes();
        s.send(&[0x70, 0x02, id[0], id[1]]);
    }
    assert!(s.drain5().is_empty());
}

// [MQTT-4.5.0-1] [MQTT-4.6.0-5] [MQTT-4.6.0-6]
#[test]
fn messages_reach_every_matching_session_in_order() {
    let b = TestBroker::start();
    let offline = Connect5::new("off").clean(false).expiry(60);
    let (mut o, _) = Raw::mqtt5(b.addr, &offline);
    o.sub5("t", 1);
    o.disconnect();
    let (mut p, mut s) = pair(b.addr, "t", 1);
    for i in 0..50u16 {
        p.send(&publish5(
            "t",
            &i.to_be_bytes(),
            1,
            i + 1,
            false,
            &no_props(),
        ));
    }
    for i in 0..50u16 {
        p.read_ack(0x40, i + 1);
    }
    let want: Vec<Vec<u8>> = (0..50u16).map(|i| i.to_be_bytes().to_vec()).collect();
    let got: Vec<Vec<u8>> = s.drain5().into_iter().map(|m| m.payload).collect();
    assert_eq!(got, want);
    let (mut o, ack) = Raw::mqtt5(b.addr, &offline);
    assert!(ack.present);
    let got: Vec<Vec<u8>> = o.drain5().into_iter().map(|m| m.payload).collect();
    assert_eq!(got, want, "the offline session got every message, in order");
}

// [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]
#[test]
fn invalid_topic_filters_are_refused() {
    let b = TestBroker::start();
    for filter in ["a/#/b", "a/b+", "a#", ""] {
        let mut c = Raw::v5(b.addr, &cid5("filter"));
        c.send(&subscribe5(1, &no_props(), &[(filter, 0)]));
        // The standard names no code: a DISCONNECT (0x81, 0x82 or 0x8F).
        c.expect_disconnect_in(&[0x81, 0x82, 0x8F]);
    }
}

// [MQTT-4.7.2-1]
#[test]
fn wildcard_led_filters_never_match_dollar_topics() {
    let b = TestBroker::start();
    let mut hash = sub_v5(b.addr, "#", 0);
    let mut plus = sub_v5(b.addr, "+/x", 0);
    let mut dollar = sub_v5(b.addr, "$x/#", 0);
    let mut p = Raw::v5(b.addr, "dollar");
    p.pub5("$x/x", b"d", 0, 0, &no_props());
    assert!(hash.drain5().is_empty() && plus.drain5().is_empty());
    assert_eq!(dollar.drain5().len(), 1);
}

// [MQTT-4.7.3-3]
#[test]
fn a_topic_of_65535_bytes_is_served() {
    let b = TestBroker::start();
    let topic = "t".repeat(65_535);
    let (mut p, mut s) = pair(b.addr, &topic, 0);
    p.pub5(&topic, b"x", 0, 0, &no_props());
    assert_eq!(s.drain5()[0].topic.len(), 65_535);
}

// MQTT 5 and 3.1.1 clients on one broker: a 5.0 publisher's message
// reaches a 3.1.1 subscriber without properties (its alias resolved), and
// a 3.1.1 publisher's reaches a 5.0 subscriber with none but its own
// Subscription Identifier (spec notes §4.17; no id).
#[test]
fn v5_and_v311_clients_exchange_messages() {
    let b = TestBroker::start();
    let mut old = conformance::subscriber(b.addr, &[("t", 1)]);
    let mut new = Raw::v5(b.addr, "mixed-v5");
    new.subscribe5(1, &Props::new().var(0x0B, 3), &[("t", 1)]);
    let mut p = Raw::v5(b.addr, "mixed-pub");
    let props = Props::new().two(0x23, 1).pair("k", "v").four(0x02, 60);
    p.send(&publish5("t", b"from5", 1, 1, false, &props));
    p.read_ack(0x40, 1);
    let got = old.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].topic.as_str(), &got[0].payload[..]),
        ("t", &b"from5"[..])
    );
    let m = &new.drain5()[0];
    assert_eq!(
        (m.topic.as_str(), m.props.user()),
        ("t", vec!["k=v".to_string()])
    );
    let (mut p311, _) = Raw::mqtt(b.addr, "mixed-311", true);
    p311.publish_done("t", b"from311", 1, 1);
    let m = &new.drain5()[0];
    assert_eq!(m.payload, b"from311");
    assert_eq!(
        m.props.0,
        vec![(0x0B, Value::Num(3))],
        "only its identifier"
    );
    assert_eq!(old.drain()[0].payload, b"from311");
}
