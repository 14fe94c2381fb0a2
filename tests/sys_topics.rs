//! `$SYS/broker/...` as monitoring tools read it (mosquitto-exporter, Home
//! Assistant's sensors, Telegraf): mosquitto's topic names and units,
//! load averages, and `store/*` of the persistence store only with one.

mod common;
use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The `$SYS/broker/...` topics a watcher gets right after subscribing
/// (all are retained), with their values.
fn sys_snapshot(addr: std::net::SocketAddr) -> HashMap<String, String> {
    let (mut watcher, _) = Raw::mqtt(addr, "sys-watcher", true);
    watcher.subscribe(1, &[("$SYS/broker/#", 0)]);
    let values = watcher.drain().into_iter().map(|p| {
        let value = String::from_utf8(p.payload).unwrap();
        (p.topic, value)
    });
    values.collect()
}

/// Reads `$SYS` updates into `seen` (the latest value of each topic) until
/// `done` accepts them (at most 10 s).
fn wait_sys(
    watcher: &mut Raw,
    seen: &mut HashMap<String, String>,
    done: impl Fn(&HashMap<String, String>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        let (first, body) = watcher
            .read_packet_by(deadline, "$SYS update")
            .expect("PUBLISH");
        let p = parse_publish(first, &body);
        seen.insert(p.topic, String::from_utf8(p.payload).unwrap());
    }
}

/// `topic` (under `$SYS/broker/`) has a value and `test` accepts it.
fn has(seen: &HashMap<String, String>, topic: &str, test: impl Fn(&str) -> bool) -> bool {
    seen.get(&format!("$SYS/broker/{topic}"))
        .is_some_and(|v| test(v))
}

const MONITORED: &[&str] = &[
    "version",
    "uptime",
    "clients/connected",
    "clients/active",
    "clients/disconnected",
    "clients/inactive",
    "clients/total",
    "clients/maximum",
    "clients/expired",
    "messages/received",
    "messages/sent",
    "messages/stored",
    "publish/messages/received",
    "publish/messages/sent",
    "publish/messages/dropped",
    "publish/bytes/received",
    "publish/bytes/sent",
    "bytes/received",
    "bytes/sent",
    "subscriptions/count",
    "retained messages/count",
    "store/messages/count",
    "store/messages/bytes",
];

#[test]
fn the_topics_monitoring_tools_read_are_published() {
    let b = TestBroker::start_with(|c| c.sys_interval = Duration::from_secs(1));
    let sys = sys_snapshot(b.addr);
    for name in MONITORED {
        let topic = format!("$SYS/broker/{name}");
        assert!(sys.contains_key(&topic), "{topic} missing: {sys:?}");
    }
    for kind in [
        "messages/received",
        "messages/sent",
        "publish/received",
        "publish/sent",
        "publish/dropped",
        "bytes/received",
        "bytes/sent",
        "connections",
        "sockets",
    ] {
        for window in ["1min", "5min", "15min"] {
            let topic = format!("$SYS/broker/load/{kind}/{window}");
            let value = sys.get(&topic).unwrap_or_else(|| panic!("{topic} missing"));
            assert!(
                value.parse::<f64>().is_ok() && value.contains('.'),
                "{topic}: {value}"
            );
        }
    }
    // Without persistence there is no store to report on.
    assert!(
        !sys.contains_key("$SYS/broker/store/bytes written"),
        "{sys:?}"
    );
    assert!(!sys.contains_key("$SYS/broker/store/fsyncs"), "{sys:?}");
}

#[test]
fn store_counters_appear_with_persistence() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sys-store");
    let _ = std::fs::remove_dir_all(&dir);
    let b = TestBroker::start_with(|c| {
        c.sys_interval = Duration::from_secs(1);
        c.persistence = true;
        c.persistence_location = Some(dir.clone());
    });
    let sys = sys_snapshot(b.addr);
    assert!(
        sys.contains_key("$SYS/broker/store/bytes written"),
        "{sys:?}"
    );
    assert!(sys.contains_key("$SYS/broker/store/fsyncs"), "{sys:?}");
}

#[test]
fn values_follow_the_traffic() {
    let b = TestBroker::start_with(|c| {
        c.sys_interval = Duration::from_secs(1);
        c.session_expiry = Some(Duration::from_secs(1));
    });
    let (mut watcher, _) = Raw::mqtt(b.addr, "sys-watcher", true);
    watcher.subscribe(1, &[("$SYS/broker/#", 0)]);
    let mut seen = HashMap::new();
    // Two retained messages of 10 and 5 bytes, and one of 4 bytes queued
    // for an offline persistent session: 19 payload bytes received.
    let (mut offline, _) = Raw::mqtt(b.addr, "offline", false);
    offline.subscribe(1, &[("q", 1)]);
    offline.disconnect();
    let (mut p, _) = Raw::mqtt(b.addr, "pub", true);
    p.send(&publish_packet("r/1", b"0123456789", 1, 1, true, false));
    p.expect(&[0x40, 2, 0, 1]);
    p.send(&publish_packet("r/2", b"01234", 1, 2, true, false));
    p.expect(&[0x40, 2, 0, 2]);
    p.publish_done("q", b"four", 1, 3);
    wait_sys(&mut watcher, &mut seen, |seen| {
        has(seen, "publish/bytes/received", |v| v == "19")
            && has(seen, "publish/messages/received", |v| v == "3")
            && has(seen, "load/publish/received/1min", |v| {
                v.parse::<f64>().unwrap() > 0.0
            })
    });
    // The offline session expires after 1 s offline; its queued message
    // goes with it: then the store holds the retained messages alone
    // (those of $SYS included, as in mosquitto).
    wait_sys(&mut watcher, &mut seen, |seen| {
        let retained = seen.get("$SYS/broker/retained messages/count");
        has(seen, "clients/expired", |v| v == "1")
            && retained.is_some_and(|n| has(seen, "store/messages/count", |v| v == n))
            && has(seen, "store/messages/bytes", |v| {
                v.parse::<u64>().unwrap() > 15
            })
    });
}
