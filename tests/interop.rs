//! Interoperability: the broker driven by real third-party clients, the
//! command-line `mosquitto_pub` / `mosquitto_sub` (Debian package
//! mosquitto-clients) and the Python `paho-mqtt` 2.x library.
//!
//! A missing tool skips the test with a message, unless the environment
//! variable `CI` is set: then the test fails and says to run
//! `scripts/install-test-deps.sh`.

mod common;
use common::*;

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds passed to `mosquitto_sub -W`: it exits by itself after this.
const SUB_TIMEOUT_SECS: &str = "5";
/// How long any child process may run before the test kills it; longer
/// than `SUB_TIMEOUT_SECS` so the tool's own timeout fires first.
const PROC_LIMIT: Duration = Duration::from_secs(20);

/// Returns whether `tool` is usable. When it is not: panics under CI,
/// otherwise prints why the test is skipped.
fn have(tool: &str, usable: bool) -> bool {
    if usable {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is missing: run scripts/install-test-deps.sh to install the test tools");
    }
    eprintln!("SKIPPED: {tool} is missing (run scripts/install-test-deps.sh to install it)");
    false
}

/// Whether the program can be started at all (its exit status does not
/// matter: `--help` exits non-zero for some tools).
fn runs(program: &str, args: &[&str]) -> bool {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn have_mosquitto_clients() -> bool {
    have(
        "mosquitto_pub/mosquitto_sub (package mosquitto-clients)",
        runs("mosquitto_sub", &["--help"]) && runs("mosquitto_pub", &["--help"]),
    )
}

fn have_paho() -> bool {
    let usable = Command::new("python3")
        .args([
            "-c",
            "import paho.mqtt.client; from paho.mqtt.enums import CallbackAPIVersion",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    have("python3 with paho-mqtt 2.x", usable)
}

/// A child process with its stdout read line by line in a thread; killed
/// on drop.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

impl Proc {
    fn spawn(program: &str, args: &[String]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Proc {
            name: format!("{program} {}", args.join(" ")),
            child,
            lines,
            stderr: Some(stderr),
            started: Instant::now(),
        }
    }

    /// The next line of standard output, within WAIT.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no output line within {WAIT:?}", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.child.kill();
                let status = self.child.wait();
                let err = self.stderr.take().map(|t| t.join().unwrap_or_default());
                panic!(
                    "{}: exited ({status:?}) before printing a line; stderr: {err:?}",
                    self.name
                )
            }
        }
    }

    /// Waits (at most PROC_LIMIT since the start) for the process to end;
    /// returns its status, the remaining stdout lines and its stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let deadline = self.started + PROC_LIMIT;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: still running after {PROC_LIMIT:?}; output {out:?}",
                        self.name
                    )
                }
            }
        }
        // Standard output is closed: the process has exited (or is about to).
        let status = self.child.wait().expect("wait");
        let err = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        (status, out, err)
    }

    /// Runs to completion and asserts exit status 0; returns stdout lines.
    fn success(self) -> Vec<String> {
        let name = self.name.clone();
        let (status, out, err) = self.finish();
        assert!(
            status.success(),
            "{name}: {status}; stdout {out:?}; stderr {err:?}"
        );
        out
    }

    /// SIGKILL: the process gets no chance to send DISCONNECT.
    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Arguments every mosquitto client gets: this broker.
fn server(addr: SocketAddr) -> Vec<String> {
    vec![
        "-h".into(),
        addr.ip().to_string(),
        "-p".into(),
        addr.port().to_string(),
    ]
}

