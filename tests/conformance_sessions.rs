//! Raw-byte conformance tests for the session side of MQTT 3.1.1: CONNECT
//! and CONNACK, session state, redelivery on reconnect, the Will, keep
//! alive, takeover and retained messages across sessions.
//!
//! Each test names the statement ids it checks in the comment right above
//! its `#[test]`.

mod common;
use common::*;

use midge::{AuthDecision, Broker, Config, ShutdownHandle};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ------------------------------------------------------------- helpers

/// A length-prefixed string / binary field.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// CONNECT with any protocol name, level, flags and keep alive; `payload` is
/// appended verbatim (build it with `field`).
fn connect_raw(name: &[u8], level: u8, flags: u8, keep_alive: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = field(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

/// MQTT 3.1.1 CONNECT with these flags and payload fields.
fn connect_fields(flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    let payload: Vec<u8> = fields.iter().flat_map(|f| field(f)).collect();
    connect_raw(b"MQTT", 4, flags, 60, &payload)
}

/// Sends `bytes` on a fresh connection and returns the client.
fn open_and_send(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut c = Raw::connect(addr);
    c.send(bytes);
    c
}

/// Reads a CONNACK and returns (session present, return code), checking
/// the reserved acknowledge-flag bits.
fn read_connack(c: &mut Raw) -> (bool, u8) {
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK, got EOF");
    assert_eq!(first, 0x20, "expected CONNACK, got {first:#04x}");
    assert_eq!(body.len(), 2, "CONNACK remaining length");
    assert_eq!(body[0] & 0xFE, 0, "reserved acknowledge flags");
    assert!(body[1] <= 5, "return code {} is reserved", body[1]);
    (body[0] == 1, body[1])
}

/// The CONNECT is not acceptable: the server closes without any CONNACK.
fn assert_rejected_without_connack(addr: SocketAddr, bytes: &[u8]) {
    let mut c = open_and_send(addr, bytes);
    c.expect_closed();
}

/// The CONNECT is refused with `code` (Session Present 0), then closed.
fn assert_refused_with(addr: SocketAddr, bytes: &[u8], code: u8) {
    let mut c = open_and_send(addr, bytes);
    c.expect(&[0x20, 0x02, 0x00, code]);
    c.expect_closed();
}

/// The CONNECT is accepted (return code 0) and the connection works.
fn assert_accepted(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut c = open_and_send(addr, bytes);
    let (_, code) = read_connack(&mut c);
    assert_eq!(code, 0, "CONNACK return code");
    c.ping();
    c
}

/// A clean-session client subscribed to `filter`.
fn observer(addr: SocketAddr, id: &str, filter: &str, qos: u8) -> Raw {
    let (mut c, _) = Raw::mqtt(addr, id, true);
    c.subscribe(1, &[(filter, qos)]);
    c
}

/// Publishes and waits until the broker has processed it (PUBACK/PUBREC or
/// a PINGREQ barrier).
fn publish(c: &mut Raw, topic: &str, payload: &[u8], qos: u8, pkid: u16, retain: bool) {
    c.send(&publish_packet(topic, payload, qos, pkid, retain, false));
    match qos {
        0 => c.ping(),
        1 => c.expect(&[0x40, 0x02, (pkid >> 8) as u8, pkid as u8]),
        _ => {
            c.expect(&[0x50, 0x02, (pkid >> 8) as u8, pkid as u8]);
            c.send(&[0x62, 0x02, (pkid >> 8) as u8, pkid as u8]);
            c.expect(&[0x70, 0x02, (pkid >> 8) as u8, pkid as u8]);
        }
    }
}

/// Closes the socket without DISCONNECT (a network failure for the broker).
fn kill(c: Raw) {
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
}

/// Proves the broker has finished with a killed client `id`: connecting
/// again with that id either finds it gone or takes it over, and either way
/// its Will (if any) is published before this CONNACK.
fn barrier_after_kill(addr: SocketAddr, id: &str) {
    let (mut c, _) = Raw::mqtt(addr, id, true);
    c.send(&[0xE0, 0x00]);
    c.expect_closed();
}

/// Nothing was delivered to `c`: its PINGRESP is the next packet.
fn assert_nothing_delivered(c: &mut Raw) {
    c.ping();
}

/// (client id, user name, password) as the authenticator saw them.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<Vec<u8>>)>>>;

/// A broker with an authenticator that records what it saw and refuses the
/// password "bad" with CONNACK 4.
struct AuthBroker {
    addr: SocketAddr,
    seen: Seen,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl AuthBroker {
    fn start() -> AuthBroker {
        let mut config = Config::default();
        config.listen_on(["127.0.0.1:0".parse().unwrap()]);
        let mut broker = Broker::new(config).expect("broker starts");
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        broker.set_authenticator(move |c| {
            log.lock().unwrap().push((
                c.client_id.to_string(),
                c.username.map(str::to_string),
                c.password.map(<[u8]>::to_vec),
            ));
            if c.password == Some(b"bad".as_slice()) {
                AuthDecision::BadCredentials
            } else {
                AuthDecision::Accept
            }
        });
        let addr = broker.local_addr().expect("bound address");
        let handle = broker.shutdown_handle();
        let thread = std::thread::spawn(move || broker.run().expect("broker loop"));
        AuthBroker {
            addr,
            seen,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for AuthBroker {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn puback(pkid: u16) -> Vec<u8> {
    vec![0x40, 0x02, (pkid >> 8) as u8, pkid as u8]
}

fn pubrec(pkid: u16) -> Vec<u8> {
    vec![0x50, 0x02, (pkid >> 8) as u8, pkid as u8]
}

fn pubrel(pkid: u16) -> Vec<u8> {
    vec![0x62, 0x02, (pkid >> 8) as u8, pkid as u8]
}

fn pubcomp(pkid: u16) -> Vec<u8> {
    vec![0x70, 0x02, (pkid >> 8) as u8, pkid as u8]
}

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
    for level in [0u8, 3, 5, 0xFF] {
        assert_refused_with(b.addr, &connect_raw(b"MQTT", level, 0x00, 60, &id), 0x01);
    }
    // MQIsdp with a level other than 3 is refused the same way.
    assert_refused_with(b.addr, &connect_raw(b"MQIsdp", 4, 0x00, 60, &id), 0x01);
    // The refusals did not touch the stored session.
    let (_, present) = Raw::mqtt(b.addr, "p", false);
    assert!(present, "session of p survives refused CONNECTs");
}

// [MQTT-3.1.2-2]: MQTT 5 is not served yet. A real version 5 CONNECT
// (with properties, a Will and its Will Properties) gets the 3.x-form
// CONNACK 0x01 that every client can read, as from mosquitto.
#[test]
fn mqtt5_connect_with_properties_gets_connack_1() {
    let b = TestBroker::start();
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[5, 0x06, 0, 60]); // Clean Start, Will (QoS 0)
    body.extend_from_slice(&[5, 0x11, 0, 0, 0, 10]); // Session Expiry 10
    body.extend_from_slice(&field(b"v5"));
    body.extend_from_slice(&[2, 0x01, 1]); // Will: Payload Format UTF-8
    body.extend_from_slice(&field(b"will/t"));
    body.extend_from_slice(&field(b"bye"));
    assert_refused_with(b.addr, &packet(0x10, &body), 0x01);
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

// ------------------------------------------------------------------ Will

/// Connects `id` (CleanSession 1) with a Will and returns the client.
fn with_will(
    addr: SocketAddr,
    id: &str,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
) -> Raw {
    let mut c = open_and_send(
        addr,
        &connect_with_will(id, true, 60, topic, payload, qos, retain),
    );
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c
}

// [MQTT-3.1.2-8] [MQTT-3.1.2-10] [MQTT-3.1.2-16]
#[test]
fn will_is_published_once_on_abrupt_close_not_retained() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w", 0);
    let a = with_will(b.addr, "A", "w", b"gone", 0, false);
    kill(a);
    let m = obs.read_publish();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.qos, m.retain),
        ("w", &b"gone"[..], 0, false)
    );
    // Exactly once: gone from the broker, and no second copy.
    barrier_after_kill(b.addr, "A");
    assert_nothing_delivered(&mut obs);
    // Will Retain 0: a later subscriber gets nothing.
    let mut late = observer(b.addr, "late", "w", 0);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.14.4-3] [MQTT-3.1.2-10]
#[test]
fn will_is_discarded_on_disconnect() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w", 0);
    let mut a = with_will(b.addr, "A", "w", b"gone", 0, false);
    a.send(&[0xE0, 0x00]);
    a.expect_closed(); // the server closes after DISCONNECT
    kill(a);
    barrier_after_kill(b.addr, "A");
    assert_nothing_delivered(&mut obs);
    // Also when the client closes its socket right after DISCONNECT,
    // with a retained Will.
    let mut a = with_will(b.addr, "A2", "w", b"gone2", 1, true);
    a.send(&[0xE0, 0x00]);
    kill(a);
    barrier_after_kill(b.addr, "A2");
    assert_nothing_delivered(&mut obs);
    let mut late = observer(b.addr, "late", "w", 1);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.1.2-12]
#[test]
fn no_will_flag_means_no_will() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "#", 0);
    let (a, _) = Raw::mqtt(b.addr, "A", true);
    kill(a);
    barrier_after_kill(b.addr, "A");
    // A protocol error without a Will publishes nothing either.
    let (mut a, _) = Raw::mqtt(b.addr, "A2", false);
    a.send(&[0xE1, 0x00]);
    a.expect_closed();
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.2-17]
#[test]
fn will_retain_1_publishes_a_retained_will() {
    let b = TestBroker::start();
    let mut c = with_will(b.addr, "pub", "w/r", b"old", 0, false);
    publish(&mut c, "w/r", b"old", 1, 1, true);
    let mut obs = observer(b.addr, "obs", "w/r", 1);
    assert_eq!(obs.read_publish().payload, b"old");
    let a = with_will(b.addr, "A", "w/r", b"gone", 1, true);
    kill(a);
    // The existing subscription gets it as a normal forward (RETAIN 0).
    let m = obs.read_publish();
    assert_eq!((&m.payload[..], m.retain), (&b"gone"[..], false));
    // A later subscriber gets it as the retained message, replacing "old".
    let mut late = observer(b.addr, "late", "w/r", 1);
    let m = late.read_publish();
    assert_eq!((&m.payload[..], m.retain, m.qos), (&b"gone"[..], true, 1));
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.1.2-17]
#[test]
fn retained_will_with_empty_payload_deletes_the_retained_message() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut c, "w/e", b"old", 0, 0, true);
    let mut obs = observer(b.addr, "obs", "w/e", 0);
    assert_eq!(obs.read_publish().payload, b"old");
    let a = with_will(b.addr, "A", "w/e", b"", 0, true);
    kill(a);
    let m = obs.read_publish();
    assert_eq!((&m.payload[..], m.retain), (&b""[..], false));
    let mut late = observer(b.addr, "late", "w/e", 0);
    assert_nothing_delivered(&mut late);
}

