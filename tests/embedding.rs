//! Embedding: a host program with its own poll loop (several descriptors of
//! its own plus the broker's) drives the broker with `poll_once`, publishes
//! and subscribes without a socket, sees connection events and decides
//! authentication.

mod common;
use common::*;
use midge::protocol::QoS;
use midge::{AuthDecision, Broker, Config, Event};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BROKER: Token = Token(0);
const COMMANDS: Token = Token(1);

/// The host program: its own `mio::Poll` watching the broker's descriptor
/// and a command socket ("publish TOPIC PAYLOAD" lines; EOF = shut down).
fn host_loop(mut broker: Broker, mut commands: UnixStream, seen: mpsc::Sender<String>) {
    let mut poll = Poll::new().unwrap();
    let fd = broker.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), BROKER, Interest::READABLE)
        .unwrap();
    poll.registry()
        .register(&mut commands, COMMANDS, Interest::READABLE)
        .unwrap();
    let tx = seen.clone();
    broker
        .subscribe("host/in/#", QoS::ExactlyOnce, move |m| {
            let text = String::from_utf8_lossy(m.payload);
            let _ = tx.send(format!("message {} {} {:?}", m.topic, text, m.qos));
        })
        .unwrap();
    let tx = seen.clone();
    broker.set_event_callback(move |e| {
        let _ = tx.send(match e {
            Event::Connected { client_id, .. } => format!("connected {client_id}"),
            Event::Disconnected { client_id, .. } => format!("disconnected {client_id}"),
        });
    });
    broker.set_authenticator(|c| match c.username {
        Some("bad") => AuthDecision::BadCredentials,
        _ => AuthDecision::Accept,
    });
    let mut events = Events::with_capacity(16);
    let mut pending = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        // The broker's next deadline bounds the host's own wait.
        let timeout = broker
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        poll.poll(&mut events, timeout).unwrap();
        let mut eof = false;
        for e in events.iter() {
            if e.token() == COMMANDS {
                let mut buf = [0u8; 1024];
                loop {
                    match std::io::Read::read(&mut commands, &mut buf) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(_) => break,
                    }
                }
            }
        }
        for line in BufReader::new(&pending[..]).lines().map_while(Result::ok) {
            let mut parts = line.splitn(3, ' ');
            if let (Some("publish"), Some(t), Some(p)) = (parts.next(), parts.next(), parts.next())
            {
                broker
                    .publish(t, p.as_bytes(), QoS::AtLeastOnce, false)
                    .unwrap();
            }
        }
        pending.clear();
        if eof {
            broker.shutdown();
            let _ = seen.send("shut down".into());
            return;
        }
        broker.poll_once(Some(Duration::ZERO)).unwrap();
    }
    panic!("host loop ran past its bound");
}

#[test]
fn host_loop_drives_the_broker_both_ways() {
    let mut config = Config::default();
    config.listen_on(["127.0.0.1:0".parse().unwrap()]);
    let broker = Broker::new(config).unwrap();
    let addr = broker.local_addr().unwrap();
    let (mut cmd, host_end) = UnixStream::pair().unwrap();
    let (tx, seen) = mpsc::channel();
    let host = std::thread::spawn(move || host_loop(broker, host_end, tx));
    let next = || {
        seen.recv_timeout(Duration::from_secs(5))
            .expect("host event")
    };

    // A TCP client connects (event), subscribes; the host publishes to it.
    let mut client = Raw::connect(addr);
    client.send(&connect_with_will(
        "dev1",
        true,
        60,
        "status/dev1",
        b"offline",
        1,
        false,
    ));
    client.expect(&[0x20, 2, 0, 0]);
    assert_eq!(next(), "connected dev1");
    client.subscribe(1, &[("host/out", 1)]);
    cmd.write_all(b"publish host/out from-the-host\n").unwrap();
    let m = client.read_publish();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.qos),
        ("host/out", &b"from-the-host"[..], 1)
    );
    client.send(&[0x40, 2, (m.pkid >> 8) as u8, m.pkid as u8]);

    // A TCP publish reaches the host's callback, at min(pub, sub) QoS.
    client.send(&publish_packet(
        "host/in/a",
        b"to-the-host",
        1,
        5,
        false,
        false,
    ));
    client.expect(&[0x40, 2, 0, 5]);
    assert_eq!(next(), "message host/in/a to-the-host AtLeastOnce");

    // The host's authenticator refuses a user with CONNACK 4.
    let mut bad = Raw::connect(addr);
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0, 60, 0, 1, b'x'];
    body.extend_from_slice(&[0, 3, b'b', b'a', b'd']);
    bad.send(&packet(0x10, &body));
    bad.expect(&[0x20, 2, 0, 4]);
    bad.expect_closed();

    // An observer of the Will; then the host shuts down: dev1's Will is
    // published before the connections close.
    let (mut observer, _) = Raw::mqtt(addr, "observer", true);
    assert_eq!(next(), "connected observer");
    observer.subscribe(1, &[("status/+", 1)]);
    drop(cmd);
    let will = observer.read_publish();
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("status/dev1", &b"offline"[..])
    );
    observer.expect_closed();
    client.expect_closed();
    let mut rest = Vec::new();
    while let Ok(e) = seen.recv_timeout(Duration::from_secs(5)) {
        rest.push(e);
        if rest.last().map(String::as_str) == Some("shut down") {
            break;
        }
    }
    assert!(rest.contains(&"disconnected dev1".to_string()), "{rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("shut down"));
    host.join().unwrap();
}

