//! The `midge` binary run as a user runs it, with a config file: its log
//! read line by line, its address taken from the "listening on" line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn midge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_midge"));
    c.env_remove("RUST_LOG");
    c
}

/// A running `midge` process; killed on drop.
pub struct Process {
    child: Child,
    log: mpsc::Receiver<String>,
    /// Lines logged before "listening on", for `wait_for`.
    early: std::collections::VecDeque<String>,
    pub addr: SocketAddr,
}

impl Process {
    pub fn start(args: &[&str]) -> Process {
        let mut cmd = midge();
        cmd.args(args);
        Process::spawn(cmd)
    }

    /// Runs `cmd` (midge, or a wrapper that runs it) until it is listening.
    pub fn spawn(mut cmd: Command) -> Process {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Process {
            child,
            log,
            early: Default::default(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let line = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match p.log.recv_timeout(left) {
                Ok(line) if line.contains("listening on ") => break line,
                Ok(line) => p.early.push_back(line),
                Err(_) => panic!("no \"listening on\" line"),
            }
        };
        p.addr = line.rsplit(' ').next().unwrap().parse().unwrap();
        // "running" comes once the signal handlers are in place: a SIGHUP
        // sent before would be lost.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match p.log.recv_timeout(left) {
                Ok(line) if line.contains("] midge ") && line.ends_with(" running") => {
                    p.early.push_back(line);
                    break;
                }
                Ok(line) => p.early.push_back(line),
                Err(_) => panic!("no \"midge ... running\" line"),
            }
        }
        p
    }

    /// Starts `midge -c FILE` with a config file of this text, listening
    /// on an ephemeral loopback port and open to anonymous clients.
    pub fn with_config(name: &str, text: &str) -> Process {
        let text = format!("listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 0\n{text}");
        let conf = temp_file(name, &text);
        Process::start(&["-c", conf.to_str().unwrap()])
    }

    /// The first log line containing `text`, within 10 s (also among the
    /// lines logged before "listening on").
    pub fn wait_for(&mut self, text: &str) -> String {
        while let Some(line) = self.early.pop_front() {
            if line.contains(text) {
                return line;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The exit status, once the process has exited (within WAIT).
    pub fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + super::WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "midge did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (`-TERM`, `-HUP`...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `cmd` to its exit (killed after `limit`, so a broker that starts
/// instead of refusing fails the test rather than hanging it): the exit
/// code and stderr.
pub fn exit_within(cmd: &mut Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    (status.and_then(|s| s.code()), err)
}
