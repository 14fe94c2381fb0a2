//! The worker threads' parts merged into one outcome: counters and
//! histograms added, and loss, duplicates and order judged per
//! (subscriber, stream) with what every thread saw, since a stream's
//! publisher and its subscribers may live on different threads.

use super::Counters;
use crate::plan::Plan;
use crate::stats::{Histogram, Track};
use crate::sys;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// One second of one thread's run.
pub struct TickRaw {
    /// Whole seconds since the run's epoch.
    pub index: u32,
    pub counts: Counters,
    pub latency: Vec<(u16, u64)>,
}

pub struct SubPart {
    pub id: u32,
    pub tracks: Vec<(u32, Track)>,
    pub received: u64,
    pub dup: u64,
    pub ooo: u64,
    pub unexpected: u64,
    pub retained: u64,
}

/// What one thread measured.
pub struct Part {
    pub fatal: Option<String>,
    pub setup_done: bool,
    pub secs: [f64; 4],
    pub measured: Counters,
    pub totals: Counters,
    pub hist: Histogram,
    pub group_hist: Vec<Histogram>,
    pub timeline: Vec<TickRaw>,
    pub subs: Vec<SubPart>,
    /// (stream, messages sent) of this thread's publishers.
    pub sent: Vec<(u32, u64)>,
    /// (stream, sequence) of messages never acknowledged.
    pub unacked: Vec<(u32, u64)>,
    pub stalls: u64,
    pub disconnects: u64,
    pub drain_timed_out: bool,
    /// The measured phase, seconds after the epoch.
    pub window: (f64, f64),
    pub rss_connected: Option<(u64, u64)>,
    pub rss_end: Option<(u64, u64)>,
    pub cpu_measure: (f64, Option<f64>),
}

impl Part {
    pub fn failed(why: String) -> Part {
        Part {
            fatal: Some(why),
            setup_done: false,
            secs: [0.0; 4],
            measured: Counters::default(),
            totals: Counters::default(),
            hist: Histogram::new(),
            group_hist: Vec::new(),
            timeline: Vec::new(),
            subs: Vec::new(),
            sent: Vec::new(),
            unacked: Vec::new(),
            stalls: 0,
            disconnects: 0,
            drain_timed_out: false,
            window: (0.0, 0.0),
            rss_connected: None,
            rss_end: None,
            cpu_measure: (0.0, None),
        }
    }
}

/// One second of the whole run.
pub struct Tick {
    /// Seconds since the run started (the end of this second).
    pub secs: u32,
    pub counts: Counters,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub samples: u64,
}

/// A subscriber group's share, when a workload has several.
pub struct GroupReport {
    pub name: String,
    pub clients: usize,
    pub received: u64,
    pub lost: u64,
    pub dup: u64,
    pub ooo: u64,
    pub latency: Histogram,
}

pub struct SubReport {
    pub group: u16,
    pub filters: String,
    pub received: u64,
    pub lost: u64,
    pub dup: u64,
    pub ooo: u64,
}

/// Everything the report needs.
pub struct Outcome {
    pub fatal: Option<String>,
    /// Setup never completed: there are no measurements to show.
    pub setup_failed: bool,
    pub threads: usize,
    pub clients: usize,
    pub setup_secs: f64,
    pub warmup_secs: f64,
    pub measure_secs: f64,
    pub drain_secs: f64,
    pub measured: Counters,
    pub totals: Counters,
    pub latency: Histogram,
    pub timeline: Vec<Tick>,
    /// The measured phase, seconds since the run started.
    pub window: (f64, f64),
    pub per_sub: Vec<SubReport>,
    /// Empty unless there are several subscriber groups.
    pub groups: Vec<GroupReport>,
    pub lost: u64,
    /// Lost although the broker acknowledged them (QoS 1/2 end to end).
    pub lost_acked: u64,
    /// Not arrived when the drain gave up while messages were still arriving.
    pub late: u64,
    pub dup: u64,
    /// Duplicates where publisher and subscriber both used QoS 2.
    pub dup_exactly_once: u64,
    pub ooo: u64,
    pub unexpected: u64,
    pub retained: u64,
    pub unacked_end: u64,
    pub stalls: u64,
    pub disconnects: u64,
    pub rss_before: Option<(u64, u64)>,
    pub rss_connected: Option<(u64, u64)>,
    pub rss_end: Option<(u64, u64)>,
    pub gen_cpu_measure: f64,
    pub gen_cpu_total: f64,
    pub wall_total: f64,
    pub broker_cpu_measure: Option<f64>,
}

fn max_of(parts: &[Part], i: usize) -> f64 {
    parts.iter().map(|p| p.secs[i]).fold(0.0, f64::max)
}

fn add(a: Counters, b: Counters) -> Counters {
    Counters {
        sent: a.sent + b.sent,
        acked: a.acked + b.acked,
        delivered: a.delivered + b.delivered,
    }
}

