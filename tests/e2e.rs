//! End-to-end flows through an independent MQTT client, `rumqttc` (its
//! synchronous `Client`/`Connection` API): what a user of the broker checks.
//!
//! Each `Mq` runs its rumqttc `Connection` in a thread that forwards every
//! event into a channel; the test waits on that channel with bounded
//! timeouts. The thread stops at the first connection error (rumqttc would
//! otherwise reconnect), so a closed connection is observable too.

mod common;
use common::*;

use rumqttc::{
    Client, ConnectReturnCode, Event, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeReasonCode,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the connection thread forwards.
enum Ev {
    Event(Event),
    Error(String),
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => panic!("bad qos {n}"),
    }
}

fn qos_num(q: QoS) -> u8 {
    q as u8
}

fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A rumqttc client whose connection runs in a thread.
struct Mq {
    name: String,
    client: Client,
    events: Receiver<Ev>,
    /// PUBLISHes that arrived while waiting for something else.
    inbox: VecDeque<Publish>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    session_present: bool,
}

impl Mq {
    /// Connects with CleanSession 1 and waits for CONNACK 0.
    fn connect(addr: SocketAddr, id: &str) -> Mq {
        Mq::connect_with(options(addr, id))
    }

    /// Connects with these options and waits for CONNACK 0.
    fn connect_with(opts: MqttOptions) -> Mq {
        let name = opts.client_id();
        let (client, mut connection) = Client::new(opts, 64);
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for ev in connection.iter() {
                match ev {
                    Ok(ev) => {
                        if tx.send(Ev::Event(ev)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Ev::Error(e.to_string()));
                        break;
                    }
                }
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
            }
            // Close the socket before the channel reports the end, so a
            // waiter that sees the channel closed knows the socket is gone.
            drop(connection);
            drop(tx);
        });
        let mut mq = Mq {
            name,
            client,
            events,
            inbox: VecDeque::new(),
            stop,
            thread: Some(thread),
            session_present: false,
        };
        // CONNACK is written as soon as the CONNECT is read: REPLY_WAIT.
        match mq.next_event("CONNACK", REPLY_WAIT, Instant::now() + REPLY_WAIT) {
            Event::Incoming(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, ConnectReturnCode::Success, "{}: CONNACK", mq.name);
                mq.session_present = ack.session_present;
            }
            other => panic!("{}: expected CONNACK, got {other:?}", mq.name),
        }
        mq
    }

    /// The next event by `deadline` (`wait` after the wait began).
    fn next_event(&mut self, what: &str, wait: Duration, deadline: Instant) -> Event {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(Ev::Event(e)) => e,
            Ok(Ev::Error(e)) => panic!(
                "{}: connection error while waiting for {what}: {e}",
                self.name
            ),
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no {what} within {wait:?}", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}: connection ended while waiting for {what}", self.name)
            }
        }
    }

    /// Waits (at most WAIT) for an event `f` accepts; PUBLISHes it does not
    /// accept are kept for `next_publish`.
    fn wait_for<T>(&mut self, what: &str, f: impl FnMut(&Event) -> Option<T>) -> T {
        self.wait_within(what, WAIT, f)
    }

    /// Like `wait_for`, at most `wait`.
    fn wait_within<T>(
        &mut self,
        what: &str,
        wait: Duration,
        mut f: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + wait;
        loop {
            let ev = self.next_event(what, wait, deadline);
            if let Some(t) = f(&ev) {
                return t;
            }
            if let Event::Incoming(Packet::Publish(p)) = ev {
                self.inbox.push_back(p);
            }
        }
    }

    /// Subscribes and asserts the SUBACK grants `q`.
    fn subscribe(&mut self, filter: &str, q: u8) {
        self.client
            .subscribe(filter, qos(q))
            .expect("subscribe request");
        // Written as soon as the SUBSCRIBE is read: REPLY_WAIT.
        let codes = self.wait_within("SUBACK", REPLY_WAIT, |e| match e {
            Event::Incoming(Packet::SubAck(s)) => Some(s.return_codes.clone()),
            _ => None,
        });
        assert_eq!(
            codes,
            vec![SubscribeReasonCode::Success(qos(q))],
            "{}: SUBACK for {filter}",
            self.name
        );
    }

    /// Publishes and waits until the exchange is complete: written for
    /// QoS 0, PUBACK for QoS 1, PUBCOMP for QoS 2.
    fn publish(&mut self, topic: &str, q: u8, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos(q), retain, payload.to_vec())
            .expect("publish request");
        self.wait_acks(q, 1);
    }

    /// Waits for `n` completed outgoing publishes of QoS `q`.
    fn wait_acks(&mut self, q: u8, n: usize) {
        for _ in 0..n {
            self.wait_for("publish completion", |e| match (q, e) {
                (0, Event::Outgoing(Outgoing::Publish(_))) => Some(()),
                (1, Event::Incoming(Packet::PubAck(_))) => Some(()),
                (2, Event::Incoming(Packet::PubComp(_))) => Some(()),
                _ => None,
            });
        }
    }

    fn next_publish(&mut self) -> Publish {
        if let Some(p) = self.inbox.pop_front() {
            return p;
        }
        self.wait_for("PUBLISH", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p.clone()),
            _ => None,
        })
    }

    /// Sends DISCONNECT and waits for the broker to close the connection.
    fn disconnect(mut self) {
        self.client.disconnect().expect("disconnect request");
        let deadline = Instant::now() + WAIT;
        let mut sent = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Ev::Event(Event::Outgoing(Outgoing::Disconnect))) => sent = true,
                Ok(Ev::Event(_)) => {}
                Ok(Ev::Error(_)) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: broker did not close the connection within {WAIT:?} after DISCONNECT",
                    self.name
                ),
            }
        }
        assert!(sent, "{}: DISCONNECT was not sent", self.name);
        self.join();
    }

    /// Drops the TCP connection without DISCONNECT, as a crashed client
    /// would, and waits until the socket is closed.
    fn vanish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Any request wakes the connection thread, which then sees the flag
        // and drops the connection. An UNSUBSCRIBE of an unused filter is
        // harmless to every test.
        self.client
            .unsubscribe("e2e/nudge")
            .expect("unsubscribe request");
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: connection thread did not stop", self.name)
                }
            }
        }
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("connection thread panicked");
        }
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        // Detach: the thread ends at its next event or when the broker
        // stops, and never reconnects.
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_unsubscribe("e2e/nudge");
    }
}

