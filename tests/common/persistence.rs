//! Helpers of the persistence tests (persistence_restart.rs,
//! persistence_kill.rs, persistence_store.rs): store directories, brokers
//! with a store, the `midge` binary, and reading retained messages and
//! store records back.

use super::*;
use midge::store::Fsync;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;

/// A fresh, empty store directory for one test.
pub fn store_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("midge.log")
}

/// An in-process broker storing in `dir` (`fsync always`), with other
/// settings adjusted.
pub fn start_cfg(dir: &Path, adjust: impl FnOnce(&mut midge::Config)) -> TestBroker {
    let dir = dir.to_path_buf();
    TestBroker::start_with(move |c| {
        c.persistence = true;
        c.persistence_location = Some(dir);
        c.fsync = Fsync::Always;
        adjust(c);
    })
}

pub fn start(dir: &Path) -> TestBroker {
    start_cfg(dir, |_| {})
}

pub fn ack(kind: u8, pkid: u16) -> Vec<u8> {
    let id = pkid.to_be_bytes();
    vec![kind, 2, id[0], id[1]]
}

/// DISCONNECT, then waits until the broker has closed the connection (so
/// the session is offline before anything else happens).
pub fn disconnect(c: Raw) {
    c.disconnect();
}

/// Publishes and completes the acknowledgement flow of its QoS.
pub fn publish(c: &mut Raw, topic: &str, payload: &[u8], qos: u8, pkid: u16, retain: bool) {
    c.send(&publish_packet(topic, payload, qos, pkid, retain, false));
    match qos {
        0 => c.ping(),
        1 => c.expect(&ack(PUBACK, pkid)),
        _ => {
            c.expect(&ack(PUBREC, pkid));
            c.send(&ack(PUBREL, pkid));
            c.expect(&ack(PUBCOMP, pkid));
        }
    }
}

/// Reads everything the broker has for this client, acknowledging as it
/// goes (PUBACK; PUBREC, then PUBCOMP for the PUBREL), until a PINGREQ
/// round trip brings nothing else: every acknowledgement sent before that
/// PINGREQ was processed, so nothing more is queued. Returns the PUBLISHes
/// in arrival order.
pub fn drain(c: &mut Raw) -> Vec<Pub> {
    c.drain()
}

/// Every retained message (topic -> payload, QoS) as a new subscriber to
/// `#` sees it.
pub fn retained_messages(addr: SocketAddr) -> BTreeMap<String, (Vec<u8>, u8)> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!("retained-reader-{}", N.fetch_add(1, Ordering::SeqCst));
    let (mut c, _) = Raw::mqtt(addr, &id, true);
    c.subscribe(1, &[("#", 2)]);
    let mut out = BTreeMap::new();
    for p in drain(&mut c) {
        assert!(p.retain, "{} arrived without RETAIN", p.topic);
        let topic = p.topic.clone();
        assert!(
            out.insert(p.topic, (p.payload, p.qos)).is_none(),
            "retained {topic} twice"
        );
    }
    disconnect(c);
    out
}

/// Asserts two sets of retained messages are equal, naming only the
/// differences (payloads shortened).
#[track_caller]
pub fn assert_retained(
    got: &BTreeMap<String, (Vec<u8>, u8)>,
    want: &BTreeMap<String, (Vec<u8>, u8)>,
    what: &str,
) {
    let short = |v: Option<&(Vec<u8>, u8)>| {
        v.map(|(p, q)| {
            let text = String::from_utf8_lossy(&p[..p.len().min(24)]).into_owned();
            format!("{text:?} ({} bytes) QoS {q}", p.len())
        })
    };
    let mut diff = Vec::new();
    for topic in got.keys().chain(want.keys()) {
        let (g, w) = (got.get(topic), want.get(topic));
        if g != w
            && !diff
                .iter()
                .any(|d: &String| d.starts_with(&format!("{topic}:")))
        {
            diff.push(format!("{topic}: got {:?}, want {:?}", short(g), short(w)));
        }
    }
    assert!(
        diff.is_empty(),
        "{what}: retained messages differ ({} of {} wanted):\n{}",
        diff.len(),
        want.len(),
        diff[..diff.len().min(10)].join("\n")
    );
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A `midge` process; killed (SIGKILL) on drop.
pub struct Midge {
    child: Child,
    log: super::process::Log,
    pub addr: SocketAddr,
}

impl Midge {
    pub fn start(dir: &Path, extra: &[&str]) -> Midge {
        Midge::spawn(Command::new(env!("CARGO_BIN_EXE_midge")), dir, extra)
    }

    /// With a file size limit (RLIMIT_FSIZE) of `bytes`, which
    /// [`Midge::lift_file_size_limit`] can lift (util-linux `prlimit`).
    pub fn start_limited(dir: &Path, extra: &[&str], bytes: u64) -> Midge {
        let mut prlimit = Command::new("prlimit");
        prlimit
            .arg(format!("--fsize={bytes}:unlimited"))
            .arg(env!("CARGO_BIN_EXE_midge"));
        Midge::spawn(prlimit, dir, extra)
    }

    pub fn lift_file_size_limit(&self) {
        let ok = Command::new("prlimit")
            .args(["--pid", &self.child.id().to_string(), "--fsize=unlimited"])
            .status()
            .expect("prlimit runs")
            .success();
        assert!(ok, "prlimit --pid");
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Every log line up to the next one containing `text` (bounded wait).
    pub fn lines_until(&mut self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.next_line(left) {
                Some(line) => {
                    let done = line.contains(text);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                None => panic!("no log line with {text:?}"),
            }
        }
    }

    fn spawn(mut command: Command, dir: &Path, extra: &[&str]) -> Midge {
        let mut child = command
            .env_remove("RUST_LOG")
            .arg("--persistence")
            .arg(dir)
            .args(["-p", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("midge starts");
        let mut log = super::process::Log::of(&mut child);
        let addr = log.until_running();
        Midge { child, log, addr }
    }

    /// The next log line containing `text` (bounded wait; also among the
    /// lines logged before the broker ran).
    pub fn wait_for(&mut self, text: &str) -> String {
        self.log.wait_for(text)
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits (bounded) for a clean exit.
    pub fn terminate(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "midge exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "midge did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Midge {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("midge {}: {:?}", self.addr, self.child.try_wait());
            self.log.print_all();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
