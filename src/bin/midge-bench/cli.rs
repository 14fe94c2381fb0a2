//! Command-line options: which broker (any host name or address, with
//! credentials and protocol level), which workload (a built-in scenario,
//! groups from flags, or a scenario file), and where the results go.

use crate::engine::{Settings, HEADER};
use crate::plan::{self, Plan, Uniform};
use crate::scenario::{self, Shape};
use crate::workload::{self, PubGroup, SubGroup};
use crate::{scenario_file, sys};
use getopts::{Matches, Options};
use midge::protocol::ProtocolLevel;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest payload.
pub const MAX_SIZE: usize = 16 * 1024 * 1024;

pub fn options() -> Options {
    let mut o = Options::new();
    o.optopt(
        "",
        "host",
        "broker host name or address, IPv4 or IPv6 (default 127.0.0.1)",
        "HOST",
    );
    o.optopt("p", "port", "broker port (default 1883)", "PORT");
    o.optopt("u", "username", "user name in CONNECT", "NAME");
    o.optopt(
        "P",
        "password",
        "password in CONNECT (or set MIDGE_BENCH_PASSWORD)",
        "TEXT",
    );
    o.optopt(
        "",
        "protocol",
        "MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5 (default 4)",
        "N",
    );
    o.optopt(
        "",
        "client-id-prefix",
        "client ids are this plus s<n> / p<n> (default mb<pid>-)",
        "TEXT",
    );
    o.optflag(
        "",
        "persistent",
        "every client keeps its session (CleanSession 0 / Clean Start 0)",
    );
    o.optflag(
        "",
        "persistent-subscribers",
        "subscribers keep their sessions (to measure persistence)",
    );
    o.optopt(
        "",
        "session-expiry",
        "MQTT 5: Session Expiry Interval of persistent sessions (default 300)",
        "SECS",
    );
    o.optopt(
        "",
        "keep-alive",
        "CONNECT keep-alive seconds, 0 = none (default 60)",
        "SECS",
    );
    o.optopt(
        "s",
        "scenario",
        "built-in: fan-in | fan-out | pairs | latency | connections | subscriptions (default fan-in)",
        "NAME",
    );
    o.optopt(
        "f",
        "scenario-file",
        "a mix of client groups from a file (see the README)",
        "FILE",
    );
    o.optopt(
        "",
        "topic",
        "own workload: publishers publish to this template (%i = client number)",
        "TEMPLATE",
    );
    o.optmulti(
        "",
        "filter",
        "own workload: subscribers subscribe to this (repeat for more)",
        "FILTER",
    );
    o.optopt(
        "",
        "interval",
        "each publisher publishes every MS milliseconds (default: flat out)",
        "MS",
    );
    o.optopt(
        "q",
        "qos",
        "QoS of publishes and subscriptions: 0, 1 or 2 (default 0)",
        "QOS",
    );
    o.optflag(
        "",
        "retain",
        "publish retained messages (cleared at the end of the run)",
    );
    o.optopt(
        "",
        "size",
        "payload bytes, or a range MIN-MAX; at least 24 (default 64)",
        "BYTES",
    );
    o.optopt(
        "",
        "publishers",
        "publishers (fan-in 10, own workload 1, others 1)",
        "P",
    );
    o.optopt(
        "",
        "subscribers",
        "subscribers (fan-out 100, own workload with --filter 1, others 1)",
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
        "total messages/s over all publishers, 0 = as fast as possible (latency: 10000)",
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
        "subscriptions per client for 'subscriptions' (default S/100)",
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
        "stop after publishing N messages in the measured phase",
        "N",
    );
    o.optopt(
        "",
        "inflight",
        "QoS 1/2: unacknowledged messages per publisher (default 20)",
        "N",
    );
    o.optopt("", "backlog", "a publisher waits while a subscriber it reaches is N messages behind (default 1000; 0 = off)", "N");
    o.optopt(
        "",
        "connect-window",
        "connection handshakes in progress at once (default 64)",
        "N",
    );
    o.optopt(
        "",
        "connect-rate",
        "ramp-up: new connections per second; publishers start as they connect (default: no limit)",
        "N",
    );
    o.optopt(
        "",
        "connect-timeout",
        "seconds for one client's TCP connect and CONNACK (default 10)",
        "SECS",
    );
    o.optopt(
        "",
        "setup-timeout",
        "seconds allowed to connect and subscribe everyone (default 60)",
        "SECS",
    );
    o.optopt(
        "",
        "threads",
        "worker threads, each with its own event loop (default 1)",
        "N",
    );
    o.optopt(
        "",
        "broker-pid",
        "report this local process's memory and CPU time",
        "PID",
    );
    o.optflag("", "json", "also print one JSON summary line at the end");
    o.optopt("", "json-file", "write the JSON summary to FILE", "FILE");
    o.optopt(
        "",
        "histogram",
        "write the latency histogram: FILE.csv, or HdrHistogram percentiles otherwise",
        "FILE",
    );
    o.optopt(
        "",
        "plot",
        "draw latency percentiles and throughput over time to FILE.svg",
        "FILE",
    );
    o.optflag(
        "",
        "compare",
        "compare two runs: midge-bench --compare A.json B.json",
    );
    o.optopt(
        "",
        "label",
        "name for this run in the JSON (e.g. the broker's)",
        "TEXT",
    );
    o.optflag("", "quiet", "no progress line every second");
    o.optflag("h", "help", "print this help");
    o
}