fn assert_publish(p: &Publish, topic: &str, payload: &[u8], q: u8, retain: bool) {
    assert_eq!(p.topic, topic, "topic");
    assert_eq!(&p.payload[..], payload, "payload on {topic}");
    assert_eq!(qos_num(p.qos), q, "QoS on {topic}");
    assert_eq!(p.retain, retain, "RETAIN on {topic}");
}

/// Every byte value, so a payload that is mangled anywhere shows.
fn binary_payload(tag: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.push(tag);
    v
}

// [MQTT-3.8.4-6] [MQTT-3.3.2-3] [MQTT-4.3.3-2]: every publish QoS to every
// subscription QoS arrives with topic and payload intact at min(pub, sub).
#[test]
fn qos_0_1_2_round_trips_deliver_at_min_of_publish_and_subscription_qos() {
    let b = TestBroker::start();
    let topic = "e2e/qos/größe/ü";
    let mut subs: Vec<Mq> = (0..3u8)
        .map(|sq| {
            let mut s = Mq::connect(b.addr, &format!("sub-q{sq}"));
            s.subscribe(topic, sq);
            s
        })
        .collect();
    let mut publ = Mq::connect(b.addr, "pub");
    for pq in 0..3u8 {
        let payload = binary_payload(pq);
        publ.publish(topic, pq, false, &payload);
        for (sq, s) in subs.iter_mut().enumerate() {
            let p = s.next_publish();
            assert_publish(&p, topic, &payload, pq.min(sq as u8), false);
            assert!(!p.dup, "first delivery has DUP 0");
        }
    }
}

