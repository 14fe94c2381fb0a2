//! Memory a client can make the broker hold stays bounded (issue 14,
//! item 5): before CONNECT only a CONNECT-sized frame is read, and after
//! it a global budget (`memory_limit`) refuses frames that could never fit
//! and holds back, unread, those that do not fit beside the others.

mod common;

use common::bystander::{percentile, Bystander};
use common::*;
use std::time::{Duration, Instant};

/// A fixed header declaring `len` bytes, then `body` bytes of them.
fn frame_start(first: u8, len: usize, body: usize) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(remaining_length(len));
    out.extend(std::iter::repeat_n(0x41, body));
    out
}

/// Five sockets declaring 200 MB CONNECTs (even with no memory budget at
/// all) are closed from their headers, long before the connect timeout,
/// instead of each buffering what it sends [MQTT-4.8.0-2]; a bystander's
/// round trips go on meanwhile. A CONNECT with every field at a
/// legitimate size still connects.
#[test]
fn a_frame_larger_than_any_connect_is_refused_before_connect() {
    let b = TestBroker::start_with(|c| c.memory_limit = 0);
    let by = Bystander::start(b.addr, "by-connect", Duration::from_millis(5));
    let mut attackers: Vec<Raw> = (0..5).map(|_| Raw::connect(b.addr)).collect();
    let start = Instant::now();
    for a in &mut attackers {
        let _ = std::io::Write::write_all(&mut a.stream, &frame_start(0x10, 200_000_000, 65_536));
    }
    for a in &mut attackers {
        a.expect_closed();
    }
    let took = start.elapsed();
    assert!(
        took < REPLY_WAIT,
        "closed after {took:?}: the connect timeout, not the header"
    );

    let mut c = Raw::connect(b.addr);
    c.send(&connect_with_will(
        "big",
        true,
        60,
        "w/t",
        &[7; 65_535],
        0,
        false,
    ));
    assert_eq!(c.read_reply("CONNACK"), Some((0x20, vec![0, 0])));
    let trips = by.finish();
    assert_fast(&trips);
}

/// With `memory_limit` set, a PUBLISH larger than the whole budget is
/// refused from its header (the connection is closed); one that fits is
/// delivered.
#[test]
fn a_frame_larger_than_the_budget_is_refused() {
    let b = TestBroker::start_with(|c| c.set("memory_limit", "1000000").unwrap());
    let (mut sub, _) = Raw::mqtt(b.addr, "sub", true);
    sub.subscribe(1, &[("big/#", 0)]);
    let (mut c, _) = Raw::mqtt(b.addr, "too-big", true);
    let _ = std::io::Write::write_all(&mut c.stream, &frame_start(0x30, 2_000_000, 1000));
    c.expect_closed();
    let (mut c, _) = Raw::mqtt(b.addr, "fits", true);
    c.publish_done("big/ok", &vec![1; 500_000], 0, 0);
    assert_eq!(sub.read_publish().payload.len(), 500_000);
}

/// Three clients start 3 MB PUBLISHes at once under a 4 MB budget: one is
/// read, the others wait unread (TCP pushes back) until it is delivered,
/// so the broker never holds much more than the budget; all three arrive
/// in the end, and a bystander's round trips stay fast throughout.
#[test]
fn frames_that_do_not_fit_wait_for_room() {
    const BIG: usize = 3_000_000;
    const LIMIT: usize = 4_000_000;
    let b = TestBroker::start_polled(|c| c.memory_limit = LIMIT);
    let by = Bystander::start(b.addr, "by-budget", Duration::from_millis(5));
    let (mut sub, _) = Raw::mqtt(b.addr, "sub", true);
    sub.subscribe(1, &[("big/#", 0)]);
    let mut pubs: Vec<Raw> = (0..3)
        .map(|i| Raw::mqtt(b.addr, &format!("big-{i}"), true).0)
        .collect();
    // Each sends its header and the first 100 KB: enough to be charged.
    let whole: Vec<Vec<u8>> = (0..3)
        .map(|i| publish_packet(&format!("big/{i}"), &vec![i as u8; BIG], 0, 0, false, false))
        .collect();
    for (p, bytes) in pubs.iter_mut().zip(&whole) {
        p.send(&bytes[..100_000]);
    }
    let deadline = Instant::now() + WAIT;
    while b.stats().memory_used < BIG {
        assert!(
            Instant::now() < deadline,
            "no frame charged within {WAIT:?}"
        );
    }
    let held = b.stats().memory_used;
    assert!(held <= LIMIT, "{held} bytes held under a {LIMIT} budget");
    // The rest, from threads: a waiting client's socket fills up.
    let senders: Vec<_> = pubs
        .into_iter()
        .zip(whole)
        .map(|(mut p, bytes)| {
            std::thread::spawn(move || {
                p.send(&bytes[100_000..]);
                p.ping();
            })
        })
        .collect();
    let mut got: Vec<String> = (0..3).map(|_| sub.read_publish().topic).collect();
    got.sort();
    assert_eq!(got, ["big/0", "big/1", "big/2"]);
    for s in senders {
        s.join().expect("publisher");
    }
    let trips = by.finish();
    assert_fast(&trips);
}

/// Wills count against the budget: under a 1 MB budget, of twenty clients
/// with 60 KB Wills only those that fit connect, the others wait unread
/// (no CONNACK yet) and connect as the first ones leave with DISCONNECT
/// (their Wills discarded). The bound the will storm of issue 14 needs:
/// Wills waiting to be published cannot exceed the budget.
#[test]
fn wills_count_against_the_budget() {
    const LIMIT: usize = 1_000_000;
    let b = TestBroker::start_polled(|c| c.memory_limit = LIMIT);
    let will = vec![9u8; 60_000];
    let mut clients: Vec<Raw> = (0..20).map(|_| Raw::connect(b.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&connect_with_will(
            &format!("w{i}"),
            true,
            60,
            "w/t",
            &will,
            0,
            false,
        ));
    }
    let mut connected = Vec::new();
    let mut waiting = Vec::new();
    for c in clients {
        c.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut c = c;
        let mut first = [0u8; 4];
        match std::io::Read::read_exact(&mut c.stream, &mut first) {
            Ok(()) => {
                assert_eq!(first, [0x20, 2, 0, 0]);
                connected.push(c);
            }
            Err(_) => waiting.push(c),
        }
    }
    let held = b.stats().memory_used;
    assert!(held <= LIMIT, "{held} bytes held under a {LIMIT} budget");
    assert!(!waiting.is_empty(), "every Will fit in the budget");
    assert!(connected.len() >= 5, "only {} connected", connected.len());
    for c in connected {
        c.disconnect();
    }
    for mut c in waiting {
        c.stream.set_read_timeout(Some(WAIT)).unwrap();
        c.expect(&[0x20, 2, 0, 0]);
    }
}

/// The bystander was served throughout: its median round trip is short
/// (here ~0.2-0.4 ms). The median, not the tail: a single slow trip says
/// more about what else the machine runs than about the broker.
fn assert_fast(trips: &[Duration]) {
    let p50 = percentile(trips, 50);
    assert!(p50 < Duration::from_millis(50), "bystander p50 {p50:?}");
}
