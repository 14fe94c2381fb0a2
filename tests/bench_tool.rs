//! The `midge-bench` binary run as a user runs it, against a midge on an
//! ephemeral loopback port: its JSON summary, its messages when a broker
//! refuses it, topic templates, scenario files, merged worker threads and
//! the files it writes. Every run is short and bounded by its own
//! `--duration`, `--connect-timeout` and `--setup-timeout`.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs midge-bench against `b` with `args` plus short phases.
fn bench(b: &TestBroker, args: &[&str]) -> Output {
    let port = b.addr.port().to_string();
    let mut all = vec![
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--quiet",
        "--warmup",
        "0.2",
        "--duration",
        "0.6",
        "--connect-timeout",
        "5",
        "--setup-timeout",
        "10",
    ];
    all.extend_from_slice(args);
    Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(&all)
        .output()
        .expect("midge-bench runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The JSON summary line of a run's standard output.
fn summary(out: &Output) -> String {
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{stdout}\n{}", text(&out.stderr)))
        .to_string()
}

/// A field of a flat JSON line, as written (strings with their quotes).
fn field(json: &str, key: &str) -> String {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.find('"').map_or(rest.len(), |i| i + 2)
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    rest[..end].to_string()
}

fn number(json: &str, key: &str) -> f64 {
    let v = field(json, key);
    v.parse()
        .unwrap_or_else(|_| panic!("{key} = {v} in {json}"))
}

fn temp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn json_summary_has_percentiles_and_counts_every_message() {
    let b = TestBroker::start();
    let out = bench(
        &b,
        &[
            "--scenario",
            "latency",
            "--rate",
            "2000",
            "--qos",
            "1",
            "--json",
        ],
    );
    let j = summary(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(field(&j, "ok"), "true");
    assert_eq!(field(&j, "protocol"), "\"3.1.1\"");
    assert!(number(&j, "delivered") > 0.0);
    assert_eq!(number(&j, "lost"), 0.0);
    assert_eq!(number(&j, "total_sent"), number(&j, "total_delivered"));
    let (p50, p99, max) = (
        number(&j, "lat_p50_us"),
        number(&j, "lat_p99_us"),
        number(&j, "lat_max_us"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{j}");
    assert!(number(&j, "lat_p90_us") <= p99);
}

#[test]
fn wrong_password_is_reported_with_the_connack_code_and_no_table() {
    let file = temp("bench_tool.passwd");
    let line = format!("alice:{}\n", midge::auth::hash_password(b"secret", 101));
    std::fs::write(&file, line).unwrap();
    let b = TestBroker::start_with(|c| c.security.password_file = Some(file.clone()));
    let out = bench(
        &b,
        &["--username", "alice", "--password", "wrong", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("refused the connection: CONNACK return code 4 (bad user name or password)"),
        "{err}"
    );
    assert!(
        !text(&out.stdout).contains("measured phase"),
        "no table of zeros"
    );
    assert_eq!(field(&summary(&out), "ok"), "false");
    // MQTT 5 names the reason code, and the broker's reason string.
    let out = bench(&b, &["-u", "alice", "-P", "wrong", "--protocol", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("CONNACK reason code 0x86 (bad user name or password)"),
        "{err}"
    );
    // With the right password the same run passes.
    let out = bench(
        &b,
        &["--username", "alice", "--password", "secret", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_closed_port_is_reported_as_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["--host", "127.0.0.1", "--port", &port, "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("connection refused by 127.0.0.1:"), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn topic_templates_give_each_publisher_its_own_topic() {
    let b = TestBroker::start();
    // Four publishers on sensors/1/temp .. sensors/4/temp; the subscriber
    // hears only sensors/2/temp, and all of it.
    let args = [
        "--topic",
        "sensors/%i/temp",
        "--publishers",
        "4",
        "--interval",
        "10",
        "--qos",
        "1",
        "--size",
        "24-200",
        "--filter",
        "sensors/2/+",
        "--json",
    ];
    let out = bench(&b, &args);
    let j = summary(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(number(&j, "publishers"), 4.0);
    assert_eq!(field(&j, "size"), "\"24-200\"");
    let (sent, got) = (number(&j, "total_sent"), number(&j, "total_delivered"));
    assert!(got > 0.0 && (got - sent / 4.0).abs() <= 2.0, "{j}");
    assert_eq!(number(&j, "lost"), 0.0, "{j}");
    assert_eq!(number(&j, "unexpected"), 0.0, "{j}");
    assert!(text(&out.stdout).contains("4 x publishers -> sensors/%i/temp every 10 ms"));
}

#[test]
fn scenario_file_runs_a_mix_and_writes_histogram_and_plot() {
    let b = TestBroker::start();
    let file = temp("bench_tool_mix.toml");
    std::fs::write(
        &file,
        "# sensors and a dashboard\n\
         [[publishers]]\nname = \"sensors\"\nclients = 20\ntopic = \"sensors/%i/temp\"\n\
         interval_ms = 50\nqos = 1\nsize = \"32-64\"\n\
         [[publishers]]\nname = \"alarms\"\nclients = 2\ntopic = \"alarms/%i\"\n\
         interval_ms = 100\nqos = 2\nretain = true\n\
         [[subscribers]]\nname = \"dashboard\"\nfilters = [\"#\"]\nqos = 1\n\
         [[subscribers]]\nname = \"pager\"\nclients = 2\nfilters = ['alarms/+']\nqos = 2\n",
    )
    .unwrap();
    let (hist, plot) = (temp("bench_tool.hgrm"), temp("bench_tool.svg"));
    let out = bench(
        &b,
        &[
            "--scenario-file",
            file.to_str().unwrap(),
            "--histogram",
            hist.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--json",
        ],
    );
    let j = summary(&out);
    assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
    assert_eq!(number(&j, "clients"), 25.0);
    assert_eq!(field(&j, "qos"), "2");
    assert_eq!(number(&j, "lost"), 0.0, "{j}");
    assert_eq!(number(&j, "dup"), 0.0, "{j}");
    // Every message reaches the dashboard; alarms reach both pagers too.
    let (sent, got) = (number(&j, "total_sent"), number(&j, "total_delivered"));
    assert!(got > sent, "{j}");
    // Each subscriber group reported apart.
    assert_eq!(number(&j, "group_dashboard_received"), sent, "{j}");
    assert!(number(&j, "group_pager_received") > 0.0, "{j}");
    assert!(number(&j, "group_pager_lat_p99_us") > 0.0, "{j}");
    assert!(text(&out.stdout).contains("group pager                2 clients"));
    let hgrm = std::fs::read_to_string(&hist).unwrap();
    assert!(
        hgrm.starts_with("       Value     Percentile TotalCount"),
        "{hgrm}"
    );
    assert!(hgrm.contains("#[Max     ="));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
}

#[test]
fn a_bad_scenario_file_names_the_line() {
    let b = TestBroker::start();
    let file = temp("bench_tool_bad.toml");
    std::fs::write(&file, "[[publishers]]\ntopic = \"a\"\nqoss = 1\n").unwrap();
    let out = bench(&b, &["--scenario-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("line 3: unknown key 'qoss'"), "{err}");
}

#[test]
fn worker_threads_merge_into_one_result() {
    let b = TestBroker::start();
    let args = [
        "--scenario",
        "pairs",
        "--pairs",
        "6",
        "--qos",
        "1",
        "--threads",
        "2",
        "--json",
    ];
    let out = bench(&b, &args);
    let j = summary(&out);
    assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
    assert_eq!(number(&j, "threads"), 2.0);
    // Each message reaches its pair, the '+' and the '#' subscriber, some
    // of them on the other thread: all counted, nothing lost.
    assert_eq!(
        number(&j, "total_delivered"),
        3.0 * number(&j, "total_sent"),
        "{j}"
    );
    assert_eq!(number(&j, "lost"), 0.0, "{j}");
    assert_eq!(number(&j, "ooo"), 0.0, "{j}");
}

#[test]
fn compare_prints_two_runs_side_by_side() {
    let b = TestBroker::start();
    let (a, c) = (temp("bench_tool_a.json"), temp("bench_tool_b.json"));
    for (path, label) in [(&a, "first"), (&c, "second")] {
        let args = [
            "--scenario",
            "fan-in",
            "--publishers",
            "2",
            "--label",
            label,
        ];
        let out = bench(
            &b,
            &[&args[..], &["--json-file", path.to_str().unwrap()]].concat(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["--compare", a.to_str().unwrap(), c.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("first") && table.contains("second"),
        "{table}"
    );
    assert!(
        table.contains("deliveries/s") && table.contains("latency p99 (us)"),
        "{table}"
    );
}

#[test]
fn mqtt5_with_persistent_sessions_and_qos_2_passes() {
    let b = TestBroker::start();
    let args = [
        "--protocol",
        "5",
        "--persistent",
        "--scenario",
        "pairs",
        "--pairs",
        "3",
    ];
    let out = bench(&b, &[&args[..], &["--qos", "2", "--json"]].concat());
    let j = summary(&out);
    assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
    assert_eq!(field(&j, "protocol"), "\"5\"");
    assert!(number(&j, "delivered") > 0.0, "{j}");
    assert_eq!(
        number(&j, "total_delivered"),
        3.0 * number(&j, "total_sent"),
        "{j}"
    );
}

/// A "broker" that completes TCP handshakes (the kernel does, from the
/// listen backlog) and then never answers: the run must end with the
/// connect timeout, naming the missing CONNACK.
#[test]
fn a_silent_broker_is_reported_as_no_connack_in_time() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let args = ["--port", &port, "--quiet", "--connect-timeout", "1"];
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("connected, but no CONNACK within 1s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(silent);
}

/// A listener that closes each connection at once: reported as closed
/// before CONNACK (or as a reset, when our CONNECT was still unread).
#[test]
fn a_broker_closing_before_connack_is_reported() {
    let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closer.local_addr().unwrap().port().to_string();
    closer.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match closer.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["--port", &port, "--quiet", "--connect-timeout", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("closed the connection without a CONNACK")
            || err.contains("connection reset by the broker"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn host_takes_names_and_ipv6_addresses() {
    let b = TestBroker::start();
    let port = b.addr.port().to_string();
    let run = |host: &str, port: &str| {
        Command::new(env!("CARGO_BIN_EXE_midge-bench"))
            .args(["--host", host, "--port", port, "--quiet", "--json"])
            .args(["--scenario", "latency", "--rate", "500"])
            .args([
                "--warmup",
                "0.1",
                "--duration",
                "0.3",
                "--connect-timeout",
                "5",
            ])
            .output()
            .unwrap()
    };
    // A name is resolved (of its addresses, the one the broker listens on).
    let out = run("localhost", &port);
    let j = summary(&out);
    assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
    assert!(field(&j, "target").starts_with("\"localhost:"), "{j}");
    // An IPv6 address, where the machine has ::1.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let b6 = TestBroker::start_with(|c| c.listen_on(["[::1]:0".parse().unwrap()]));
    let port6 = b6.addr.port().to_string();
    for host in ["::1", "[::1]"] {
        let out = run(host, &port6);
        let j = summary(&out);
        assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
        assert_eq!(field(&j, "target"), format!("\"[::1]:{port6}\""));
    }
}

#[test]
fn mqtt31_clients_connect_with_short_ids() {
    let b = TestBroker::start();
    let out = bench(&b, &["--protocol", "3", "--qos", "1", "--json"]);
    let j = summary(&out);
    assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
    assert_eq!(field(&j, "protocol"), "\"3.1\"");
    assert_eq!(number(&j, "lost"), 0.0, "{j}");
}

/// During a --connect-rate ramp-up the publishers already connected
/// publish (once every subscriber is subscribed), and all of it counts.
#[test]
fn publishers_publish_during_the_ramp_up() {
    let b = TestBroker::start();
    let port = b.addr.port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["--port", &port, "--quiet", "--json", "--warmup", "0"])
        .args(["--duration", "0.5", "--connect-rate", "40", "--qos", "1"])
        .args([
            "--topic",
            "ramp/%i",
            "--publishers",
            "20",
            "--interval",
            "20",
        ])
        .args(["--filter", "ramp/+"])
        .output()
        .unwrap();
    let j = summary(&out);
    assert!(out.status.success(), "{}\n{j}", text(&out.stderr));
    // 21 clients at 40 a second: about half a second of ramp-up, in which
    // the publishers already connected sent messages too.
    assert!(number(&j, "setup_s") >= 0.4, "{j}");
    assert!(number(&j, "total_sent") > number(&j, "sent") + 10.0, "{j}");
    assert_eq!(
        number(&j, "total_delivered"),
        number(&j, "total_sent"),
        "{j}"
    );
    assert_eq!(number(&j, "lost"), 0.0, "{j}");
}