// A message larger than one TCP segment, at QoS 2, arrives byte for byte.
#[test]
fn large_qos2_payload_arrives_intact() {
    let b = TestBroker::start();
    let big = |id: &str| {
        // rumqttc's default packet limit is 10 KiB.
        let mut o = options(b.addr, id);
        o.set_max_packet_size(1 << 20, 1 << 20);
        Mq::connect_with(o)
    };
    let mut sub = big("sub");
    sub.subscribe("e2e/big", 2);
    let mut publ = big("pub");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    publ.publish("e2e/big", 2, false, &payload);
    let p = sub.next_publish();
    assert_publish(&p, "e2e/big", &payload, 2, false);
}

// [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-3.3.2-3]: `+` matches exactly one
// level, `#` any number including the parent; deliveries keep the
// published topic name.
#[test]
fn wildcard_subscriptions_plus_and_hash_match_the_right_topics() {
    let b = TestBroker::start();
    let mut plus = Mq::connect(b.addr, "plus");
    plus.subscribe("e2e/w/+/temp", 1);
    let mut hash = Mq::connect(b.addr, "hash");
    hash.subscribe("e2e/w/#", 1);
    let mut levels = Mq::connect(b.addr, "levels");
    levels.subscribe("+/+/+/temp", 1);
    let mut publ = Mq::connect(b.addr, "pub");
    let topics = [
        "e2e/w",              // hash (parent level)
        "e2e/w/kitchen/temp", // plus, hash, levels
        "e2e/w/kitchen/hum",  // hash
        "e2e/w/a/b/temp",     // hash only: + is one level
        "e2e/w//temp",        // plus (empty level), hash, levels
        "e2e/x/kitchen/temp", // levels
        "other/topic",        // nobody
        "e2e/w/end/temp",     // everyone: the end marker
    ];
    for t in topics {
        publ.publish(t, 1, false, t.as_bytes());
    }
    let collect = |m: &mut Mq| {
        let mut got = Vec::new();
        for _ in 0..topics.len() {
            let p = m.next_publish();
            assert_eq!(&p.payload[..], p.topic.as_bytes());
            got.push(p.topic.clone());
            if p.topic == "e2e/w/end/temp" {
                return got;
            }
        }
        panic!("{}: end marker never arrived, got {got:?}", m.name)
    };
    assert_eq!(
        collect(&mut plus),
        ["e2e/w/kitchen/temp", "e2e/w//temp", "e2e/w/end/temp"]
    );
    assert_eq!(
        collect(&mut hash),
        [
            "e2e/w",
            "e2e/w/kitchen/temp",
            "e2e/w/kitchen/hum",
            "e2e/w/a/b/temp",
            "e2e/w//temp",
            "e2e/w/end/temp"
        ]
    );
    assert_eq!(
        collect(&mut levels),
        [
            "e2e/w/kitchen/temp",
            "e2e/w//temp",
            "e2e/x/kitchen/temp",
            "e2e/w/end/temp"
        ]
    );
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.3.1-9] [MQTT-3.3.1-12]:
// the latest retained message reaches a late subscriber with RETAIN 1 at
// min(stored QoS, granted QoS); live subscribers see RETAIN 0; a
// non-retained publish leaves the retained message alone.
#[test]
fn retained_message_set_replace_and_late_subscriber_gets_it_with_retain_flag() {
    let b = TestBroker::start();
    let mut live = Mq::connect(b.addr, "live");
    live.subscribe("e2e/r/+", 2);
    let mut publ = Mq::connect(b.addr, "pub");
    publ.publish("e2e/r/a", 1, true, b"v1");
    publ.publish("e2e/r/a", 2, true, b"v2");
    publ.publish("e2e/r/a", 1, false, b"not retained");
    publ.publish("e2e/r/b", 1, true, b"b1");
    assert_publish(&live.next_publish(), "e2e/r/a", b"v1", 1, false);
    assert_publish(&live.next_publish(), "e2e/r/a", b"v2", 2, false);
    assert_publish(&live.next_publish(), "e2e/r/a", b"not retained", 1, false);
    assert_publish(&live.next_publish(), "e2e/r/b", b"b1", 1, false);

    // Late subscriber at QoS 1: gets only "v2" (stored at QoS 2, so
    // delivered at QoS 1), retained flag set.
    let mut late = Mq::connect(b.addr, "late");
    late.subscribe("e2e/r/a", 1);
    assert_publish(&late.next_publish(), "e2e/r/a", b"v2", 1, true);
    // Nothing else was retained for that filter: the next message is live.
    publ.publish("e2e/r/a", 0, false, b"live");
    assert_publish(&late.next_publish(), "e2e/r/a", b"live", 0, false);

    // A wildcard late subscriber gets one retained message per topic.
    let mut wild = Mq::connect(b.addr, "wild");
    wild.subscribe("e2e/r/#", 2);
    let mut got: Vec<(String, Vec<u8>, u8, bool)> = (0..2)
        .map(|_| {
            let p = wild.next_publish();
            (
                p.topic.clone(),
                p.payload.to_vec(),
                qos_num(p.qos),
                p.retain,
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("e2e/r/a".to_string(), b"v2".to_vec(), 2, true),
            ("e2e/r/b".to_string(), b"b1".to_vec(), 1, true),
        ]
    );
}

// [MQTT-3.3.1-10] [MQTT-3.3.1-11]: an empty retained publish reaches live
// subscribers (RETAIN 0) and deletes the retained message, so a late
// subscriber gets nothing.
#[test]
fn retained_message_deleted_by_empty_payload() {
    let b = TestBroker::start();
    let mut publ = Mq::connect(b.addr, "pub");
    publ.publish("e2e/del", 1, true, b"keep me?");
    let mut live = Mq::connect(b.addr, "live");
    live.subscribe("e2e/del", 1);
    assert_publish(&live.next_publish(), "e2e/del", b"keep me?", 1, true);

    publ.publish("e2e/del", 1, true, b"");
    assert_publish(&live.next_publish(), "e2e/del", b"", 1, false);

    let mut late = Mq::connect(b.addr, "late");
    late.subscribe("e2e/del", 1);
    // Positive control: had a retained message survived, it would have been
    // sent right after the SUBACK, before this one.
    publ.publish("e2e/del", 1, false, b"control");
    assert_publish(&late.next_publish(), "e2e/del", b"control", 1, false);
}

// [MQTT-3.1.2-8] [MQTT-3.1.2-10]: a client that vanishes (socket closed, no
// DISCONNECT) has its Will published, once.
#[test]
fn will_is_published_when_client_vanishes() {
    let b = TestBroker::start();
    let mut watcher = Mq::connect(b.addr, "watcher");
    watcher.subscribe("e2e/will/#", 1);

    let mut o = options(b.addr, "doomed");
    o.set_last_will(LastWill::new(
        "e2e/will/doomed",
        b"doomed went away".to_vec(),
        QoS::AtLeastOnce,
        false,
    ));
    let doomed = Mq::connect_with(o);
    doomed.vanish();

    assert_publish(
        &watcher.next_publish(),
        "e2e/will/doomed",
        b"doomed went away",
        1,
        false,
    );
    // Exactly once: the next message is the control.
    let mut publ = Mq::connect(b.addr, "pub");
    publ.publish("e2e/will/control", 1, false, b"control");
    assert_publish(
        &watcher.next_publish(),
        "e2e/will/control",
        b"control",
        1,
        false,
    );
}

// [MQTT-3.1.2-17] [MQTT-3.3.1-8]: a Will with Will Retain 1 becomes the
// topic's retained message, visible to a later subscriber.
#[test]
fn retained_will_reaches_a_later_subscriber() {
    let b = TestBroker::start();
    let mut o = options(b.addr, "sensor");
    o.set_last_will(LastWill::new(
        "e2e/status/sensor",
        b"offline".to_vec(),
        QoS::ExactlyOnce,
        true,
    ));
    let sensor = Mq::connect_with(o);
    sensor.vanish();
    // The broker may publish the Will just after it notices the close; a
    // subscriber that arrives first sees it live instead.
    let mut later = Mq::connect(b.addr, "later");
    later.subscribe("e2e/status/+", 2);
    let p = later.next_publish();
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], qos_num(p.qos)),
        ("e2e/status/sensor", &b"offline"[..], 2)
    );
    // Once stored, a fresh subscriber certainly gets it as retained.
    let mut fresh = Mq::connect(b.addr, "fresh");
    fresh.subscribe("e2e/status/sensor", 1);
    assert_publish(
        &fresh.next_publish(),
        "e2e/status/sensor",
        b"offline",
        1,
        true,
    );
}

