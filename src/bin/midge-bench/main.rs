//! `midge-bench`: an event-driven MQTT load generator for midge (or any
//! MQTT 3.1.1 broker) on loopback.
//!
//! One mio loop drives every client (no thread per client), so the
//! generator stays cheap; the report shows its own CPU time next to the
//! wall time to prove it was not the bottleneck. Each run connects its
//! clients, warms up, measures for `--duration` (or `--count` messages),
//! waits for what is still in flight, and reports throughput, latency
//! percentiles and per-subscriber loss / duplicates / reordering from the
//! publisher id, sequence number and timestamp carried in every payload.
//!
//! Exit status: 0 on success; 1 if the run failed (setup failed, a client
//! was disconnected, at QoS 1/2 an acknowledged message never arrived, at
//! QoS 2 a message arrived twice); 2 on a usage error.

mod engine;
mod scenario;
mod stats;
mod sys;

use engine::{Bench, Outcome, Settings, HEADER};
use getopts::Options;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

fn options() -> Options {
    let mut o = Options::new();
    o.optopt(
        "",
        "host",
        "broker address, loopback only (default 127.0.0.1)",
        "ADDR",
    );
    o.optopt("p", "port", "broker port (default 1883)", "PORT");
    o.optopt(
        "s",
        "scenario",
        "fan-in | fan-out | pairs | latency | connections | subscriptions (default fan-in)",
        "NAME",
    );
    o.optopt(
        "q",
        "qos",
        "QoS of publishes and subscriptions: 0, 1 or 2 (default 0)",
        "QOS",
    );
    o.optopt(
        "",
        "size",
        "payload bytes, at least 20 (default 64)",
        "BYTES",
    );
    o.optopt(
        "",
        "publishers",
        "publishers (fan-in 10, latency 1, connections 1, subscriptions 1)",
        "P",
    );
    o.optopt(
        "",
        "subscribers",
        "subscribers (fan-out 100, latency 1)",
        "N",
    );
    o.optopt(
        "",
        "pairs",
        "publisher/subscriber pairs for 'pairs' (default 50)",
        "P",
    );
    o.optopt(
        "",
        "rate",
        "total messages/s over all publishers, 0 = as fast as possible (latency: 10000, others 0)",
        "MSGS",
    );
    o.optopt(
        "",
        "connections",
        "idle clients for 'connections' (default 10000)",
        "C",
    );
    o.optopt(
        "",
        "subscriptions",
        "subscriptions for 'subscriptions' (default 10000)",
        "S",
    );
    o.optopt(
        "",
        "subs-per-client",
        "subscriptions per client for 'subscriptions' (default S/100: always 100 subscribing \
         clients, so only the number of subscriptions changes between runs)",
        "K",
    );
    o.optopt(
        "",
        "topics",
        "distinct topics published to in 'subscriptions' (default 1000)",
        "T",
    );
    o.optopt("d", "duration", "measured seconds (default 10)", "SECS");
    o.optopt(
        "",
        "warmup",
        "seconds of publishing before measuring (default 1; connections 0)",
        "SECS",
    );
    o.optopt(
        "n",
        "count",
        "stop after publishing N messages in the measured phase (connections: one per client)",
        "N",
    );
    o.optopt(
        "",
        "inflight",
        "QoS 1/2: unacknowledged messages per publisher (default 20, the brokers' default max_inflight)",
        "N",
    );
    o.optopt(
        "",
        "backlog",
        "end-to-end window: a publisher waits while a subscriber it reaches is N messages behind; \
         keeps broker queues under their 1000-message limit (default 1000; 0 = off)",
        "N",
    );
    o.optopt(
        "",
        "connect-window",
        "connection handshakes in progress at once (default 64; more can overflow a broker's listen \
         backlog and cost 1 s SYN retries)",
        "N",
    );
    o.optopt(
        "",
        "setup-timeout",
        "seconds allowed to connect and subscribe (default 60)",
        "SECS",
    );
    o.optopt(
        "",
        "keep-alive",
        "CONNECT keep-alive seconds, 0 = none (default 60)",
        "SECS",
    );
    o.optopt(
        "",
        "broker-pid",
        "report this process's memory (VmRSS/VmHWM) and CPU time",
        "PID",
    );
    o.optflag(
        "",
        "persistent-subscribers",
        "subscribers use CleanSession 0 (to measure a broker's persistence)",
    );
    o.optflag("", "json", "also print one JSON summary line at the end");
    o.optopt(
        "",
        "label",
        "name for this run in the JSON line (e.g. the broker's)",
        "TEXT",
    );
    o.optflag("", "quiet", "no progress line every second");
    o.optflag("h", "help", "print this help");
    o
}

