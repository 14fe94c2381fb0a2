//! The broker's counters, exactly: through the embedding API's
//! `Broker::stats()` and through the `$SYS/broker/...` topics (README
//! "$SYS topics", mosquitto's names). Each count is checked against what
//! the clients saw, so a counter that counts anything else fails.

mod common;
use common::*;
use midge::config::QueueFull;
use midge::store::Fsync;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RECEIVED: &str = "$SYS/broker/messages/received";
const SENT: &str = "$SYS/broker/messages/sent";
const DROPPED: &str = "$SYS/broker/publish/messages/dropped";

/// A persistent session subscribed to `filter` at QoS 1, left offline.
fn offline_subscriber(b: &TestBroker, id: &str, filter: &str) {
    let (mut sub, _) = Raw::mqtt(b.addr, id, false);
    sub.subscribe(1, &[(filter, 1)]);
    sub.disconnect();
}

/// Reconnects the persistent session `id` and takes everything it has.
fn reconnect_and_drain(b: &TestBroker, id: &str) -> Vec<Pub> {
    let (mut sub, present) = Raw::mqtt(b.addr, id, false);
    assert!(present, "{id}: Session Present [MQTT-3.2.2-2]");
    sub.drain()
}

// Every PUBLISH received from a client counts once, whatever its QoS;
// every PUBLISH written to a client counts once: live, a retained copy for
// a new subscription [MQTT-3.3.1-6], and a resend on reconnect
// [MQTT-4.4.0-1] too.
#[test]
fn messages_received_and_sent_are_counted_once_each() {
    let b = TestBroker::start_polled(|_| {});
    let (mut a, _) = Raw::mqtt(b.addr, "a", true);
    a.subscribe(1, &[("s/#", 2)]);
    let (mut c, _) = Raw::mqtt(b.addr, "c", true);
    c.subscribe(1, &[("s/#", 2)]);
    let (mut p, _) = Raw::mqtt(b.addr, "p", true);
    p.publish_done("s/0", b"qos0", 0, 0);
    p.publish_done("s/1", b"qos1", 1, 1);
    p.publish_done("s/2", b"qos2", 2, 2);
    assert_eq!((a.drain().len(), c.drain().len()), (3, 3));
    let s = b.stats();
    assert_eq!((s.messages_received, s.messages_sent), (3, 6));

    // Retained: delivered live to a and c, then to a new subscriber.
    p.send(&publish_packet("s/r", b"kept", 1, 3, true, false));
    p.expect(&[0x40, 2, 0, 3]);
    assert_eq!((a.drain().len(), c.drain().len()), (1, 1));
    let (mut late, _) = Raw::mqtt(b.addr, "late", true);
    late.subscribe(1, &[("s/r", 1)]);
    assert_eq!(late.drain().len(), 1);
    let s = b.stats();
    assert_eq!((s.messages_received, s.messages_sent), (4, 9));

    // Sent, not acknowledged, resent with DUP=1 on reconnect: twice.
    let (mut d, _) = Raw::mqtt(b.addr, "durable", false);
    d.subscribe(1, &[("d", 1)]);
    p.publish_done("d", b"twice", 1, 4);
    assert!(!d.read_publish().dup);
    d.disconnect();
    let again = reconnect_and_drain(&b, "durable");
    assert_eq!(again.len(), 1);
    assert!(again[0].dup, "resent with DUP=1 [MQTT-3.3.1-1]");
    let s = b.stats();
    assert_eq!((s.messages_received, s.messages_sent), (5, 11));
    assert_eq!((s.dropped_qos0, s.dropped_queue_full), (0, 0));
}