// [MQTT-3.14.4-3] [MQTT-3.1.2-10]: after a clean DISCONNECT the Will is
// discarded.
#[test]
fn will_is_not_published_after_clean_disconnect() {
    let b = TestBroker::start();
    let mut watcher = Mq::connect(b.addr, "watcher");
    watcher.subscribe("e2e/will/#", 1);

    let mut o = options(b.addr, "polite");
    o.set_last_will(LastWill::new(
        "e2e/will/polite",
        b"should never be seen".to_vec(),
        QoS::AtLeastOnce,
        false,
    ));
    let polite = Mq::connect_with(o);
    // Returns once the broker has closed the connection, i.e. after it
    // handled the DISCONNECT: a Will would be queued to the watcher now.
    polite.disconnect();

    let mut publ = Mq::connect(b.addr, "pub");
    publ.publish("e2e/will/control", 1, false, b"control");
    assert_publish(
        &watcher.next_publish(),
        "e2e/will/control",
        b"control",
        1,
        false,
    );
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-4.4.0-1]: a persistent
// session keeps its subscription while offline, stores QoS 1 and 2
// messages and delivers them, in order and at their QoS, after reconnect
// with Session Present 1. QoS 0 is not queued for offline sessions (a
// configuration choice: queue_qos0 = false).
#[test]
fn persistent_session_receives_qos1_and_qos2_published_while_offline() {
    let b = TestBroker::start();
    let mut o = options(b.addr, "persistent");
    o.set_clean_session(false);
    let mut sub = Mq::connect_with(o.clone());
    assert!(!sub.session_present, "first connect: no stored session");
    sub.subscribe("e2e/p/#", 2);
    sub.disconnect();

    let mut publ = Mq::connect(b.addr, "pub");
    publ.publish("e2e/p/one", 1, false, b"first, QoS 1");
    publ.publish("e2e/p/two", 2, false, b"second, QoS 2");
    publ.publish("e2e/p/zero", 0, false, b"QoS 0, not queued");
    publ.publish("e2e/p/three", 1, false, b"third, QoS 1");

    let mut sub = Mq::connect_with(o.clone());
    assert!(sub.session_present, "reconnect: Session Present 1");
    assert_publish(&sub.next_publish(), "e2e/p/one", b"first, QoS 1", 1, false);
    assert_publish(&sub.next_publish(), "e2e/p/two", b"second, QoS 2", 2, false);
    assert_publish(
        &sub.next_publish(),
        "e2e/p/three",
        b"third, QoS 1",
        1,
        false,
    );

    // The subscription survived without a new SUBSCRIBE, and nothing else
    // (the QoS 0 message) was queued ahead of this live one.
    publ.publish("e2e/p/live", 2, false, b"live");
    assert_publish(&sub.next_publish(), "e2e/p/live", b"live", 2, false);

    // A vanished persistent client also keeps its session. Finish the QoS 2
    // exchange first: a new rumqttc client does not know the old one's
    // packet ids, so a resent PUBREL would be an error to it.
    sub.wait_for("PUBCOMP", |e| {
        matches!(e, Event::Outgoing(Outgoing::PubComp(_))).then_some(())
    });
    sub.vanish();
    publ.publish("e2e/p/after-crash", 2, false, b"after crash");
    let mut sub = Mq::connect_with(o);
    assert!(sub.session_present);
    assert_publish(
        &sub.next_publish(),
        "e2e/p/after-crash",
        b"after crash",
        2,
        false,
    );
}