fn num<T: std::str::FromStr>(m: &getopts::Matches, name: &str, default: T) -> Result<T, String> {
    match m.opt_str(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name}: '{v}' is not a valid number")),
    }
}

fn secs(m: &getopts::Matches, name: &str, default: f64) -> Result<Duration, String> {
    let v: f64 = num(m, name, default)?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("--{name}: between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn host(m: &getopts::Matches) -> Result<IpAddr, String> {
    let h = m.opt_str("host").unwrap_or_else(|| "127.0.0.1".into());
    let ip = if h == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        h.parse::<IpAddr>()
            .map_err(|_| format!("--host: '{h}' is not an IP address"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "--host: {ip} is not a loopback address; midge-bench only loads brokers on this machine"
        ));
    }
    Ok(ip)
}

struct Run {
    settings: Settings,
    plan: scenario::Plan,
    json: bool,
    label: String,
}

fn configure(m: &getopts::Matches) -> Result<Run, String> {
    let name = m.opt_str("scenario").unwrap_or_else(|| "fan-in".into());
    let qos: u8 = num(m, "qos", 0)?;
    if qos > 2 {
        return Err("--qos: 0, 1 or 2".into());
    }
    let size: usize = num(m, "size", 64)?;
    if size < HEADER {
        return Err(format!(
            "--size: at least {HEADER} bytes (stream id, sequence number, timestamp)"
        ));
    }
    if size > 16 * 1024 * 1024 {
        return Err("--size: at most 16 MiB".into());
    }
    let default_pubs = match name.as_str() {
        "fan-in" => 10,
        "pairs" => num(m, "pairs", 50)?,
        _ => 1,
    };
    let subscriptions: usize = num(m, "subscriptions", 10_000)?;
    let shape = scenario::Shape {
        publishers: num(m, "publishers", default_pubs)?,
        subscribers: num(m, "subscribers", if name == "fan-out" { 100 } else { 1 })?,
        connections: num(m, "connections", 10_000)?,
        subscriptions,
        subs_per_client: num(m, "subs-per-client", (subscriptions / 100).max(1))?,
        topics: num(m, "topics", 1000)?,
    };
    if shape.publishers == 0
        || shape.subscribers == 0
        || shape.connections == 0
        || shape.subscriptions == 0
        || shape.subs_per_client == 0
        || shape.topics == 0
    {
        return Err("counts of clients, subscriptions and topics must be at least 1".into());
    }
    if shape.publishers > 60_000 || shape.subscribers > 1_000_000 || shape.connections > 1_000_000 {
        return Err("too many clients".into());
    }
    let plan = scenario::build(&name, &shape)?;
    let rate: f64 = num(m, "rate", if name == "latency" { 10_000.0 } else { 0.0 })?;
    if !(rate >= 0.0 && rate.is_finite()) {
        return Err("--rate: a number of messages per second, 0 for unlimited".into());
    }
    let default_count = if name == "connections" {
        shape.connections as u64
    } else {
        0
    };
    let inflight: usize = num(m, "inflight", 20)?;
    if inflight == 0 || inflight > 65_000 {
        return Err("--inflight: between 1 and 65000".into());
    }
    let broker_pid = match m.opt_str("broker-pid") {
        None => None,
        Some(v) => {
            let pid: u32 = v
                .parse()
                .map_err(|_| format!("--broker-pid: '{v}' is not a pid"))?;
            if sys::memory_kib(pid).is_none() {
                return Err(format!("--broker-pid: cannot read /proc/{pid}/status"));
            }
            Some(pid)
        }
    };
    let settings = Settings {
        addr: SocketAddr::new(host(m)?, num(m, "port", 1883)?),
        qos,
        size,
        duration: secs(m, "duration", 10.0)?,
        warmup: secs(m, "warmup", if name == "connections" { 0.0 } else { 1.0 })?,
        count: num(m, "count", default_count)?,
        rate,
        inflight,
        backlog: num(m, "backlog", 1000)?,
        connect_window: num::<usize>(m, "connect-window", 64)?.max(1),
        setup_timeout: secs(m, "setup-timeout", 60.0)?,
        broker_pid,
        keep_alive: num(m, "keep-alive", 60)?,
        persistent: m.opt_present("persistent-subscribers"),
        progress: !m.opt_present("quiet"),
    };
    if settings.backlog < 0 {
        return Err("--backlog: 0 or more".into());
    }
    Ok(Run {
        settings,
        plan,
        json: m.opt_present("json"),
        label: m.opt_str("label").unwrap_or_default(),
    })
}