/// A configured run.
pub struct Run {
    pub settings: Settings,
    pub plan: Plan,
    pub target: String,
    pub outputs: Outputs,
}

pub struct Outputs {
    pub json: bool,
    pub json_file: Option<String>,
    pub histogram: Option<String>,
    pub plot: Option<String>,
    pub label: String,
}

fn num<T: std::str::FromStr>(m: &Matches, name: &str, default: T) -> Result<T, String> {
    match m.opt_str(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name}: '{v}' is not a valid number")),
    }
}

fn secs(m: &Matches, name: &str, default: f64) -> Result<Duration, String> {
    let v: f64 = num(m, name, default)?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("--{name}: between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The broker's address: a name is resolved; of several addresses the
/// first that accepts a TCP connection is used (so `localhost` works
/// whichever of ::1 and 127.0.0.1 the broker listens on).
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("--host: cannot resolve '{host}': {e}"))?
        .collect();
    match addrs.as_slice() {
        [] => Err(format!("--host: '{host}' has no address")),
        [one] => Ok(*one),
        many => {
            let wait = timeout.min(Duration::from_secs(3));
            let mut errors = Vec::new();
            for a in many {
                match TcpStream::connect_timeout(a, wait) {
                    Ok(_) => return Ok(*a),
                    Err(e) => errors.push(format!("{a}: {e}")),
                }
            }
            Err(format!("cannot connect to {host}: {}", errors.join("; ")))
        }
    }
}

fn level(m: &Matches) -> Result<ProtocolLevel, String> {
    match m.opt_str("protocol").as_deref() {
        None | Some("4") | Some("3.1.1") => Ok(ProtocolLevel::V311),
        Some("3") | Some("3.1") => Ok(ProtocolLevel::V31),
        Some("5") | Some("5.0") => Ok(ProtocolLevel::V5),
        Some(v) => Err(format!("--protocol: '{v}' is not 3, 4 or 5")),
    }
}

fn size(m: &Matches) -> Result<(usize, usize), String> {
    let size = match m.opt_str("size") {
        None => (64, 64),
        Some(s) => scenario_file::parse_size(&s).map_err(|e| format!("--size: {e}"))?,
    };
    if size.0 < HEADER {
        return Err(format!(
            "--size: at least {HEADER} bytes (run tag, stream id, sequence number, timestamp)"
        ));
    }
    if size.1 > MAX_SIZE {
        return Err("--size: at most 16 MiB".into());
    }
    Ok(size)
}

