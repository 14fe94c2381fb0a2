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

/// A child's standard error, line by line: what the harnesses of the
/// binary (this one and `persistence::Midge`) wait on.
pub struct Log {
    rx: mpsc::Receiver<String>,
    /// Lines read while waiting for another, for `wait_for`.
    early: std::collections::VecDeque<String>,
    /// Every line received so far, printed if the test fails.
    seen: Vec<String>,
}

impl Log {
    /// Reads `child`'s standard error (piped) in a thread.
    pub fn of(child: &mut Child) -> Log {
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Log {
            rx,
            early: Default::default(),
            seen: Vec::new(),
        }
    }

    /// The next line matching `want` within 10 s; the others are kept for
    /// `wait_for`.
    fn keep_until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if want(&line) => return line,
                Some(line) => self.early.push_back(line),
                None => panic!("no {what} line"),
            }
        }
    }

    /// The next line within `wait`, remembered for [`Log::print_all`].
    pub fn next_line(&mut self, wait: Duration) -> Option<String> {
        let line = self.rx.recv_timeout(wait).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Prints every line logged so far (for a failing test's output).
    pub fn print_all(&mut self) {
        while self.next_line(Duration::from_millis(200)).is_some() {}
        for line in &self.seen {
            eprintln!("  | {line}");
        }
    }

    /// Waits until the broker listens and its signal handlers are in place
    /// ("running": a SIGHUP sent before would be lost); its address.
    pub fn until_running(&mut self) -> SocketAddr {
        let line = self.keep_until("\"listening on\"", |l| l.contains("listening on "));
        let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
        let running = |l: &str| l.contains("] midge ") && l.ends_with(" running");
        let line = self.keep_until("\"midge ... running\"", running);
        self.early.push_back(line);
        addr
    }

    /// The first line containing `text`, within 10 s (also among the
    /// lines kept while waiting for others).
    pub fn wait_for(&mut self, text: &str) -> String {
        while let Some(line) = self.early.pop_front() {
            if line.contains(text) {
                return line;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if line.contains(text) => return line,
                Some(_) => {}
                None => panic!("no log line with {text:?}"),
            }
        }
    }
}

/// A running `midge` process; killed on drop.
pub struct Process {
    child: Child,
    log: Log,
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
        let mut log = Log::of(&mut child);
        let addr = log.until_running();
        Process { child, log, addr }
    }

    /// Starts `midge -c FILE` with a config file of this text, listening
    /// on an ephemeral loopback port and open to anonymous clients.
    pub fn with_config(name: &str, text: &str) -> Process {
        let text = format!("listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 0\n{text}");
        let conf = temp_file(name, &text);
        Process::start(&["-c", conf.to_str().unwrap()])
    }

    /// The first log line containing `text`, within 10 s (also among the
    /// lines logged before "running").
    pub fn wait_for(&mut self, text: &str) -> String {
        self.log.wait_for(text)
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
        // A failing test shows how the broker ended and what it logged:
        // the panic message alone cannot tell a crash from a refusal.
        if std::thread::panicking() {
            let status = self.child.try_wait();
            eprintln!("midge {}: {status:?}", self.addr);
            self.log.print_all();
        }
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