fn args(addr: SocketAddr, rest: &[&str]) -> Vec<String> {
    let mut v = server(addr);
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// `mosquitto_pub` run to completion (for QoS 1/2 that means acknowledged).
fn mosquitto_pub(addr: SocketAddr, rest: &[&str]) {
    Proc::spawn("mosquitto_pub", &args(addr, rest)).success();
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-6]: a retained
// message from mosquitto_pub -r reaches a later mosquitto_sub with the
// retain flag, at min(stored QoS, subscription QoS), for QoS 0, 1 and 2.
#[test]
fn mosquitto_sub_gets_retained_message_from_mosquitto_pub_at_qos_0_1_2() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start();
    // Proves each publish was processed before mosquitto_sub connects, also
    // for QoS 0 where mosquitto_pub gets no acknowledgement.
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher", true);
    watcher.subscribe(1, &[("interop/retained/#", 0)]);
    for q in 0..=2u8 {
        let topic = format!("interop/retained/q{q}");
        let payload = format!("retained at QoS {q}");
        let qs = q.to_string();
        mosquitto_pub(
            b.addr,
            &["-i", "mpub", "-t", &topic, "-m", &payload, "-q", &qs, "-r"],
        );
        let live = watcher.read_publish();
        assert_eq!(
            (live.topic.as_str(), &live.payload[..], live.retain),
            (topic.as_str(), payload.as_bytes(), false)
        );

        for sub_q in [2u8, 0] {
            let out = Proc::spawn(
                "mosquitto_sub",
                &args(
                    b.addr,
                    &[
                        "-t",
                        &topic,
                        "-q",
                        &sub_q.to_string(),
                        "-C",
                        "1",
                        "-W",
                        SUB_TIMEOUT_SECS,
                        "-F",
                        "%r|%q|%t|%p",
                    ],
                ),
            )
            .success();
            assert_eq!(
                out,
                vec![format!("1|{}|{topic}|{payload}", q.min(sub_q))],
                "mosquitto_sub -q {sub_q} on a message retained at QoS {q}"
            );
        }
    }
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2]: mosquitto_sub -c (persistent
// session, fixed id, QoS 1) receives what was published while it was away.
#[test]
fn mosquitto_sub_persistent_session_gets_messages_published_while_away() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start();
    let sub_args = |extra: &[&str]| {
        let mut a = vec![
            "-c",
            "-i",
            "interop-persist",
            "-q",
            "1",
            "-t",
            "interop/persist/#",
        ];
        a.extend_from_slice(extra);
        args(b.addr, &a)
    };
    // Subscribe, then exit (with DISCONNECT) once the SUBACK is in.
    Proc::spawn("mosquitto_sub", &sub_args(&["-E", "-W", SUB_TIMEOUT_SECS])).success();

    mosquitto_pub(
        b.addr,
        &["-t", "interop/persist/a", "-m", "while away 1", "-q", "1"],
    );
    mosquitto_pub(
        b.addr,
        &["-t", "interop/persist/b", "-m", "while away 2", "-q", "2"],
    );

    let out = Proc::spawn(
        "mosquitto_sub",
        &sub_args(&["-C", "2", "-W", SUB_TIMEOUT_SECS, "-F", "%q|%t|%p"]),
    )
    .success();
    assert_eq!(
        out,
        vec![
            "1|interop/persist/a|while away 1".to_string(),
            "1|interop/persist/b|while away 2".to_string(),
        ]
    );
}

// [MQTT-3.1.2-8]: the Will set with mosquitto_sub --will-topic/--will-payload
// is published when the process is killed.
#[test]
fn will_of_killed_mosquitto_sub_is_published() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start();
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher", true);
    watcher.subscribe(1, &[("interop/will/#", 1)]);
    // A retained message tells us when mosquitto_sub is connected and
    // subscribed: it prints it right after its SUBACK.
    let (mut setter, _) = Raw::mqtt(b.addr, "setter", true);
    setter.send(&publish_packet(
        "interop/ready",
        b"ready",
        1,
        1,
        true,
        false,
    ));
    setter.expect(&[0x40, 2, 0, 1]);

    let mut sub = Proc::spawn(
        "mosquitto_sub",
        &args(
            b.addr,
            &[
                "-i",
                "interop-will",
                "-t",
                "interop/ready",
                "-q",
                "1",
                "-W",
                "30",
                "-F",
                "%t|%p",
                "--will-topic",
                "interop/will/mosquitto_sub",
                "--will-payload",
                "mosquitto_sub died",
                "--will-qos",
                "1",
            ],
        ),
    );
    assert_eq!(sub.line(), "interop/ready|ready");
    sub.kill();

    let will = watcher.read_publish();
    assert_eq!(
        (
            will.topic.as_str(),
            &will.payload[..],
            will.qos,
            will.retain
        ),
        (
            "interop/will/mosquitto_sub",
            &b"mosquitto_sub died"[..],
            1,
            false
        )
    );
}

fn paho_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/paho_qos2.py")
}

fn paho_qos2(version: &str) {
    if !have_paho() {
        return;
    }
    let b = TestBroker::start();
    let out = Proc::spawn(
        "python3",
        &[
            paho_script().to_string_lossy().into_owned(),
            b.addr.ip().to_string(),
            b.addr.port().to_string(),
            version.to_string(),
        ],
    )
    .success();
    assert_eq!(
        out,
        vec![format!("ok 20 messages at QoS 2 over MQTT v{version}")]
    );
}

// [MQTT-4.3.3-2] [MQTT-3.8.4-6] [MQTT-4.6.0-6]: paho-mqtt, MQTT 3.1.1.
#[test]
fn paho_mqttv311_qos2_publish_subscribe() {
    paho_qos2("311");
}

// MQTT 3.1 ("MQIsdp", level 3) clients are accepted: paho-mqtt with MQTTv31.
#[test]
fn paho_mqttv31_qos2_publish_subscribe() {
    paho_qos2("31");
}