// A full queue drops (queue_overflow newest) and counts each message it
// drops: an offline session's queue, and an online one's under
// `queue_full drop`.
#[test]
fn messages_dropped_from_full_queues_are_counted() {
    let b = TestBroker::start_polled(|c| {
        c.max_queued = 2;
        c.max_inflight = 1;
        c.queue_full = QueueFull::Drop;
    });
    offline_subscriber(&b, "off", "f/off");
    let (mut on, _) = Raw::mqtt(b.addr, "on", true);
    on.subscribe(1, &[("f/on", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "p", true);
    for i in 1..=5 {
        p.publish_done("f/off", b"x", 1, i); // 2 queued, 3 dropped
    }
    for i in 6..=11 {
        p.publish_done("f/on", b"y", 1, i); // 1 in flight, 2 queued, 3 dropped
    }
    let s = b.stats();
    assert_eq!((s.dropped_queue_full, s.dropped_qos0), (6, 0));
    assert_eq!(on.drain().len(), 3);
    assert_eq!(reconnect_and_drain(&b, "off").len(), 2);
    let s = b.stats();
    assert_eq!((s.messages_received, s.messages_sent), (11, 5));
    assert_eq!(s.dropped_queue_full, 6);
}

// A subscriber that does not read: once its socket buffers and its
// `max_outgoing_bytes` of output are full, QoS 0 messages to it are
// dropped and counted. What it reads later plus what was dropped is
// exactly what was published to it.
#[test]
fn qos0_messages_a_slow_reader_misses_are_counted() {
    let b = TestBroker::start_polled(|c| c.max_outgoing_bytes = 4096);
    let (mut slow, _) = Raw::mqtt(b.addr, "slow", true);
    slow.subscribe(1, &[("z", 0)]);
    let (mut p, _) = Raw::mqtt(b.addr, "fast", true);
    let message = publish_packet("z", &[b'z'; 32 * 1024], 0, 0, false, false);
    let mut published = 0u64;
    // Until drops begin; bounded (64 MiB) whatever the socket buffers.
    while b.stats().dropped_qos0 < 10 {
        assert!(published < 2000, "nothing dropped after {published}");
        for _ in 0..20 {
            p.send(&message);
        }
        published += 20;
        p.ping();
    }
    let got = slow.drain().len() as u64;
    let s = b.stats();
    assert!(got > 0);
    assert_eq!(s.dropped_qos0, published - got, "{got} of {published} read");
    assert_eq!((s.messages_received, s.messages_sent), (published, got));
    assert_eq!(s.dropped_queue_full, 0);
}

// With persistence_max_bytes reached by live state, messages for offline
// persistent sessions are dropped instead of stored, and counted (README
// "Persistence", disk cap).
#[test]
fn messages_dropped_because_the_store_is_full_are_counted() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stats-store-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let b = TestBroker::start_polled(|c| {
        c.persistence = true;
        c.persistence_location = Some(dir.clone());
        c.fsync = Fsync::Always;
        c.persistence_max_bytes = 20_000;
        c.max_queued = 100_000;
    });
    offline_subscriber(&b, "capped", "t");
    let (mut p, _) = Raw::mqtt(b.addr, "filler", true);
    for i in 1..=400u16 {
        p.publish_done("t", &[b'.'; 100], 1, i);
    }
    let dropped = b.stats().dropped_queue_full;
    assert!(dropped > 0, "the store never filled");
    let kept = reconnect_and_drain(&b, "capped").len() as u64;
    assert_eq!(dropped, 400 - kept, "{kept} of 400 kept");
    let s = b.stats();
    assert_eq!((s.messages_received, s.messages_sent), (400, kept));
}

// queue_full block: a publisher feeding full queues of online subscribers
// is paused (its next PUBLISH waits unacknowledged) and counted once per
// pause: not once per full queue, nor per message it sends meanwhile.
#[test]
fn a_paused_publisher_is_counted_once_per_pause() {
    let b = TestBroker::start_polled(|c| {
        c.max_inflight = 1;
        c.max_queued = 1;
    });
    let (mut one, _) = Raw::mqtt(b.addr, "one", true);
    one.subscribe(1, &[("f", 1)]);
    let (mut two, _) = Raw::mqtt(b.addr, "two", true);
    two.subscribe(1, &[("f", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "p", true);
    p.publish_done("f", b"1", 1, 1); // in flight (not acknowledged yet)
    p.publish_done("f", b"2", 1, 2); // queued: both queues are full
    p.publish_done("f", b"3", 1, 3); // queued past the limits; p is paused
    p.send(&publish_packet("f", b"4", 1, 4, false, false));
    p.ping(); // no PUBACK for 4 before the PINGRESP: it waits
    assert_eq!(b.stats().publishers_paused, 1);
    // one drains first: that lets 4 go, which finds two's queue still
    // full and pauses p a second time; two's drain ends that pause.
    for sub in [&mut one, &mut two] {
        let got: Vec<Vec<u8>> = sub.drain().into_iter().map(|m| m.payload).collect();
        assert_eq!(got, [b"1", b"2", b"3", b"4"]);
    }
    p.expect(&[0x40, 2, 0, 4]);
    let s = b.stats();
    assert_eq!((s.publishers_paused, s.dropped_queue_full), (2, 0));
}

// A paused publisher is let go only once the queue it waits on is below
// its limit again, not at every acknowledgement: with a window and a queue
// of one, five messages pause it exactly twice (at 3, and at 5 once 4 is
// queued behind an empty queue).
#[test]
fn a_paused_publisher_resumes_only_when_the_queue_has_room() {
    let b = TestBroker::start_polled(|c| {
        c.max_inflight = 1;
        c.max_queued = 1;
    });
    let (mut sub, _) = Raw::mqtt(b.addr, "sub", true);
    sub.subscribe(1, &[("f", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "p", true);
    for i in 1..=3 {
        p.publish_done("f", &[b'0' + i as u8], 1, i);
    }
    p.send(&publish_packet("f", b"4", 1, 4, false, false));
    p.send(&publish_packet("f", b"5", 1, 5, false, false));
    p.ping(); // 4 and 5 wait: no PUBACK before the PINGRESP
    assert_eq!(b.stats().publishers_paused, 1);
    let got: Vec<Vec<u8>> = sub.drain().into_iter().map(|m| m.payload).collect();
    assert_eq!(got, [b"1", b"2", b"3", b"4", b"5"]);
    p.expect(&[0x40, 2, 0, 4, 0x40, 2, 0, 5]);
    assert_eq!(b.stats().publishers_paused, 2);
}

/// Reads PUBLISHes (within WAIT in all) until `done` accepts one; returns
/// how many were read. `want` says what is awaited, for the failure.
fn read_until(watch: &mut Raw, want: &str, mut done: impl FnMut(&Pub) -> bool) -> u64 {
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        let (first, body) = watch
            .read_packet_by(deadline, want)
            .expect("PUBLISH, got EOF");
        n += 1;
        if done(&parse_publish(first, &body)) {
            return n;
        }
    }
}

/// Unsubscribes; returns how many PUBLISHes came before the UNSUBACK.
fn unsubscribe(watch: &mut Raw, pkid: u16, filters: &[&str]) -> u64 {
    watch.send(&unsubscribe_packet(pkid, filters));
    let mut n = 0;
    loop {
        match watch.read_reply("UNSUBACK").expect("UNSUBACK, got EOF") {
            (0xB0, body) => {
                assert_eq!(body, pkid.to_be_bytes());
                return n;
            }
            (first, body) => {
                parse_publish(first, &body);
                n += 1;
            }
        }
    }
}

fn value(p: &Pub) -> u64 {
    let text = String::from_utf8_lossy(&p.payload);
    text.parse()
        .unwrap_or_else(|_| panic!("{}: {text:?}", p.topic))
}

// messages/received, messages/sent and publish/messages/dropped carry the
// counters. A watcher's own $SYS messages are sent messages too, so sent is
// checked as: traffic + what the watcher had received before the update.
// Live updates arrive with RETAIN 0 [MQTT-3.3.1-9], the stored value on
// subscribing with RETAIN 1 [MQTT-3.3.1-8].
#[test]
fn sys_topics_carry_the_exact_counters() {
    let b = TestBroker::start_polled(|c| {
        c.sys_interval = Duration::from_millis(250);
        c.max_queued = 1;
    });
    let (mut online, _) = Raw::mqtt(b.addr, "online", true);
    online.subscribe(1, &[("t", 1)]);
    offline_subscriber(&b, "offline", "t");
    let (mut p, _) = Raw::mqtt(b.addr, "p", true);
    for i in 1..=3 {
        p.publish_done("t", b"m", 1, i); // the offline queue keeps 1
    }
    assert_eq!(online.drain().len(), 3);
    let traffic = b.stats();
    assert_eq!((traffic.messages_received, traffic.messages_sent), (3, 3));
    assert_eq!(traffic.dropped_queue_full, 2);

    let (mut watch, _) = Raw::mqtt(b.addr, "watch", true);
    watch.subscribe(1, &[(RECEIVED, 0), (DROPPED, 0)]);
    let (mut received, mut dropped) = (0, 0);
    let want = "$SYS update to received 3, dropped 2";
    let mut seen = read_until(&mut watch, want, |m| {
        match m.topic.as_str() {
            RECEIVED => received = value(m),
            DROPPED => dropped = value(m),
            other => panic!("not subscribed to {other}"),
        }
        (received, dropped) == (3, 2)
    });
    seen += unsubscribe(&mut watch, 2, &[RECEIVED, DROPPED]);

    watch.subscribe(3, &[(SENT, 0)]);
    let mut stored = 0;
    let mut sent = 0;
    let on_sent_topic = read_until(&mut watch, "live $SYS update of sent", |m| {
        assert_eq!(m.topic, SENT);
        if m.retain {
            stored += 1;
            return false;
        }
        sent = value(m);
        true
    });
    assert_eq!(stored, 1, "the stored value first, once");
    assert_eq!(sent, traffic.messages_sent + seen + stored);
    let rest = unsubscribe(&mut watch, 4, &[SENT]);
    let total = traffic.messages_sent + seen + on_sent_topic + rest;
    assert_eq!(b.stats().messages_sent, total);
}