// [MQTT-3.1.2-8]
#[test]
fn will_qos_is_honoured() {
    let b = TestBroker::start();
    let mut obs1 = observer(b.addr, "obs1", "w/q", 1);
    let mut obs2 = observer(b.addr, "obs2", "w/q", 2);
    let mut obs0 = observer(b.addr, "obs0", "w/q", 0);
    let a = with_will(b.addr, "A", "w/q", b"q1", 1, false);
    kill(a);
    let m = obs1.read_publish();
    assert_eq!((&m.payload[..], m.qos, m.dup), (&b"q1"[..], 1, false));
    assert_ne!(m.pkid, 0);
    obs1.send(&puback(m.pkid));
    let m = obs2.read_publish();
    assert_eq!((&m.payload[..], m.qos), (&b"q1"[..], 1));
    let m = obs0.read_publish();
    assert_eq!((&m.payload[..], m.qos), (&b"q1"[..], 0));
    // Will QoS 2 to a QoS 2 subscription: the full QoS 2 flow.
    let a = with_will(b.addr, "A2", "w/q", b"q2", 2, false);
    kill(a);
    let m = obs2.read_publish();
    assert_eq!((&m.payload[..], m.qos), (&b"q2"[..], 2));
    obs2.send(&pubrec(m.pkid));
    obs2.expect(&pubrel(m.pkid));
    obs2.send(&pubcomp(m.pkid));
    assert_nothing_delivered(&mut obs2);
}

