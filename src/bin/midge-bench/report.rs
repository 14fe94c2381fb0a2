//! The results in words and numbers: the verdict, the summary table and
//! the flat JSON line (easy to parse with awk as well as jq).

use crate::cli::Run;
use crate::engine::Outcome;
use midge::protocol::ProtocolLevel;
use std::fmt::Write;

pub struct Header {
    pub scenario: String,
    pub describe: String,
    pub target: String,
    pub protocol: &'static str,
    pub publishers: usize,
    pub subscribers: usize,
    pub subscriptions: usize,
    /// The highest QoS in use, and all of them in words.
    pub qos: u8,
    pub qos_text: String,
    pub size_text: String,
    /// Messages per second offered over all publishers (0: flat out).
    pub rate: f64,
    pub label: String,
}

impl Header {
    pub fn new(run: &Run) -> Header {
        let plan = &run.plan;
        let mut qos: Vec<u8> = plan
            .streams
            .iter()
            .map(|s| s.qos)
            .chain(plan.subs.iter().map(|s| s.qos))
            .collect();
        qos.sort_unstable();
        qos.dedup();
        let qos_text = qos
            .iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>()
            .join("/");
        let lo = plan.streams.iter().map(|s| s.size.0).min().unwrap_or(0);
        let hi = plan.max_size();
        let size_text = if lo == hi {
            format!("{lo}")
        } else {
            format!("{lo}-{hi}")
        };
        let limited = !plan.pubs.is_empty() && plan.pubs.iter().all(|p| p.rate > 0.0);
        Header {
            scenario: plan.scenario.clone(),
            describe: plan.describe.clone(),
            target: run.target.clone(),
            protocol: match run.settings.level {
                ProtocolLevel::V31 => "3.1",
                ProtocolLevel::V311 => "3.1.1",
                ProtocolLevel::V5 => "5",
            },
            publishers: plan.pubs.len(),
            subscribers: plan.subs.len(),
            subscriptions: plan.subscriptions,
            qos: plan.max_qos(),
            qos_text,
            size_text,
            rate: if limited {
                plan.pubs.iter().map(|p| p.rate).sum()
            } else {
                0.0
            },
            label: run.outputs.label.clone(),
        }
    }
}

/// Reasons the run failed; empty when it passed.
pub fn verdict(o: &Outcome) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(e) = &o.fatal {
        v.push(e.clone());
    }
    if o.disconnects > 0 {
        v.push(format!("{} clients were disconnected", o.disconnects));
    }
    if o.lost_acked > 0 {
        v.push(format!(
            "{} acknowledged QoS 1/2 deliveries never arrived",
            o.lost_acked
        ));
    }
    if o.dup_exactly_once > 0 {
        v.push(format!(
            "{} QoS 2 messages arrived more than once",
            o.dup_exactly_once
        ));
    }
    v
}

pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

pub fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn rss_per_client(o: &Outcome) -> Option<f64> {
    match (o.rss_before, o.rss_connected) {
        (Some((b, _)), Some((c, _))) if o.clients > 0 => {
            Some((c as f64 - b as f64) * 1024.0 / o.clients as f64)
        }
        _ => None,
    }
}