fn interval(m: &Matches) -> Result<Option<f64>, String> {
    let Some(v) = m.opt_str("interval") else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(ms) if ms > 0.0 && ms.is_finite() => Ok(Some(ms)),
        _ => Err(format!(
            "--interval: '{v}' is not a positive number of milliseconds"
        )),
    }
}

/// The workload of a built-in scenario.
fn builtin(m: &Matches, name: &str) -> Result<Plan, String> {
    let qos: u8 = num(m, "qos", 0)?;
    let default_pubs = match name {
        "fan-in" => 10,
        "pairs" => num(m, "pairs", 50)?,
        _ => 1,
    };
    let subscriptions: usize = num(m, "subscriptions", 10_000)?;
    let shape = Shape {
        publishers: num(m, "publishers", default_pubs)?,
        subscribers: num(m, "subscribers", if name == "fan-out" { 100 } else { 1 })?,
        connections: num(m, "connections", 10_000)?,
        subscriptions,
        subs_per_client: num(m, "subs-per-client", (subscriptions / 100).max(1))?,
        topics: num(m, "topics", 1000)?,
    };
    let counts = [
        shape.publishers,
        shape.subscribers,
        shape.connections,
        shape.subscriptions,
    ];
    if counts.contains(&0) || shape.subs_per_client == 0 || shape.topics == 0 {
        return Err("counts of clients, subscriptions and topics must be at least 1".into());
    }
    if shape.publishers > 60_000 || shape.subscribers > 1_000_000 || shape.connections > 1_000_000 {
        return Err("too many clients".into());
    }
    let layout = scenario::build(name, &shape)?;
    let rate: f64 = num(m, "rate", if name == "latency" { 10_000.0 } else { 0.0 })?;
    if !(rate >= 0.0 && rate.is_finite()) {
        return Err("--rate: a number of messages per second, 0 for unlimited".into());
    }
    let u = Uniform {
        qos,
        size: size(m)?,
        retain: m.opt_present("retain"),
        total_rate: rate,
        per_pub_rate: interval(m)?.map(|ms| 1000.0 / ms),
        persistent_pubs: m.opt_present("persistent"),
        persistent_subs: m.opt_present("persistent") || m.opt_present("persistent-subscribers"),
    };
    Ok(plan::from_layout(layout, &u))
}

/// The workload of `--topic` / `--filter`.
fn own(m: &Matches, prefix: &str) -> Result<Plan, String> {
    if m.opt_present("rate") {
        return Err(
            "--rate is for the built-in scenarios; with --topic each publisher \
                    publishes every --interval MS"
                .into(),
        );
    }
    let qos: u8 = num(m, "qos", 0)?;
    let filters = m.opt_strs("filter");
    let pubs = match m.opt_str("topic") {
        None => Vec::new(),
        Some(topic) => vec![PubGroup {
            name: "publishers".into(),
            clients: num(m, "publishers", 1)?,
            topic,
            interval_ms: interval(m)?.unwrap_or(0.0),
            qos,
            retain: m.opt_present("retain"),
            size: size(m)?,
            clean: !m.opt_present("persistent"),
            client_id: None,
        }],
    };
    let subs = if filters.is_empty() {
        Vec::new()
    } else {
        vec![SubGroup {
            name: "subscribers".into(),
            clients: num(m, "subscribers", 1)?,
            filters,
            qos,
            clean: !(m.opt_present("persistent") || m.opt_present("persistent-subscribers")),
            client_id: None,
        }]
    };
    workload::build("workload", &pubs, &subs, prefix, HEADER)
}