fn main() -> ExitCode {
    let opts = options();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("midge-bench: {e}\n{}", opts.short_usage("midge-bench"));
            return ExitCode::from(2);
        }
    };
    if m.opt_present("help") {
        print!(
            "{}",
            opts.usage(
                "Usage: midge-bench [options]\n\nLoad generator for MQTT brokers on loopback. Scenarios:\n  \
                 fan-in         P publishers -> 1 subscriber on one topic\n  \
                 fan-out        1 publisher -> N subscribers\n  \
                 pairs          P publisher/subscriber pairs on bench/pair/<i>, plus '+' and '#' subscribers\n  \
                 latency        fixed --rate; latency percentiles from timestamps in the payload\n  \
                 connections    C idle subscribed clients: connect rate, broker RSS per connection\n  \
                 subscriptions  S subscriptions (70% exact, 30% wildcard), publish to matching topics"
            )
        );
        return ExitCode::SUCCESS;
    }
    let run = match configure(&m) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("midge-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let clients = (run.plan.publishers + run.plan.subscribers.len()) as u64;
    if let Err(e) = sys::ensure_files(clients + 32) {
        eprintln!("midge-bench: {e}");
        return ExitCode::from(2);
    }
    let head = Header {
        scenario: run.plan.scenario,
        describe: run.plan.describe.clone(),
        publishers: run.plan.publishers,
        subscribers: run.plan.subscribers.len(),
        subscriptions: run.plan.subscriptions,
        qos: run.settings.qos,
        size: run.settings.size,
        rate: run.settings.rate,
        label: run.label.clone(),
    };
    let bench = match Bench::new(run.settings, run.plan) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("midge-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = bench.run();
    let verdict = verdict(&head, &out);
    print!("{}", table(&head, &out, &verdict));
    if run.json {
        println!("{}", json(&head, &out, &verdict));
    }
    if verdict.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct Header {
    scenario: &'static str,
    describe: String,
    publishers: usize,
    subscribers: usize,
    subscriptions: usize,
    qos: u8,
    size: usize,
    rate: f64,
    label: String,
}

/// Reasons the run failed; empty when it passed.
fn verdict(h: &Header, o: &Outcome) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(e) = &o.fatal {
        v.push(e.clone());
    }
    if o.disconnects > 0 {
        v.push(format!("{} clients were disconnected", o.disconnects));
    }
    if h.qos > 0 && o.lost_acked > 0 {
        v.push(format!(
            "{} acknowledged QoS {} deliveries never arrived",
            o.lost_acked, h.qos
        ));
    }
    if h.qos == 2 && o.dup > 0 {
        v.push(format!("{} QoS 2 messages arrived more than once", o.dup));
    }
    v
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn us(ns: u64) -> f64 {
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

fn table(h: &Header, o: &Outcome, verdict: &[String]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let label = if h.label.is_empty() {
        String::new()
    } else {
        format!("  [{}]", h.label)
    };
    let rate_note = if h.rate > 0.0 {
        format!(", {} msg/s offered", h.rate)
    } else {
        String::new()
    };
    let _ = writeln!(
        t,
        "\nmidge-bench {}, QoS {}, {}-byte payloads{rate_note}{label}",
        h.scenario, h.qos, h.size
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
    let (sent, acked, delivered) = o.measured;
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
        sent,
        rate(sent, d)
    );
    if h.qos > 0 {
        let _ = writeln!(
            t,
            "  {:<24}{:>14}{:>16.0}",
            "acknowledged",
            acked,
            rate(acked, d)
        );
    }
    let _ = writeln!(
        t,
        "  {:<24}{:>14}{:>16.0}",
        "delivered",
        delivered,
        rate(delivered, d)
    );
    let l = &o.latency;
    let _ = writeln!(
        t,
        "\n  latency (us)            p50 {:.1}   p99 {:.1}   p99.9 {:.1}   max {:.1}   mean {:.1}   ({} samples)",
        us(l.quantile(0.5)),
        us(l.quantile(0.99)),
        us(l.quantile(0.999)),
        us(l.max()),
        us(l.mean()),
        l.count()
    );
    let (ts, ta, td) = o.totals;
    let _ = writeln!(
        t,
        "  whole run               published {ts}, acknowledged {ta}, delivered {td}; {} subscriptions",
        h.subscriptions
    );
    let _ = writeln!(
        t,
        "  correctness             lost {} (acknowledged and lost {}), duplicates {}, out of order {}, unexpected {}",
        o.lost, o.lost_acked, o.dup, o.ooo, o.unexpected
    );
    let _ = writeln!(
        t,
        "                          still arriving when the drain stopped {}, unacknowledged at end {}, \
         stalls {}, disconnects {}",
        o.late, o.unacked_end, o.stalls, o.disconnects
    );
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

fn json_str(s: &str) -> String {
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

/// One flat JSON object (easy to parse with awk as well as jq).
fn json(h: &Header, o: &Outcome, verdict: &[String]) -> String {
    let (sent, acked, delivered) = o.measured;
    let d = o.measure_secs;
    let l = &o.latency;
    let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let kib = |v: Option<(u64, u64)>, hwm: bool| {
        v.map_or("null".to_string(), |(r, p)| {
            if hwm { p } else { r }.to_string()
        })
    };
    let fields: Vec<(&str, String)> = vec![
        ("label", json_str(&h.label)),
        ("scenario", json_str(h.scenario)),
        ("qos", h.qos.to_string()),
        ("size", h.size.to_string()),
        ("publishers", h.publishers.to_string()),
        ("subscribers", h.subscribers.to_string()),
        ("subscriptions", h.subscriptions.to_string()),
        ("clients", o.clients.to_string()),
        ("offered_rate", format!("{:.0}", h.rate)),
        ("duration_s", format!("{d:.3}")),
        ("sent", sent.to_string()),
        ("acked", acked.to_string()),
        ("delivered", delivered.to_string()),
        ("pub_rate", format!("{:.1}", rate(sent, d))),
        ("ack_rate", format!("{:.1}", rate(acked, d))),
        ("delivery_rate", format!("{:.1}", rate(delivered, d))),
        ("lat_p50_us", format!("{:.1}", us(l.quantile(0.5)))),
        ("lat_p99_us", format!("{:.1}", us(l.quantile(0.99)))),
        ("lat_p999_us", format!("{:.1}", us(l.quantile(0.999)))),
        ("lat_max_us", format!("{:.1}", us(l.max()))),
        ("lat_mean_us", format!("{:.1}", us(l.mean()))),
        ("lat_samples", l.count().to_string()),
        ("total_sent", o.totals.0.to_string()),
        ("total_acked", o.totals.1.to_string()),
        ("total_delivered", o.totals.2.to_string()),
        ("lost", o.lost.to_string()),
        ("lost_acked", o.lost_acked.to_string()),
        ("late", o.late.to_string()),
        ("dup", o.dup.to_string()),
        ("ooo", o.ooo.to_string()),
        ("unexpected", o.unexpected.to_string()),
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
    let body: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", body.join(","))
}
