//! The embedding API's host side beyond publish and subscribe: host
//! publishes held back by a full queue (never dropped), the listening
//! sockets closed at shutdown, disconnecting a client by id, the
//! publisher's client id, connection events with the user name, and the
//! thread-safe `Remote`. The test thread is the host and drives the
//! broker; clients run in their own threads.

mod common;
use common::*;
use midge::protocol::QoS;
use midge::{Broker, Config, Event, Published};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn broker(adjust: impl FnOnce(&mut Config)) -> (Broker, SocketAddr) {
    let mut config = Config::default();
    config.listen_on(["127.0.0.1:0".parse().unwrap()]);
    config.set("sys_interval", "0").unwrap();
    adjust(&mut config);
    let broker = Broker::new(config).expect("broker starts");
    let addr = broker.local_addr().unwrap();
    (broker, addr)
}

/// Runs the loop until `done` says so (bounded by WAIT).
fn pump_until(broker: &mut Broker, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < end, "condition not met within {WAIT:?}");
        broker
            .poll_once(Some(Duration::from_millis(5)))
            .expect("poll");
    }
}

/// Runs the loop until a value arrives on `rx`.
fn pump_recv<T>(broker: &mut Broker, rx: &mpsc::Receiver<T>) -> T {
    let mut got = None;
    pump_until(broker, || {
        got = rx.try_recv().ok();
        got.is_some()
    });
    got.unwrap()
}

/// A subscriber that does not read holds the host's QoS 1 publishes back
/// (mosquitto-style dropping would lose them); once it reads, the ready
/// callback says the host may go on, and every message arrives in order.
#[test]
fn host_publishes_wait_for_a_full_queue_without_loss() {
    let (mut broker, addr) = broker(|c| {
        c.set("max_queued_messages", "5").unwrap();
        c.set("max_inflight_messages", "20").unwrap();
    });
    let (to_host, from_client) = mpsc::channel();
    let (go, wait_go) = mpsc::channel::<usize>();
    let client = std::thread::spawn(move || {
        let (mut c, _) = Raw::mqtt(addr, "slow", true);
        c.subscribe(1, &[("bp", 1)]);
        to_host.send(()).unwrap();
        let n = wait_go.recv_timeout(WAIT).unwrap();
        let mut got = Vec::new();
        for _ in 0..n {
            let p = c.read_publish();
            c.send(&[0x40, 2, (p.pkid >> 8) as u8, p.pkid as u8]);
            got.push(String::from_utf8(p.payload).unwrap());
        }
        to_host.send(()).unwrap();
        got
    });
    pump_recv(&mut broker, &from_client);
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    broker.set_ready_callback(move || flag.store(true, Ordering::SeqCst));
    let mut sent = 0;
    loop {
        assert!(sent < 100, "the host was never paused");
        let r = broker.publish("bp", sent.to_string().as_bytes(), QoS::AtLeastOnce, false);
        sent += 1;
        if r.expect("publish") == Published::Paused {
            break;
        }
    }
    assert!(broker.host_paused());
    let refused = broker.publish("bp", b"more", QoS::AtLeastOnce, false);
    assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(broker.stats().dropped_queue_full, 0);
    go.send(sent).unwrap();
    pump_recv(&mut broker, &from_client);
    pump_until(&mut broker, || ready.load(Ordering::SeqCst));
    assert!(!broker.host_paused());
    let want: Vec<String> = (0..sent).map(|i| i.to_string()).collect();
    assert_eq!(client.join().unwrap(), want);
}

#[test]
fn shutdown_closes_the_listening_socket() {
    let (mut broker, addr) = broker(|_| {});
    broker.shutdown();
    let refused = TcpStream::connect_timeout(&addr, WAIT);
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

/// The host closes a client by id: its Will goes out, the event names the
/// client, its user and why; host subscriptions learn who published.
#[test]
fn disconnect_by_id_events_and_the_publisher_id() {
    let (mut broker, addr) = broker(|_| {});
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    broker.set_event_callback(move |e| {
        log.lock().unwrap().push(match e {
            Event::Connected {
                client_id,
                username,
                ..
            } => format!("connected {client_id} {username:?}"),
            Event::Disconnected {
                client_id,
                username,
                reason,
                ..
            } => format!("disconnected {client_id} {username:?}: {reason}"),
        })
    });
    let log = seen.clone();
    broker
        .subscribe("#", QoS::AtMostOnce, move |m| {
            let text = String::from_utf8_lossy(m.payload);
            log.lock()
                .unwrap()
                .push(format!("{} {text} from {:?}", m.topic, m.publisher));
        })
        .unwrap();
    let (to_host, from_client) = mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut c = Raw::connect(addr);
        let mut connect = connect_with_will("kim", true, 0, "gone/kim", b"bye", 0, false);
        // Plus a user name (flag and field): connect_with_will sends none.
        connect[9] |= 0x80;
        connect.extend_from_slice(&[0, 3, b'k', b'i', b'm']);
        connect[1] += 5;
        c.send(&connect);
        assert_eq!(c.read_reply("CONNACK").unwrap(), (0x20, vec![0, 0]));
        c.publish_done("news", b"hi", 0, 0);
        to_host.send(()).unwrap();
        c.expect_closed();
    });
    pump_recv(&mut broker, &from_client);
    assert!(!broker.disconnect_client("nobody"));
    assert!(broker.disconnect_client("kim"));
    pump_until(&mut broker, || client.is_finished());
    client.join().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "connected kim Some(\"kim\")",
            "news hi from Some(\"kim\")",
            "gone/kim bye from None",
            "disconnected kim Some(\"kim\"): disconnected by the host program",
        ]
    );
}

/// Another thread publishes through a `Remote` and asks for a shutdown;
/// the loop carries both out (what was queued before the shutdown goes
/// first), and later publishes are refused.
#[test]
fn remote_publishes_and_shuts_down_from_another_thread() {
    let (mut broker, _) = broker(|_| {});
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    broker
        .subscribe("r/#", QoS::AtLeastOnce, move |m| {
            log.lock().unwrap().push(m.payload.to_vec())
        })
        .unwrap();
    let remote = broker.remote();
    let thread = std::thread::spawn(move || {
        for i in 0..100u32 {
            remote
                .publish("r/x", &i.to_be_bytes(), QoS::AtLeastOnce, false)
                .unwrap();
        }
        remote
    });
    let remote = thread.join().unwrap();
    // The loop wakes for the queue.
    pump_until(&mut broker, || got.lock().unwrap().len() == 100);
    let thread = std::thread::spawn(move || {
        for i in 100..1000u32 {
            remote
                .publish("r/x", &i.to_be_bytes(), QoS::AtLeastOnce, false)
                .unwrap();
        }
        remote.shutdown();
        remote
    });
    let remote = thread.join().unwrap();
    assert!(broker.is_shutting_down());
    broker.shutdown();
    let want: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(*got.lock().unwrap(), want);
    let refused = remote.publish("r/x", b"late", QoS::AtMostOnce, false);
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::NotConnected
    );
}
