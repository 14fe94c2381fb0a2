//! Raw-byte conformance tests for MQTT 5.0 enhanced authentication (AUTH
//! exchanges), through a method a host implements with
//! `Broker::set_auth_method`: here "TOKEN", which answers the client's
//! "hello" with the challenge "challenge", accepts "secret" (final data
//! "welcome") and a re-authentication with "again", and refuses anything
//! else.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids.

mod common;
use common::v5::*;
use common::*;
use midge::{AuthStep, Broker};

/// A broker with the "TOKEN" method.
fn token_broker() -> TestBroker {
    let mut broker = Broker::new(loopback_config(|_| {})).expect("broker starts");
    broker.set_auth_method("TOKEN", |req| match (req.step, req.data) {
        (0, Some(b"again")) if req.reauthentication => AuthStep::Accept(None),
        (0, Some(b"hello")) => AuthStep::Continue(b"challenge".to_vec()),
        (1, Some(b"secret")) => AuthStep::Accept(Some(b"welcome".to_vec())),
        _ => AuthStep::Refuse,
    });
    TestBroker::run(broker)
}

/// A CONNECT naming the method, with the first data.
fn token_connect(id: &str) -> Connect5 {
    Connect5::new(id).props(Props::new().text(0x15, b"TOKEN").text(0x16, b"hello"))
}

/// An AUTH packet.
fn auth(code: u8, method: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = vec![code];
    body.extend(Props::new().text(0x15, method).text(0x16, data).block());
    packet(0xF0, &body)
}

/// Reads an AUTH: its code must be one a server sends [MQTT-3.15.2-1],
/// it names the method [MQTT-4.12.0-5], and it carries neither Reason
/// String nor User Property [MQTT-3.15.2-2] [MQTT-3.15.2-3].
fn read_auth(c: &mut Raw) -> (u8, PropList) {
    let (first, body) = c.read_packet().expect("AUTH, got EOF");
    assert_eq!(first, 0xF0, "expected AUTH, got {first:#04x} {body:02x?}");
    let (code, props) = parse_reason(&body);
    assert!(
        matches!(code, 0x00 | 0x18),
        "AUTH code {code:#04x} from the server"
    );
    assert_eq!(
        props.bytes(0x15),
        Some(&b"TOKEN"[..]),
        "the method, repeated"
    );
    assert!(!props.has(0x1F) && !props.has(0x26));
    (code, props)
}

/// A client that went through the exchange and is connected.
fn authenticated(addr: std::net::SocketAddr, id: &str) -> Raw {
    let mut c = Raw::connect(addr);
    c.send(&token_connect(id).bytes());
    read_auth(&mut c);
    c.send(&auth(0x18, b"TOKEN", b"secret"));
    assert_eq!(c.read_connack5().code, 0);
    c
}

// [MQTT-4.12.0-2] [MQTT-4.12.0-5] [MQTT-3.2.0-1] [MQTT-3.15.2-1] [MQTT-3.15.2-2] [MQTT-3.15.2-3]
#[test]
fn an_exchange_of_auth_packets_precedes_the_connack() {
    let b = token_broker();
    let mut c = Raw::connect(b.addr);
    c.send(&token_connect("tok").bytes());
    let (code, props) = read_auth(&mut c);
    assert_eq!((code, props.bytes(0x16)), (0x18, Some(&b"challenge"[..])));
    c.send(&auth(0x18, b"TOKEN", b"secret"));
    let ack = c.read_connack5();
    assert_eq!(ack.code, 0);
    assert_eq!(
        ack.props.bytes(0x15),
        Some(&b"TOKEN"[..]),
        "method in CONNACK"
    );
    assert_eq!(ack.props.bytes(0x16), Some(&b"welcome"[..]));
    c.ping();
}

// [MQTT-4.12.0-3]
#[test]
fn the_clients_answer_must_continue_the_exchange() {
    let b = token_broker();
    let mut c = Raw::connect(b.addr);
    c.send(&token_connect("tok-0").bytes());
    read_auth(&mut c);
    // AUTH 0x00 (Success) from the client during the exchange.
    c.send(&auth(0x00, b"TOKEN", b"secret"));
    // Closed, with at most a refusing CONNACK; never a DISCONNECT.
    if let Some((first, body)) = c.read_reply("close or a refusing CONNACK") {
        assert_eq!(first, 0x20);
        assert!(parse_connack5(&body).code >= 0x80);
        c.expect_closed();
    }
}

// [MQTT-4.12.0-4] [MQTT-3.2.2-6] [MQTT-3.2.2-7]
#[test]
fn a_failed_exchange_is_refused_then_closed() {
    let b = token_broker();
    // A wrong answer to the challenge.
    let mut c = Raw::connect(b.addr);
    c.send(&token_connect("tok-bad").bytes());
    read_auth(&mut c);
    c.send(&auth(0x18, b"TOKEN", b"wrong"));
    c.expect_refused5(0x87);
    // Refused at the first step.
    let first = Connect5::new("tok-bad2").props(Props::new().text(0x15, b"TOKEN").text(0x16, b"?"));
    let mut c = Raw::connect(b.addr);
    c.send(&first.bytes());
    c.expect_refused5(0x87);
}

// [MQTT-4.12.0-5]
#[test]
fn an_auth_naming_another_method_ends_the_exchange() {
    let b = token_broker();
    let mut c = Raw::connect(b.addr);
    c.send(&token_connect("tok-other").bytes());
    read_auth(&mut c);
    c.send(&auth(0x18, b"OTHER", b"secret"));
    if let Some((first, body)) = c.read_reply("close or a refusing CONNACK") {
        assert_eq!(first, 0x20);
        assert!(parse_connack5(&body).code >= 0x80);
        c.expect_closed();
    }
}

// [MQTT-3.1.2-30]
#[test]
fn only_auth_or_disconnect_before_the_connack() {
    let b = token_broker();
    let mut obs = sub_v5(b.addr, "#", 0);
    let mut c = Raw::connect(b.addr);
    c.send(&token_connect("tok-early").bytes());
    read_auth(&mut c);
    c.send(&publish5("t", b"early", 0, 0, false, &no_props()));
    if let Some((first, body)) = c.read_reply("close or a refusing CONNACK") {
        assert_eq!(first, 0x20);
        assert!(parse_connack5(&body).code >= 0x80);
        c.expect_closed();
    }
    assert!(obs.drain5().is_empty(), "nothing was published");
}

// [MQTT-4.12.1-1] [MQTT-4.12.1-2] [MQTT-3.15.2-1]
#[test]
fn re_authentication_keeps_the_method_and_a_failure_disconnects() {
    let b = token_broker();
    let mut c = authenticated(b.addr, "re");
    c.send(&auth(0x19, b"TOKEN", b"again"));
    let (code, _) = read_auth(&mut c);
    assert_eq!(code, 0x00, "re-authenticated");
    c.ping();
    // Another method: a protocol error.
    c.violate(&auth(0x19, b"OTHER", b"again"), 0x82);
    // A failed re-authentication: DISCONNECT (0x87), then the close.
    let mut c = authenticated(b.addr, "re-bad");
    c.violate(&auth(0x19, b"TOKEN", b"nope"), 0x87);
}