pub fn merge(
    plan: &Plan,
    parts: Vec<Part>,
    rss_before: Option<(u64, u64)>,
    epoch: Instant,
) -> Outcome {
    let other = "stopped: another worker thread failed";
    let fatal = parts
        .iter()
        .filter_map(|p| p.fatal.clone())
        .find(|f| f != other);
    let fatal = fatal.or_else(|| parts.iter().find_map(|p| p.fatal.clone()));
    let mut sent = vec![0u64; plan.streams.len()];
    let mut latency = Histogram::new();
    let (mut measured, mut totals) = (Counters::default(), Counters::default());
    let mut by_sub: HashMap<u32, &SubPart> = HashMap::new();
    for p in &parts {
        for &(st, n) in &p.sent {
            sent[st as usize] = n;
        }
        latency.merge(&p.hist);
        measured = add(measured, p.measured);
        totals = add(totals, p.totals);
        by_sub.extend(p.subs.iter().map(|sp| (sp.id, sp)));
    }
    // Skipped-over messages are lost. Those after the last one received
    // are lost too, unless the drain stopped while messages were still
    // arriving: then they are only late.
    let tail_lost = !parts.iter().any(|p| p.drain_timed_out);
    let mut o = Outcome {
        setup_failed: parts.iter().any(|p| !p.setup_done),
        fatal,
        threads: parts.len(),
        clients: plan.clients(),
        setup_secs: max_of(&parts, 0),
        warmup_secs: max_of(&parts, 1),
        measure_secs: max_of(&parts, 2),
        drain_secs: max_of(&parts, 3),
        measured,
        totals,
        latency,
        timeline: timeline(&parts),
        window: parts.first().map_or((0.0, 0.0), |p| p.window),
        per_sub: Vec::with_capacity(plan.subs.len()),
        groups: Vec::new(),
        lost: 0,
        lost_acked: 0,
        late: 0,
        dup: 0,
        dup_exactly_once: 0,
        ooo: 0,
        unexpected: 0,
        retained: 0,
        unacked_end: parts.iter().map(|p| p.unacked.len() as u64).sum(),
        stalls: parts.iter().map(|p| p.stalls).sum(),
        disconnects: parts.iter().map(|p| p.disconnects).sum(),
        rss_before,
        rss_connected: parts.first().and_then(|p| p.rss_connected),
        rss_end: parts.first().and_then(|p| p.rss_end),
        gen_cpu_measure: parts.first().map_or(0.0, |p| p.cpu_measure.0),
        gen_cpu_total: sys::cpu_seconds("self").unwrap_or(0.0),
        wall_total: epoch.elapsed().as_secs_f64(),
        broker_cpu_measure: parts.first().and_then(|p| p.cpu_measure.1),
    };
    let mut tracks: HashMap<(u32, u32), &Track> = HashMap::new();
    let mut lost_reliable = 0;
    for (i, spec) in plan.subs.iter().enumerate() {
        let Some(sp) = by_sub.get(&(i as u32)) else {
            continue;
        };
        let mut sub_lost = 0;
        for (id, t) in &sp.tracks {
            tracks.insert((i as u32, *id), t);
            let tail = t.tail(sent[*id as usize]);
            let lost = t.in_gaps() + if tail_lost { tail } else { 0 };
            sub_lost += lost;
            o.late += if tail_lost { 0 } else { tail };
            let qos = plan.streams[*id as usize].qos.min(spec.qos);
            if qos > 0 {
                lost_reliable += lost;
            }
            if qos == 2 {
                o.dup_exactly_once += t.dups;
            }
        }
        o.lost += sub_lost;
        o.dup += sp.dup;
        o.ooo += sp.ooo;
        o.unexpected += sp.unexpected;
        o.retained += sp.retained;
        let mut filters = spec
            .filters
            .iter()
            .take(2)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        if spec.filters.len() > 2 {
            filters.push_str(" ...");
        }
        o.per_sub.push(SubReport {
            group: spec.group,
            filters,
            received: sp.received,
            lost: sub_lost,
            dup: sp.dup,
            ooo: sp.ooo,
        });
    }
    // Lost messages the broker never acknowledged are not its fault.
    let mut unacked_lost = 0;
    for p in &parts {
        for &(stream, seq) in &p.unacked {
            for &sub in &plan.streams[stream as usize].subs {
                if plan.subs[sub as usize].qos == 0 {
                    continue;
                }
                if let Some(t) = tracks.get(&(sub, stream)) {
                    if t.in_gap(seq) || (tail_lost && seq >= t.next) {
                        unacked_lost += 1;
                    }
                }
            }
        }
    }
    o.lost_acked = lost_reliable.saturating_sub(unacked_lost);
    o.groups = groups(plan, &parts, &o.per_sub);
    o
}

/// Each subscriber group's counts and latency, when there are several.
fn groups(plan: &Plan, parts: &[Part], subs: &[SubReport]) -> Vec<GroupReport> {
    if plan.groups.len() < 2 {
        return Vec::new();
    }
    let mut out: Vec<GroupReport> = plan
        .groups
        .iter()
        .enumerate()
        .map(|(g, name)| {
            let mut latency = Histogram::new();
            for p in parts {
                if let Some(h) = p.group_hist.get(g) {
                    latency.merge(h);
                }
            }
            GroupReport {
                name: name.clone(),
                clients: 0,
                received: 0,
                lost: 0,
                dup: 0,
                ooo: 0,
                latency,
            }
        })
        .collect();
    for s in subs {
        if let Some(g) = out.get_mut(s.group as usize) {
            g.clients += 1;
            g.received += s.received;
            g.lost += s.lost;
            g.dup += s.dup;
            g.ooo += s.ooo;
        }
    }
    out
}

/// The threads' seconds added up, second by second.
fn timeline(parts: &[Part]) -> Vec<Tick> {
    let mut by_index: BTreeMap<u32, (Counters, Histogram)> = BTreeMap::new();
    for p in parts {
        for t in &p.timeline {
            let e = by_index
                .entry(t.index)
                .or_insert_with(|| (Counters::default(), Histogram::new()));
            e.0 = add(e.0, t.counts);
            e.1.add_sparse(&t.latency);
        }
    }
    by_index
        .into_iter()
        .map(|(i, (counts, h))| Tick {
            secs: i,
            counts,
            p50: h.quantile(0.5),
            p99: h.quantile(0.99),
            max: h.max(),
            samples: h.count(),
        })
        .collect()
}
