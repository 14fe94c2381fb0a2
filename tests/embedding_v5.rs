//! The embedding API and MQTT 5: a host reads a message's properties and
//! publishes with properties, and implements an enhanced authentication
//! method (AUTH exchanges, re-authentication). Clients speak raw MQTT 5
//! bytes over loopback; the broker runs in a thread of its own.

mod common;
use common::*;
use midge::protocol::{Properties, PropertyValues, QoS};
use midge::{AuthStep, Broker, Config, ShutdownHandle};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A broker on loopback with host hooks set by `setup`, run in a thread.
struct Hosted {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl Hosted {
    fn start(setup: impl FnOnce(&mut Broker) + Send + 'static) -> Hosted {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut config = Config::default();
            config.listen_on(["127.0.0.1:0".parse().unwrap()]);
            config.set("sys_interval", "0").unwrap();
            let mut broker = Broker::new(config).expect("broker starts");
            setup(&mut broker);
            let addr = broker.local_addr().unwrap();
            tx.send((addr, broker.shutdown_handle())).unwrap();
            broker.run().expect("broker loop");
        });
        let (addr, stop) = rx.recv_timeout(WAIT).expect("broker started");
        Hosted {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hosted {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A property block: length, then the properties as given.
fn props(bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![bytes.len() as u8];
    v.extend_from_slice(bytes);
    v
}

/// `id` (1 byte) followed by a two-byte-length string or binary.
fn prop_str(id: u8, s: &[u8]) -> Vec<u8> {
    let mut v = vec![id];
    v.extend_from_slice(&sessions::field(s));
    v
}

/// An MQTT 5 CONNECT (Clean Start) of `id` with these properties.
fn connect5(id: &str, properties: &[u8]) -> Vec<u8> {
    let mut body = sessions::field(b"MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 60]);
    body.extend_from_slice(&props(properties));
    body.extend_from_slice(&sessions::field(id.as_bytes()));
    packet(0x10, &body)
}

/// An AUTH with reason `code`, method and data.
fn auth(code: u8, method: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = prop_str(0x15, method);
    p.extend_from_slice(&prop_str(0x16, data));
    let mut body = vec![code];
    body.extend_from_slice(&props(&p));
    packet(0xF0, &body)
}

/// (reason code, property block) of an AUTH, CONNACK or DISCONNECT body;
/// `skip` bytes come before the reason code (CONNACK's flags).
fn reason_and_props(body: &[u8], skip: usize) -> (u8, Vec<u8>) {
    (body[skip], body[skip + 1..].to_vec())
}

/// The host's "TOKEN" method: the client sends "hello", the host asks for
/// a response, "secret" is accepted with "welcome", anything else refused;
/// a re-authentication with "again" is accepted at once.
fn token_method(broker: &mut Broker) {
    broker.set_auth_method("TOKEN", |req| match (req.step, req.data) {
        (0, Some(b"again")) if req.reauthentication => AuthStep::Accept(None),
        (0, Some(b"hello")) => AuthStep::Continue(b"challenge".to_vec()),
        (1, Some(b"secret")) => AuthStep::Accept(Some(b"welcome".to_vec())),
        _ => AuthStep::Refuse,
    });
}

fn token_connect(id: &str) -> Vec<u8> {
    let mut p = prop_str(0x15, b"TOKEN");
    p.extend_from_slice(&prop_str(0x16, b"hello"));
    connect5(id, &p)
}

// An AUTH exchange through the host's method: AUTH 0x18 with the method
// and the host's challenge, the client's AUTH 0x18 answer, then CONNACK 0
// carrying the method and the host's final data; then a re-authentication
// (AUTH 0x19) answered with AUTH 0x00. [MQTT-4.12.0-2] [MQTT-4.12.0-5]
// [MQTT-4.12.1-1]
#[test]
fn an_auth_exchange_through_the_hosts_method_connects_and_reauthenticates() {
    let h = Hosted::start(token_method);
    let mut c = Raw::connect(h.addr);
    c.send(&token_connect("tok"));
    let (first, body) = c.read_packet().expect("AUTH");
    assert_eq!(first, 0xF0, "AUTH before CONNACK");
    let (code, p) = reason_and_props(&body, 0);
    assert_eq!(code, 0x18, "Continue Authentication");
    assert!(p.windows(5).any(|w| w == b"TOKEN") && p.windows(9).any(|w| w == b"challenge"));
    c.send(&auth(0x18, b"TOKEN", b"secret"));
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK");
    assert_eq!(first, 0x20);
    let (code, p) = reason_and_props(&body, 1);
    assert_eq!(code, 0x00);
    assert!(p.windows(5).any(|w| w == b"TOKEN"), "method in CONNACK");
    assert!(
        p.windows(7).any(|w| w == b"welcome"),
        "final data in CONNACK"
    );
    c.send(&auth(0x19, b"TOKEN", b"again"));
    let (first, body) = c.read_packet().expect("AUTH");
    assert_eq!((first, body[0]), (0xF0, 0x00), "re-authenticated");
    c.ping(); // still connected
}

// The host refuses a wrong answer: CONNACK 0x87 and close; a method the
// host does not implement: CONNACK 0x8C; a failed re-authentication:
// DISCONNECT 0x87 and close. [MQTT-4.12.0-1] [MQTT-4.12.0-4]
// [MQTT-4.12.1-2]
#[test]
fn refused_and_unknown_methods_and_a_failed_reauthentication() {
    let h = Hosted::start(token_method);
    let mut c = Raw::connect(h.addr);
    c.send(&token_connect("wrong"));
    c.read_packet().expect("AUTH");
    c.send(&auth(0x18, b"TOKEN", b"guess"));
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK");
    assert_eq!((first, body[1]), (0x20, 0x87));
    c.expect_closed();

    let mut c = Raw::connect(h.addr);
    c.send(&connect5("other", &prop_str(0x15, b"SCRAM-SHA-1")));
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK");
    assert_eq!((first, body[1]), (0x20, 0x8C));
    c.expect_closed();

    let mut c = Raw::connect(h.addr);
    c.send(&token_connect("re"));
    c.read_packet().expect("AUTH");
    c.send(&auth(0x18, b"TOKEN", b"secret"));
    c.read_reply("CONNACK").expect("CONNACK");
    c.send(&auth(0x19, b"TOKEN", b"nope"));
    let (first, body) = c.read_packet().expect("DISCONNECT");
    assert_eq!((first, body[0]), (0xE0, 0x87));
    c.expect_closed();
}

// A host subscription sees an MQTT 5 publisher's User Property, and a host
// publish with properties reaches an MQTT 5 subscriber with them.
// [MQTT-3.3.2-17] [MQTT-3.3.2-20]
#[test]
fn host_reads_and_publishes_properties() {
    let (tx, rx) = mpsc::channel();
    let h = Hosted::start(move |b| {
        b.subscribe("in/#", QoS::AtMostOnce, move |m| {
            let users = m.properties.get().map(|p| p.user_properties.clone());
            let _ = tx.send(users.unwrap_or_default());
        })
        .expect("host subscribes");
    });
    let mut p = Raw::connect(h.addr);
    p.send(&connect5("pub", &[]));
    p.read_reply("CONNACK").expect("CONNACK");
    let mut user = vec![0x26];
    user.extend_from_slice(&sessions::field(b"k"));
    user.extend_from_slice(&sessions::field(b"v"));
    let mut body = sessions::field(b"in/a");
    body.extend_from_slice(&props(&user));
    body.extend_from_slice(b"x");
    p.send(&packet(0x30, &body));
    let got = rx.recv_timeout(WAIT).expect("host callback");
    assert_eq!(got, vec![("k".to_string(), "v".to_string())]);

    // The host publishes with a Content Type; it needs the broker, which
    // runs in its thread: a broker of our own, polled here.
    let mut config = Config::default();
    config.listen_on(["127.0.0.1:0".parse().unwrap()]);
    config.set("sys_interval", "0").unwrap();
    let mut broker = Broker::new(config).expect("broker");
    let addr = broker.local_addr().unwrap();
    let sub = std::thread::spawn(move || {
        let mut s = Raw::connect(addr);
        s.send(&connect5("sub", &[]));
        s.read_reply("CONNACK").expect("CONNACK");
        let mut body = vec![0, 1, 0];
        body.extend_from_slice(&sessions::field(b"out"));
        body.push(0);
        s.send(&packet(0x82, &body));
        s.read_reply("SUBACK").expect("SUBACK");
        s.read_packet().expect("PUBLISH")
    });
    let deadline = std::time::Instant::now() + WAIT;
    while broker.stats().subscriptions == 0 {
        assert!(std::time::Instant::now() < deadline, "subscribed in time");
        broker
            .poll_once(Some(std::time::Duration::from_millis(5)))
            .unwrap();
    }
    let properties = Properties::from(PropertyValues {
        content_type: Some("text/plain".into()),
        ..PropertyValues::default()
    });
    broker
        .publish_with_properties("out", b"hi", QoS::AtMostOnce, false, properties)
        .expect("host publish");
    let (first, body) = sub.join().expect("subscriber");
    assert_eq!(first, 0x30);
    assert!(body.windows(10).any(|w| w == b"text/plain"), "{body:02x?}");
}