/// The run's plan, with its measured duration and default warm-up (a
/// scenario file may set both).
fn workload(m: &Matches, prefix: &str) -> Result<(Plan, Duration, f64), String> {
    let own_flags = m.opt_present("topic") || m.opt_present("filter");
    let file = m.opt_str("scenario-file");
    let chosen = [m.opt_present("scenario"), own_flags, file.is_some()];
    if chosen.iter().filter(|&&b| b).count() > 1 {
        return Err("choose one of --scenario, --scenario-file and --topic/--filter".into());
    }
    let mut duration = secs(m, "duration", 10.0)?;
    if let Some(path) = &file {
        let f = scenario_file::load(path)?;
        if let (Some(d), false) = (f.duration, m.opt_present("duration")) {
            duration = Duration::from_secs_f64(d.min(86_400.0));
        }
        let warmup = f.warmup.map_or(1.0, |w| w.min(86_400.0));
        let plan = workload::build(&f.name, &f.pubs, &f.subs, prefix, HEADER)?;
        Ok((plan, duration, warmup))
    } else if own_flags {
        Ok((own(m, prefix)?, duration, 1.0))
    } else {
        let name = m.opt_str("scenario").unwrap_or_else(|| "fan-in".into());
        let warmup = if name == "connections" { 0.0 } else { 1.0 };
        Ok((builtin(m, &name)?, duration, warmup))
    }
}

pub fn configure(m: &Matches) -> Result<Run, String> {
    let prefix = m
        .opt_str("client-id-prefix")
        .unwrap_or_else(|| format!("mb{}-", std::process::id()));
    let (plan, duration, warmup_default) = workload(m, &prefix)?;
    let level = level(m)?;
    let username = m.opt_str("username");
    let password = m
        .opt_str("password")
        .or_else(|| std::env::var("MIDGE_BENCH_PASSWORD").ok());
    if password.is_some() && username.is_none() && level != ProtocolLevel::V5 {
        return Err("--password needs --username below MQTT 5 [MQTT-3.1.2-22]".into());
    }
    if level == ProtocolLevel::V31 && prefix.len() + 8 > 23 {
        return Err(
            "--client-id-prefix: MQTT 3.1 allows 23-character client ids; use a shorter prefix"
                .into(),
        );
    }
    let host = m.opt_str("host").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = num(m, "port", 1883)?;
    let connect_timeout = secs(m, "connect-timeout", 10.0)?.max(Duration::from_millis(100));
    let inflight: usize = num(m, "inflight", 20)?;
    if inflight == 0 || inflight > 65_000 {
        return Err("--inflight: between 1 and 65000".into());
    }
    let backlog: i64 = num(m, "backlog", 1000)?;
    if backlog < 0 {
        return Err("--backlog: 0 or more".into());
    }
    let connect_rate: f64 = num(m, "connect-rate", 0.0)?;
    if !(connect_rate >= 0.0 && connect_rate.is_finite()) {
        return Err("--connect-rate: connections per second, 0 for no limit".into());
    }
    let threads: usize = num(m, "threads", 1)?;
    if threads == 0 || threads > 256 {
        return Err("--threads: between 1 and 256".into());
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
    let addr = resolve(&host, port, connect_timeout)?;
    let target = if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        addr.to_string()
    } else {
        format!("{host}:{port} ({addr})")
    };
    let settings = Settings {
        addr,
        level,
        username,
        password: password.map(String::into_bytes),
        client_prefix: prefix,
        session_expiry: num(m, "session-expiry", 300)?,
        keep_alive: num(m, "keep-alive", 60)?,
        duration,
        warmup: secs(m, "warmup", warmup_default)?,
        count: num(
            m,
            "count",
            if plan.scenario == "connections" {
                plan.subs.len() as u64
            } else {
                0
            },
        )?,
        inflight,
        backlog,
        connect_window: num::<usize>(m, "connect-window", 64)?.max(1),
        connect_rate,
        connect_timeout,
        setup_timeout: secs(m, "setup-timeout", 60.0)?,
        broker_pid,
        progress: !m.opt_present("quiet"),
        latency_timeline: m.opt_present("plot"),
        threads,
    };
    Ok(Run {
        settings,
        plan,
        target,
        outputs: Outputs {
            json: m.opt_present("json"),
            json_file: m.opt_str("json-file"),
            histogram: m.opt_str("histogram"),
            plot: m.opt_str("plot"),
            label: m.opt_str("label").unwrap_or_default(),
        },
    })
}
