//! Third-party clients as child processes: `mosquitto_pub` /
//! `mosquitto_sub` (Debian package mosquitto-clients) and Python scripts
//! with `paho-mqtt` 2.x, with bounded waits.
//!
//! A missing tool skips the test with a message, unless the environment
//! variable `CI` is set: then the test fails and says to run
//! `scripts/install-test-deps.sh`.

use super::WAIT;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds passed to `mosquitto_sub -W`: it exits by itself after this.
pub const SUB_TIMEOUT_SECS: &str = "5";
/// How long any child process may run before the test kills it; longer
/// than `SUB_TIMEOUT_SECS` so the tool's own timeout fires first.
pub const PROC_LIMIT: Duration = Duration::from_secs(20);

/// Returns whether `tool` is usable. When it is not: panics under CI,
/// otherwise prints why the test is skipped.
pub fn have(tool: &str, usable: bool) -> bool {
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
pub fn runs(program: &str, args: &[&str]) -> bool {
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

pub fn have_mosquitto_clients() -> bool {
    have(
        "mosquitto_pub/mosquitto_sub (package mosquitto-clients)",
        runs("mosquitto_sub", &["--help"]) && runs("mosquitto_pub", &["--help"]),
    )
}

pub fn have_paho() -> bool {
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
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

impl Proc {
    pub fn spawn(program: &str, args: &[String]) -> Proc {
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
    pub fn line(&mut self) -> String {
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
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
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
    pub fn success(self) -> Vec<String> {
        let name = self.name.clone();
        let (status, out, err) = self.finish();
        assert!(
            status.success(),
            "{name}: {status}; stdout {out:?}; stderr {err:?}"
        );
        out
    }

    /// SIGKILL: the process gets no chance to send DISCONNECT.
    pub fn kill(mut self) {
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
pub fn server(addr: SocketAddr) -> Vec<String> {
    vec![
        "-h".into(),
        addr.ip().to_string(),
        "-p".into(),
        addr.port().to_string(),
    ]
}

pub fn args(addr: SocketAddr, rest: &[&str]) -> Vec<String> {
    let mut v = server(addr);
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// `mosquitto_pub` run to completion (for QoS 1/2 that means acknowledged).
pub fn mosquitto_pub(addr: SocketAddr, rest: &[&str]) {
    Proc::spawn("mosquitto_pub", &args(addr, rest)).success();
}

/// A script of `tests/interop/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}
