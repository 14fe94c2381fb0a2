//! A session's queue bounds: `max_queued_bytes` (payload bytes queued per
//! client, README "Options") at its exact boundary, the byte count after
//! messages leave the queue and after a restart, and `queue_overflow
//! oldest` evicting as many messages as a larger one needs.
//!
//! The queue is the one behind the in-flight window of a persistent session
//! (CleanSession 0) [MQTT-3.1.2-4]; messages queued while it is offline are
//! delivered when it comes back [MQTT-3.1.2-5].

mod common;
use common::*;
use midge::session::Overflow;
use midge::store::Fsync;
use midge::Config;
use std::path::{Path, PathBuf};

/// Payloads as text, in order.
fn payloads(got: &[Pub]) -> Vec<String> {
    got.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

/// A fresh, empty store directory for one test.
fn store_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("queue-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn persistence(c: &mut Config, dir: &Path) {
    c.persistence = true;
    c.persistence_location = Some(dir.to_path_buf());
    c.fsync = Fsync::Always;
}

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
    let got = sub.drain();
    sub.disconnect();
    got
}

// A queue may hold exactly `max_queued_bytes` payload bytes: the message
// that brings it to the limit is queued, one byte more is dropped (and
// counted). Bytes are given back as messages leave the queue for the
// in-flight window (here one message wide), so the limit keeps meaning
// the bytes really queued.
#[test]
fn a_queue_holds_exactly_max_queued_bytes_and_frees_them_on_delivery() {
    let b = TestBroker::start_polled(|c| {
        c.max_queued_bytes = 10;
        c.max_inflight = 1;
    });
    offline_subscriber(&b, "bytes-sub", "q/#");
    let (mut p, _) = Raw::mqtt(b.addr, "bytes-pub", true);
    p.publish_done("q/a", b"aaaa", 1, 1);
    p.publish_done("q/b", b"bbbbbb", 1, 2); // 10 of 10 bytes: queued
    p.publish_done("q/c", b"c", 1, 3); // 11 of 10: dropped
    assert_eq!(b.stats().dropped_queue_full, 1);

    // Back online: "aaaa" moves into the window (left unacknowledged),
    // "bbbbbb" waits behind it; offline again.
    let (mut sub, present) = Raw::mqtt(b.addr, "bytes-sub", false);
    assert!(present);
    let in_flight = sub.read_publish();
    assert_eq!(in_flight.payload, b"aaaa");
    sub.disconnect();
    p.publish_done("q/d", b"dddd", 1, 4); // 6 + 4 = 10 bytes: queued
    p.publish_done("q/e", b"e", 1, 5); // dropped
    assert_eq!(b.stats().dropped_queue_full, 2);
    assert_eq!(
        payloads(&reconnect_and_drain(&b, "bytes-sub")),
        ["aaaa", "bbbbbb", "dddd"]
    );

    // All delivered: the whole limit is free again.
    p.publish_done("q/f", b"ffffffffff", 1, 6);
    p.publish_done("q/g", b"g", 1, 7);
    assert_eq!(b.stats().dropped_queue_full, 3);
    assert_eq!(
        payloads(&reconnect_and_drain(&b, "bytes-sub")),
        ["ffffffffff"]
    );
}