// [MQTT-3.1.2-6] [MQTT-3.2.2-1]: reconnecting with CleanSession 1 discards
// the stored session.
#[test]
fn clean_session_reconnect_discards_persistent_session() {
    let b = TestBroker::start();
    let mut o = options(b.addr, "forgetful");
    o.set_clean_session(false);
    let mut sub = Mq::connect_with(o.clone());
    sub.subscribe("e2e/forget", 1);
    sub.disconnect();

    let mut publ = Mq::connect(b.addr, "pub");
    publ.publish("e2e/forget", 1, false, b"stored for forgetful");

    let clean = Mq::connect(b.addr, "forgetful");
    assert!(!clean.session_present, "CleanSession 1: Session Present 0");
    clean.disconnect();

    let mut again = Mq::connect_with(o);
    assert!(!again.session_present, "the old session is gone");
    // Neither the old subscription nor the stored message survived: with a
    // fresh subscription the first message is the control.
    again.subscribe("e2e/forget2", 1);
    publ.publish("e2e/forget", 1, false, b"old subscription");
    publ.publish("e2e/forget2", 1, false, b"control");
    assert_publish(&again.next_publish(), "e2e/forget2", b"control", 1, false);
}

// [MQTT-4.6.0-6]: 1000 QoS 1 messages from one publisher arrive complete
// and in order.
#[test]
fn thousand_qos1_messages_arrive_complete_and_in_order() {
    const N: usize = 1000;
    let b = TestBroker::start();
    let mut sub = Mq::connect(b.addr, "sub");
    sub.subscribe("e2e/seq", 1);
    let mut publ = Mq::connect(b.addr, "pub");
    for i in 0..N {
        publ.client
            .publish("e2e/seq", QoS::AtLeastOnce, false, i.to_string())
            .expect("publish request");
    }
    let got: Vec<usize> = (0..N)
        .map(|_| {
            let p = sub.next_publish();
            assert_eq!(qos_num(p.qos), 1);
            std::str::from_utf8(&p.payload).unwrap().parse().unwrap()
        })
        .collect();
    let want: Vec<usize> = (0..N).collect();
    assert_eq!(got, want);
    publ.wait_acks(1, N);
}