#[test]
fn keep_alive_is_enforced_when_the_host_honours_next_deadline() {
    let mut config = Config::default();
    config.listen_on(["127.0.0.1:0".parse().unwrap()]);
    let broker = Broker::new(config).unwrap();
    let addr = broker.local_addr().unwrap();
    let (cmd, host_end) = UnixStream::pair().unwrap();
    let (tx, seen) = mpsc::channel();
    let host = std::thread::spawn(move || host_loop(broker, host_end, tx));
    let mut c = Raw::connect(addr);
    c.send(&connect_packet("sleepy", true, 1));
    c.expect(&[0x20, 2, 0, 0]);
    let start = Instant::now();
    c.expect_closed(); // [MQTT-3.1.2-24] with K = 1: closed after 1.5 s
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(2500),
        "closed after {waited:?}"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "connected sleepy"
    );
    drop(cmd);
    host.join().unwrap();
}

/// Host subscriptions are their own kind of destination, not sessions:
/// they count as subscriptions but not as clients or sessions, each gets a
/// matching message once, and unsubscribing removes it from routing.
#[test]
fn host_subscriptions_are_destinations_not_sessions() {
    use std::sync::{Arc, Mutex};
    let mut config = Config::default();
    config.listen_on(["127.0.0.1:0".parse().unwrap()]);
    let mut broker = Broker::new(config).unwrap();
    broker
        .publish("h/retained", b"r", QoS::AtMostOnce, true)
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = |name: &'static str| {
        let got = got.clone();
        move |m: &midge::HostMessage<'_>| {
            let text = String::from_utf8_lossy(m.payload).into_owned();
            got.lock()
                .unwrap()
                .push((name, m.topic.to_string(), text, m.retain));
        }
    };
    let a = broker.subscribe("h/#", QoS::AtMostOnce, sink("a")).unwrap();
    let b = broker.subscribe("h/+", QoS::AtMostOnce, sink("b")).unwrap();
    let stats = broker.stats();
    assert_eq!((stats.sessions, stats.subscriptions), (0, 2));
    broker.publish("h/x", b"1", QoS::AtMostOnce, false).unwrap();
    assert!(broker.unsubscribe(a));
    assert!(!broker.unsubscribe(a), "already gone");
    broker.publish("h/y", b"2", QoS::AtMostOnce, false).unwrap();
    assert!(broker.unsubscribe(b));
    broker.publish("h/z", b"3", QoS::AtMostOnce, false).unwrap();
    let s = |t: &str| t.to_string();
    assert_eq!(
        *got.lock().unwrap(),
        vec![
            ("a", s("h/retained"), s("r"), true),
            ("b", s("h/retained"), s("r"), true),
            ("a", s("h/x"), s("1"), false),
            ("b", s("h/x"), s("1"), false),
            ("b", s("h/y"), s("2"), false),
        ]
    );
    assert_eq!(broker.stats().subscriptions, 0);
}