// Replaying the store puts each stored message into the queue and takes
// it out again when it was sent or acknowledged: after a restart the
// session's queue holds only what is really queued, so the byte limit
// still admits exactly 10 bytes. In-flight messages are resent first
// [MQTT-4.4.0-1] with DUP=1 [MQTT-3.3.1-1].
#[test]
fn queued_bytes_are_counted_right_after_a_restart() {
    let dir = store_dir("bytes-restart");
    let config = |c: &mut Config| {
        c.max_queued_bytes = 10;
        persistence(c, &dir);
    };
    let mut b = TestBroker::start_polled(config);
    let (mut sub, _) = Raw::mqtt(b.addr, "restart-sub", false);
    sub.subscribe(1, &[("r/#", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "restart-pub", true);
    // Sent at once to the online subscriber: one left unacknowledged (in
    // flight), one acknowledged. Both were stored, then marked sent.
    p.publish_done("r/1", b"0123456789", 1, 1);
    let in_flight = sub.read_publish();
    p.publish_done("r/2", b"abcdefghij", 1, 2);
    let acked = sub.read_publish();
    let [hi, lo] = acked.pkid.to_be_bytes();
    sub.send(&[0x40, 2, hi, lo]);
    sub.ping();
    sub.disconnect();
    p.disconnect();
    b.stop();

    let b = TestBroker::start_polled(config);
    let (mut p, _) = Raw::mqtt(b.addr, "restart-pub", true);
    p.publish_done("r/3", b"ABCDEFGHIJ", 1, 1); // 10 of 10 bytes: queued
    p.publish_done("r/4", b"!", 1, 2); // 11 of 10: dropped
    assert_eq!(b.stats().dropped_queue_full, 1);
    let got = reconnect_and_drain(&b, "restart-sub");
    let resent = Pub {
        dup: true,
        ..in_flight
    };
    assert_eq!(got.first(), Some(&resent), "the in-flight message, resent");
    assert_eq!(payloads(&got), ["0123456789", "ABCDEFGHIJ"]);
}

// queue_overflow oldest with a byte limit: a message that needs the room
// of two older ones evicts both, and only as many as it needs; the drop
// counter counts each evicted message once.
#[test]
fn drop_oldest_evicts_as_many_messages_as_a_larger_one_needs() {
    let b = TestBroker::start_polled(|c| {
        c.max_queued_bytes = 10;
        c.queue_overflow = Overflow::DropOldest;
    });
    offline_subscriber(&b, "oldest-sub", "o/#");
    let (mut p, _) = Raw::mqtt(b.addr, "oldest-pub", true);
    p.publish_done("o/1", b"111", 1, 1);
    p.publish_done("o/2", b"222", 1, 2);
    p.publish_done("o/3", b"33", 1, 3); // 8 bytes queued
    p.publish_done("o/4", b"44444444", 1, 4); // needs 6 more: o/1 and o/2 go
    assert_eq!(b.stats().dropped_queue_full, 2);
    assert_eq!(
        payloads(&reconnect_and_drain(&b, "oldest-sub")),
        ["33", "44444444"]
    );
}

// A message larger than the whole byte limit can never be queued: it is
// dropped alone, and the older messages stay (evicting them would lose
// them for nothing).
#[test]
fn drop_oldest_keeps_the_queue_for_a_message_larger_than_the_limit() {
    let b = TestBroker::start_polled(|c| {
        c.max_queued_bytes = 10;
        c.queue_overflow = Overflow::DropOldest;
    });
    offline_subscriber(&b, "oversize-sub", "o/#");
    let (mut p, _) = Raw::mqtt(b.addr, "oversize-pub", true);
    p.publish_done("o/1", b"111", 1, 1);
    p.publish_done("o/2", b"222", 1, 2);
    p.publish_done("o/huge", b"hhhhhhhhhhh", 1, 3); // 11 bytes > 10
    assert_eq!(b.stats().dropped_queue_full, 1);
    assert_eq!(
        payloads(&reconnect_and_drain(&b, "oversize-sub")),
        ["111", "222"]
    );
}

// Evictions are stored (as "done" records) and replayed on start: after a
// restart the queue holds the survivors and their bytes only, and evicts
// by the same rule.
#[test]
fn drop_oldest_queue_accounting_survives_a_restart() {
    let dir = store_dir("oldest-restart");
    let config = |c: &mut Config| {
        c.max_queued_bytes = 10;
        c.queue_overflow = Overflow::DropOldest;
        persistence(c, &dir);
    };
    let mut b = TestBroker::start_polled(config);
    offline_subscriber(&b, "evict-sub", "e/#");
    let (mut p, _) = Raw::mqtt(b.addr, "evict-pub", true);
    p.publish_done("e/1", b"111", 1, 1);
    p.publish_done("e/2", b"222", 1, 2);
    p.publish_done("e/3", b"33", 1, 3);
    p.publish_done("e/4", b"44444444", 1, 4); // evicts e/1 and e/2
    assert_eq!(b.stats().dropped_queue_full, 2);
    p.disconnect();
    b.stop();

    let b = TestBroker::start_polled(config);
    let (mut p, _) = Raw::mqtt(b.addr, "evict-pub", true);
    p.publish_done("e/5", b"5", 1, 1); // 10 + 1 bytes: e/3 goes
    assert_eq!(b.stats().dropped_queue_full, 1);
    assert_eq!(
        payloads(&reconnect_and_drain(&b, "evict-sub")),
        ["44444444", "5"]
    );
}

// A persistent session resumed under a user name that may not read some of
// its queued messages loses them before anything is sent (README "Users and
// access control"); their bytes leave the byte count with them.
#[test]
fn messages_dropped_by_the_acl_on_resume_free_their_bytes() {
    let acl = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("queue-bytes.acl");
    std::fs::write(
        &acl,
        "user a\ntopic read #\nuser b\ntopic read public/#\nuser w\ntopic write #\n",
    )
    .unwrap();
    let b = TestBroker::start_polled(|c| {
        c.security.acl_file = Some(acl.clone());
        c.max_queued_bytes = 10;
        c.max_inflight = 1;
    });
    let connect_as = |user: &str| {
        let mut c = Raw::connect(b.addr);
        c.send(&connect_user_packet("dev", user, false));
        c
    };
    let mut dev = connect_as("a");
    dev.expect(&[0x20, 2, 0, 0]);
    dev.subscribe(1, &[("#", 1)]);
    dev.disconnect();
    let mut w = Raw::connect(b.addr);
    w.send(&connect_user_packet("writer", "w", true));
    w.expect(&[0x20, 2, 0, 0]);
    w.publish_done("x/secret", b"ssss", 1, 1);
    w.publish_done("public/1", b"111", 1, 2);
    w.publish_done("public/2", b"222", 1, 3); // 10 of 10 bytes queued

    // Back as b: x/secret is dropped (4 bytes freed), public/1 goes into
    // the window, public/2 (3 bytes) stays queued.
    let mut dev = connect_as("b");
    dev.expect(&[0x20, 2, 1, 0]);
    assert_eq!(dev.read_publish().payload, b"111");
    dev.subscribe(2, &[("public/#", 1)]);
    dev.disconnect();
    w.publish_done("public/3", b"3333333", 1, 4); // 3 + 7 = 10: queued
    w.publish_done("public/4", b"4", 1, 5); // dropped
    assert_eq!(b.stats().dropped_queue_full, 1);
    let mut dev = connect_as("b");
    dev.expect(&[0x20, 2, 1, 0]);
    assert_eq!(payloads(&dev.drain()), ["111", "222", "3333333"]);
}

// Retained copies sent for a new subscription [MQTT-3.3.1-6] are bounded
// by the retained store, not by the queue: none is dropped, however small
// the window and the queue.
#[test]
fn retained_copies_for_a_new_subscription_pass_a_full_queue() {
    let b = TestBroker::start_polled(|c| {
        c.max_inflight = 1;
        c.max_queued = 1;
        c.max_queued_bytes = 1;
    });
    let (mut p, _) = Raw::mqtt(b.addr, "retainer", true);
    for i in 1..=5u16 {
        let topic = format!("r/{i}");
        p.send(&publish_packet(&topic, b"kept", 1, i, true, false));
        p.expect(&[0x40, 2, 0, i as u8]);
    }
    let (mut sub, _) = Raw::mqtt(b.addr, "late", true);
    sub.subscribe(1, &[("r/#", 1)]);
    let got = sub.drain();
    let mut topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    topics.sort();
    assert_eq!(topics, ["r/1", "r/2", "r/3", "r/4", "r/5"]);
    assert!(got.iter().all(|m| m.retain), "RETAIN 1 [MQTT-3.3.1-8]");
    assert_eq!(b.stats().dropped_queue_full, 0);
}