pub fn table(h: &Header, o: &Outcome, verdict: &[String]) -> String {
    let mut t = String::new();
    let label = if h.label.is_empty() {
        String::new()
    } else {
        format!("  [{}]", h.label)
    };
    let rate_note = if h.rate > 0.0 {
        format!(", {:.0} msg/s offered", h.rate)
    } else {
        String::new()
    };
    let threads = if o.threads > 1 {
        format!(", {} threads", o.threads)
    } else {
        String::new()
    };
    let _ = writeln!(
        t,
        "\nmidge-bench {} against {} (MQTT {}{threads}), QoS {}, {}-byte payloads{rate_note}{label}",
        h.scenario, h.target, h.protocol, h.qos_text, h.size_text
    );
    let _ = writeln!(t, "  {}", h.describe);
    let _ = writeln!(
        t,
        "  setup {:.3} s for {} clients ({:.0} connections/s); warm-up {:.1} s; measured {:.2} s; drain {:.2} s",
        o.setup_secs,
        o.clients,
        rate(o.clients as u64, o.setup_secs),
        o.warmup_secs,
        o.measure_secs,
        o.drain_secs
    );
    let m = o.measured;
    let d = o.measure_secs;
    let _ = writeln!(
        t,
        "\n  {:<24}{:>14}{:>16}",
        "measured phase", "messages", "per second"
    );
    let _ = writeln!(
        t,
        "  {:<24}{:>14}{:>16.0}",
        "published",
        m.sent,
        rate(m.sent, d)
    );
    if h.qos > 0 {
        let _ = writeln!(
            t,
            "  {:<24}{:>14}{:>16.0}",
            "acknowledged",
            m.acked,
            rate(m.acked, d)
        );
    }
    let _ = writeln!(
        t,
        "  {:<24}{:>14}{:>16.0}",
        "delivered",
        m.delivered,
        rate(m.delivered, d)
    );
    let l = &o.latency;
    let _ = writeln!(
        t,
        "\n  latency (us)            p50 {:.1}   p90 {:.1}   p99 {:.1}   p99.9 {:.1}   max {:.1}   mean {:.1}   ({} samples)",
        us(l.quantile(0.5)),
        us(l.quantile(0.9)),
        us(l.quantile(0.99)),
        us(l.quantile(0.999)),
        us(l.max()),
        us(l.mean()),
        l.count()
    );
    let tot = o.totals;
    let _ = writeln!(
        t,
        "  whole run               published {}, acknowledged {}, delivered {}; {} subscriptions",
        tot.sent, tot.acked, tot.delivered, h.subscriptions
    );
    let _ = writeln!(
        t,
        "  correctness             lost {} (acknowledged and lost {}), duplicates {}, out of order {}, unexpected {}",
        o.lost, o.lost_acked, o.dup, o.ooo, o.unexpected
    );
    let _ = writeln!(
        t,
        "                          still arriving when the drain stopped {}, unacknowledged at end {}, \
         stalls {}, disconnects {}{}",
        o.late,
        o.unacked_end,
        o.stalls,
        o.disconnects,
        if o.retained > 0 { format!(", retained from before {}", o.retained) } else { String::new() }
    );
    per_subscriber(&mut t, o);
    if let (Some(b), Some(c), Some(e)) = (o.rss_before, o.rss_connected, o.rss_end) {
        let _ = writeln!(
            t,
            "  broker memory           RSS before {}, connected {}, end {}; peak {}; {:.0} bytes per client",
            mib(b.0),
            mib(c.0),
            mib(e.0),
            mib(e.1),
            rss_per_client(o).unwrap_or(0.0)
        );
    }
    let pct = |cpu: f64| if d > 0.0 { 100.0 * cpu / d } else { 0.0 };
    let broker = match o.broker_cpu_measure {
        Some(b) => format!("; broker {b:.2} s ({:.0}%)", pct(b)),
        None => String::new(),
    };
    let _ = writeln!(
        t,
        "  CPU in measured phase   generator {:.2} s over {:.2} s wall ({:.0}%){broker}; generator total {:.2} s over {:.2} s",
        o.gen_cpu_measure,
        d,
        pct(o.gen_cpu_measure),
        o.gen_cpu_total,
        o.wall_total
    );
    if verdict.is_empty() {
        let _ = writeln!(t, "  result                  OK");
    } else {
        let _ = writeln!(
            t,
            "  result                  FAILED: {}",
            verdict.join("; ")
        );
    }
    t
}

/// Each subscriber group's deliveries and measured latency.
fn per_group(t: &mut String, o: &Outcome) {
    for g in &o.groups {
        let l = &g.latency;
        let _ = writeln!(
            t,
            "    group {:<16} {:>5} clients  received {:>10}  lost {:>8}  dup {:>6}  ooo {:>6}  \
             latency (us) p50 {:.1}  p99 {:.1}  max {:.1}",
            g.name,
            g.clients,
            g.received,
            g.lost,
            g.dup,
            g.ooo,
            us(l.quantile(0.5)),
            us(l.quantile(0.99)),
            us(l.max())
        );
    }
}

fn per_subscriber(t: &mut String, o: &Outcome) {
    if !o.groups.is_empty() {
        return per_group(t, o);
    }
    if o.per_sub.len() <= 10 {
        for (i, s) in o.per_sub.iter().enumerate() {
            let _ = writeln!(
                t,
                "    subscriber {i:<3} {:<22} received {:>10}  lost {:>8}  dup {:>6}  ooo {:>6}",
                s.filters, s.received, s.lost, s.dup, s.ooo
            );
        }
    } else {
        let min = o.per_sub.iter().map(|s| s.received).min().unwrap_or(0);
        let max = o.per_sub.iter().map(|s| s.received).max().unwrap_or(0);
        let with_loss = o.per_sub.iter().filter(|s| s.lost > 0).count();
        let _ = writeln!(
            t,
            "    {} subscribers: received min {min} max {max}; {with_loss} with losses",
            o.per_sub.len()
        );
    }
}

pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One flat JSON object.
pub fn json(h: &Header, o: &Outcome, verdict: &[String]) -> String {
    let m = o.measured;
    let d = o.measure_secs;
    let l = &o.latency;
    let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let kib = |v: Option<(u64, u64)>, hwm: bool| {
        v.map_or("null".to_string(), |(r, p)| {
            if hwm { p } else { r }.to_string()
        })
    };
    let p = |q: f64| format!("{:.1}", us(l.quantile(q)));
    let fields: Vec<(&str, String)> = vec![
        ("label", json_str(&h.label)),
        ("scenario", json_str(&h.scenario)),
        ("target", json_str(&h.target)),
        ("protocol", json_str(h.protocol)),
        ("threads", o.threads.to_string()),
        ("qos", h.qos.to_string()),
        (
            "size",
            if h.size_text.contains('-') {
                json_str(&h.size_text)
            } else {
                h.size_text.clone()
            },
        ),
        ("publishers", h.publishers.to_string()),
        ("subscribers", h.subscribers.to_string()),
        ("subscriptions", h.subscriptions.to_string()),
        ("clients", o.clients.to_string()),
        ("offered_rate", format!("{:.0}", h.rate)),
        ("duration_s", format!("{d:.3}")),
        ("sent", m.sent.to_string()),
        ("acked", m.acked.to_string()),
        ("delivered", m.delivered.to_string()),
        ("pub_rate", format!("{:.1}", rate(m.sent, d))),
        ("ack_rate", format!("{:.1}", rate(m.acked, d))),
        ("delivery_rate", format!("{:.1}", rate(m.delivered, d))),
        ("lat_p50_us", p(0.5)),
        ("lat_p90_us", p(0.9)),
        ("lat_p95_us", p(0.95)),
        ("lat_p99_us", p(0.99)),
        ("lat_p999_us", p(0.999)),
        ("lat_p9999_us", p(0.9999)),
        ("lat_max_us", format!("{:.1}", us(l.max()))),
        ("lat_mean_us", format!("{:.1}", us(l.mean()))),
        ("lat_samples", l.count().to_string()),
        ("total_sent", o.totals.sent.to_string()),
        ("total_acked", o.totals.acked.to_string()),
        ("total_delivered", o.totals.delivered.to_string()),
        ("lost", o.lost.to_string()),
        ("lost_acked", o.lost_acked.to_string()),
        ("late", o.late.to_string()),
        ("dup", o.dup.to_string()),
        ("ooo", o.ooo.to_string()),
        ("unexpected", o.unexpected.to_string()),
        ("retained_old", o.retained.to_string()),
        ("unacked_end", o.unacked_end.to_string()),
        ("stalls", o.stalls.to_string()),
        ("disconnects", o.disconnects.to_string()),
        ("setup_s", format!("{:.3}", o.setup_secs)),
        (
            "connect_rate",
            format!("{:.1}", rate(o.clients as u64, o.setup_secs)),
        ),
        ("rss_before_kb", kib(o.rss_before, false)),
        ("rss_connected_kb", kib(o.rss_connected, false)),
        ("rss_end_kb", kib(o.rss_end, false)),
        ("hwm_kb", kib(o.rss_end, true)),
        ("rss_per_client_b", opt(rss_per_client(o))),
        ("gen_cpu_s", format!("{:.2}", o.gen_cpu_measure)),
        ("gen_cpu_total_s", format!("{:.2}", o.gen_cpu_total)),
        ("wall_total_s", format!("{:.2}", o.wall_total)),
        ("broker_cpu_s", opt(o.broker_cpu_measure)),
        ("ok", verdict.is_empty().to_string()),
        ("failure", json_str(&verdict.join("; "))),
    ];
    let mut body: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    for g in &o.groups {
        // Keys stay plain words: the group name with other characters as '_'.
        let name: String = g
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let l = &g.latency;
        body.push(format!("\"group_{name}_received\":{}", g.received));
        body.push(format!("\"group_{name}_lost\":{}", g.lost));
        body.push(format!(
            "\"group_{name}_lat_p50_us\":{:.1}",
            us(l.quantile(0.5))
        ));
        body.push(format!(
            "\"group_{name}_lat_p99_us\":{:.1}",
            us(l.quantile(0.99))
        ));
        body.push(format!("\"group_{name}_lat_max_us\":{:.1}", us(l.max())));
    }
    format!("{{{}}}", body.join(","))
}

/// The JSON line of a run that could not start.
pub fn json_failed(h: &Header, why: &str) -> String {
    format!(
        "{{\"label\":{},\"scenario\":{},\"target\":{},\"ok\":false,\"failure\":{}}}",
        json_str(&h.label),
        json_str(&h.scenario),
        json_str(&h.target),
        json_str(why)
    )
}