// The server closing a connection for a protocol error publishes its Will.
// [MQTT-3.1.2-8]
#[test]
fn will_is_published_after_a_protocol_error() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w/+", 0);
    let errors: [(&str, Vec<u8>); 4] = [
        ("qos3", vec![0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01]),
        ("baddisconnect", vec![0xE1, 0x00]),
        ("reconnect", connect_packet("x", true, 60)),
        (
            "badsubscribe",
            vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00],
        ),
    ];
    for (name, bytes) in errors {
        let mut a = with_will(
            b.addr,
            name,
            &format!("w/{name}"),
            name.as_bytes(),
            0,
            false,
        );
        a.send(&bytes);
        a.expect_closed();
        let m = obs.read_publish();
        assert_eq!(m.topic, format!("w/{name}"));
        assert_eq!(m.payload, name.as_bytes());
    }
}

// ------------------------------------------------------------ Keep Alive

// [MQTT-3.1.2-24] [MQTT-3.1.2-8]
#[test]
fn keep_alive_1_closes_a_silent_client_and_publishes_its_will() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "ka/will", 0);
    let start = Instant::now();
    let mut a = open_and_send(
        b.addr,
        &connect_with_will("ka", true, 1, "ka/will", b"timed out", 0, false),
    );
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    // Still open at 1.0 s ...
    let open_for = Duration::from_millis(1000).saturating_sub(start.elapsed());
    a.expect_silence(open_for);
    assert!(start.elapsed() >= Duration::from_millis(1000));
    // ... closed by 2.5 s (deadline 1.5 s).
    a.expect_closed();
    let closed_at = start.elapsed();
    assert!(
        closed_at <= Duration::from_millis(2500),
        "closed after {closed_at:?}"
    );
    let m = obs.read_publish();
    assert_eq!(m.payload, b"timed out");
}