// [MQTT-4.6.0-6] [MQTT-3.8.4-6]: several publishers and subscribers at once;
// every subscriber gets every message, each publisher's stream in order.
#[test]
fn several_publishers_and_subscribers_at_once() {
    const PUBS: usize = 4;
    const PER: usize = 250;
    let b = TestBroker::start();
    let addr = b.addr;
    let mut subs: Vec<Mq> = (0..3u8)
        .map(|i| {
            let mut s = Mq::connect(addr, &format!("sub-{i}"));
            // QoS 1 and 2 subscriptions, and one wildcard on a deeper filter.
            if i == 2 {
                s.subscribe("e2e/multi/#", 2);
            } else {
                s.subscribe("e2e/multi/+", 1 + i);
            }
            s
        })
        .collect();

    let publishers: Vec<_> = (0..PUBS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut m = Mq::connect(addr, &format!("pub-{p}"));
                let q = if p % 2 == 0 { 1 } else { 2 };
                for i in 0..PER {
                    m.client
                        .publish(format!("e2e/multi/{p}"), qos(q), false, format!("{p}:{i}"))
                        .expect("publish request");
                }
                m.wait_acks(q, PER);
                m.disconnect();
            })
        })
        .collect();

    let sub_qos = [1u8, 2, 2];
    for (n, s) in subs.iter_mut().enumerate() {
        let mut next = [0usize; PUBS];
        for _ in 0..PUBS * PER {
            let p = s.next_publish();
            let text = std::str::from_utf8(&p.payload).unwrap().to_string();
            let (from, i) = text.split_once(':').unwrap();
            let (from, i): (usize, usize) = (from.parse().unwrap(), i.parse().unwrap());
            assert_eq!(p.topic, format!("e2e/multi/{from}"));
            let pub_qos = if from % 2 == 0 { 1 } else { 2 };
            assert_eq!(qos_num(p.qos), sub_qos[n].min(pub_qos), "{}: QoS", s.name);
            assert_eq!(i, next[from], "{}: publisher {from} out of order", s.name);
            next[from] += 1;
        }
        assert_eq!(next, [PER; PUBS], "{}", s.name);
    }
    for t in publishers {
        t.join().expect("publisher thread");
    }
}
