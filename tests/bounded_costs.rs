//! Costs one client can impose on the broker stay bounded (issue 14):
//! topic depth is capped, and subscribing costs the same at any count.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A topic (or filter) of `n` levels.
fn levels(n: usize, level: &str) -> String {
    vec![level; n].join("/")
}

/// A PUBLISH, a Will or a SUBSCRIBE filter deeper than `max_topic_levels`
/// (default 200, like mosquitto) is a protocol violation: the connection
/// is closed and nothing is routed. One level less is served as usual.
#[test]
fn topics_deeper_than_the_cap_close_the_connection() {
    let b = TestBroker::start();
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher", true);
    watcher.subscribe(1, &[("#", 0)]);

    let (mut c, _) = Raw::mqtt(b.addr, "deep-pub", true);
    c.send(&publish_packet(
        &levels(201, "a"),
        b"deep",
        0,
        0,
        false,
        false,
    ));
    c.expect_closed();
    let (mut c, _) = Raw::mqtt(b.addr, "ok-pub", true);
    c.send(&publish_packet(
        &levels(200, "a"),
        b"ok",
        0,
        0,
        false,
        false,
    ));
    let got = watcher.read_publish();
    assert_eq!((got.topic, got.payload), (levels(200, "a"), b"ok".to_vec()));

    let (mut c, _) = Raw::mqtt(b.addr, "deep-sub", true);
    c.send(&subscribe_packet(1, &[("x", 0), (&levels(201, "+"), 0)]));
    c.expect_closed();
    let (mut c, _) = Raw::mqtt(b.addr, "ok-sub", true);
    c.subscribe(1, &[(&format!("{}/#", levels(199, "+")), 0)]);

    // A deep Will is refused with its CONNECT: no CONNACK.
    let mut c = Raw::connect(b.addr);
    let deep = levels(201, "w");
    c.send(&connect_with_will(
        "deep-will",
        true,
        60,
        &deep,
        b"x",
        0,
        false,
    ));
    c.expect_closed();
    watcher.ping(); // the deep publish was never delivered
}

/// `max_topic_levels` sets the cap; 0 is refused.
#[test]
fn the_cap_is_configurable() {
    let mut config = midge::Config::default();
    assert!(config.set("max_topic_levels", "0").is_err());
    let b = TestBroker::start_with(|c| c.set("max_topic_levels", "3").expect("valid"));
    let (mut c, _) = Raw::mqtt(b.addr, "three", true);
    c.subscribe(1, &[("a/+/#", 0)]);
    c.send(&publish_packet("a/b/c", b"ok", 0, 0, false, false));
    assert_eq!(c.read_publish().topic, "a/b/c");
    c.send(&publish_packet("a/b/c/d", b"deep", 0, 0, false, false));
    c.expect_closed();
}

/// One client holding 30,000 subscriptions: a SUBSCRIBE of 100 more
/// takes about as long as it did at the start (each subscription used to
/// scan all the client's earlier ones). Least of 10 SUBSCRIBEs each time,
/// the least noisy measure on a busy machine.
#[test]
fn the_thirty_thousandth_subscription_costs_what_the_first_did() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt(b.addr, "many-subs", true);
    let mut pkid = 0u16;
    let mut subscribe = |first: usize| {
        let filters: Vec<(String, u8)> = (first..first + 100)
            .map(|n| {
                let f = if n.is_multiple_of(2) {
                    format!("e/{n}")
                } else {
                    format!("w/+/{n}")
                };
                (f, 0)
            })
            .collect();
        let refs: Vec<(&str, u8)> = filters.iter().map(|(f, q)| (f.as_str(), *q)).collect();
        pkid += 1;
        let start = Instant::now();
        c.subscribe(pkid, &refs);
        start.elapsed()
    };
    let least = |times: Vec<Duration>| times.into_iter().min().unwrap_or_default();
    let first = least((0..10).map(|i| subscribe(i * 100)).collect());
    for i in 10..300 {
        subscribe(i * 100);
    }
    let last = least((300..310).map(|i| subscribe(i * 100)).collect());
    assert!(
        last < first * 4 + Duration::from_millis(2),
        "at 0: {first:?}, at 30,000: {last:?}"
    );
}