// [MQTT-3.1.2-24]
#[test]
fn keep_alive_2_with_a_pingreq_every_second_stays_open() {
    let b = TestBroker::start();
    let mut a = open_and_send(b.addr, &connect_packet("pinger", true, 2));
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(1));
        a.ping();
    }
}

// Any packet resets the keep-alive timer, not only PINGREQ.
// [MQTT-3.1.2-24]
#[test]
fn keep_alive_1_with_a_publish_every_half_second_stays_open() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "ka/t", 0);
    let mut a = open_and_send(b.addr, &connect_packet("talker", true, 1));
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    for i in 0..5u8 {
        std::thread::sleep(Duration::from_millis(500));
        a.send(&publish_packet("ka/t", &[i], 0, 0, false, false));
        assert_eq!(obs.read_publish().payload, [i]);
    }
    a.ping();
}

// -------------------------------------------------------------- Takeover

// [MQTT-3.1.4-2] [MQTT-3.2.2-2] [MQTT-3.1.2-8]
#[test]
fn takeover_closes_the_old_connection_and_publishes_its_will() {
    let b = TestBroker::start();
    let mut obs = observer(b.addr, "obs", "w", 0);
    let mut a = open_and_send(
        b.addr,
        &connect_with_will("x", false, 60, "w", b"A gone", 0, false),
    );
    a.expect(&[0x20, 0x02, 0x00, 0x00]);
    a.subscribe(1, &[("t", 1)]);
    let mut bb = open_and_send(b.addr, &connect_packet("x", false, 60));
    bb.expect(&[0x20, 0x02, 0x01, 0x00]);
    a.expect_closed();
    let m = obs.read_publish();
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("w", &b"A gone"[..]));
    // The session moved to B.
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"to B", 1, 1, false);
    let m = bb.read_publish();
    assert_eq!(m.payload, b"to B");
    bb.send(&puback(m.pkid));
    // Refused CONNECTs with the same id never kick B: bad protocol level
    // (0x01), reserved connect flag, wildcard in the Will Topic.
    assert_refused_with(
        b.addr,
        &connect_raw(b"MQTT", 3, 0x00, 60, &field(b"x")),
        0x01,
    );
    assert_rejected_without_connack(b.addr, &connect_fields(0x01, &[b"x"]));
    assert_rejected_without_connack(b.addr, &connect_fields(0x06, &[b"x", b"w/#", b"m"]));
    bb.ping();
    publish(&mut publ, "t", b"still B", 1, 2, false);
    assert_eq!(bb.read_publish().payload, b"still B");
    // No second Will (B has none, A's was published once).
    assert_nothing_delivered(&mut obs);
}

// [MQTT-3.1.4-2]
#[test]
fn connect_refused_by_authentication_never_kicks_the_connected_client() {
    let b = AuthBroker::start();
    let mut bb = assert_accepted(b.addr, &connect_fields(0xC2, &[b"x", b"user", b"good"]));
    assert_refused_with(
        b.addr,
        &connect_fields(0xC2, &[b"x", b"user", b"bad"]),
        0x04,
    );
    bb.ping();
    // Control: an accepted CONNECT with the same id does kick it.
    let _c = assert_accepted(b.addr, &connect_fields(0xC2, &[b"x", b"user", b"good"]));
    bb.expect_closed();
}

// [MQTT-3.1.4-2] [MQTT-3.1.2-6] [MQTT-3.2.2-1]
#[test]
fn takeover_with_clean_session_1_discards_the_old_session() {
    let b = TestBroker::start();
    let (mut a, _) = Raw::mqtt(b.addr, "x", false);
    a.subscribe(1, &[("t", 1)]);
    let mut bb = open_and_send(b.addr, &connect_packet("x", true, 60));
    bb.expect(&[0x20, 0x02, 0x00, 0x00]);
    a.expect_closed();
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publish(&mut publ, "t", b"gone", 1, 1, false);
    assert_nothing_delivered(&mut bb);
}
