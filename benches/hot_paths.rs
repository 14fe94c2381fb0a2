//! Microbenchmarks of the broker's hot paths: PUBLISH decode/encode, topic
//! routing with 100 / 10k / 100k subscriptions, with 20,000 filters that
//! start with a wildcard, and of a topic 200 levels deep.
//!
//! Run: `cargo bench --bench hot_paths`. Routing should stay flat as the
//! table grows: a publish only looks at filters whose literal levels line
//! up with its topic.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use midge::keys::{Destination, SessionKey};
use midge::protocol::{self, Limits, Packet, Properties, ProtocolLevel, PublishFlags, QoS, Role};
use midge::router::Router;
use std::hint::black_box;

fn publish_codec(c: &mut Criterion) {
    let payload = [0x5au8; 64];
    let level = ProtocolLevel::V311;
    let flags = PublishFlags {
        qos: QoS::AtLeastOnce,
        pkid: 7,
        dup: false,
        retain: false,
    };
    let none = &Properties::NONE;
    let mut wire = BytesMut::new();
    protocol::encode_publish(&mut wire, level, "sensors/42/temp", &payload, none, flags);
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_64B", |b| {
        let mut buf = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            buf.extend_from_slice(&wire);
            let p = protocol::decode(&mut buf, Some(level), Role::Server, &Limits::default());
            assert!(matches!(p, Ok(Some(Packet::Publish(_)))));
            black_box(p)
        })
    });
    g.bench_function("encode_64B", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let payload = black_box(&payload);
            protocol::encode_publish(&mut out, level, "sensors/42/temp", payload, none, flags);
            black_box(out.len())
        })
    });
    g.finish();
}

fn session(i: usize) -> Destination {
    Destination::Session(SessionKey::saturating(i))
}

/// A table of `n` subscriptions, 70% exact and 30% wildcard, one session
/// each, spread over many topic prefixes like a fleet of devices.
fn table(n: usize) -> Router {
    let mut r = Router::new();
    for i in 0..n {
        let filter = match i % 10 {
            0..=6 => format!("sensors/{i}/temp"),
            7 | 8 => format!("sensors/{i}/+"),
            _ => format!("devices/{i}/#"),
        };
        r.subscribe(session(i), &filter, QoS::AtLeastOnce, false);
    }
    r.subscribe(session(n), "sensors/+/temp", QoS::AtMostOnce, false);
    r
}

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    for n in [100usize, 10_000, 100_000] {
        let mut r = table(n);
        let topics: Vec<String> = (0..64)
            .map(|k| format!("sensors/{}/temp", (k * 7919) % n))
            .collect();
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("subscriptions", n), &n, |b, _| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % topics.len();
                r.route(&topics[k], &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// 20,000 filters `+/tN` (and their `#` twins) and a publish to an
/// unrelated topic: all of them used to be compared with it.
fn leading_wildcards(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_leading_wildcards");
    g.throughput(Throughput::Elements(1));
    for n in [20usize, 20_000] {
        let mut r = Router::new();
        for i in 0..n {
            r.subscribe(session(i), &format!("+/t{i}"), QoS::AtMostOnce, false);
            r.subscribe(session(i), &format!("+/t{i}/#"), QoS::AtMostOnce, false);
        }
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("filters", n), &n, |b, _| {
            b.iter(|| {
                r.route(black_box("sensors/42/temp"), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// A topic of 200 levels (the default `max_topic_levels`) while `a/+` and
/// `a/a/#` are subscribed: each prefix used to be hashed from scratch.
fn deep_topic(c: &mut Criterion) {
    let mut r = Router::new();
    r.subscribe(session(1), "a/+", QoS::AtMostOnce, false);
    r.subscribe(session(2), "a/a/#", QoS::AtMostOnce, false);
    let topic = vec!["a"; 200].join("/");
    let mut out = Vec::new();
    c.bench_function("route_200_levels", |b| {
        b.iter(|| {
            r.route(black_box(&topic), &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(
    benches,
    publish_codec,
    routing,
    leading_wildcards,
    deep_topic
);
criterion_main!(benches);
