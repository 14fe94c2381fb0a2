//! The C API: the header matches the exported symbols, and the C example
//! (examples/c/gateway.c) builds against the static library, runs its own
//! poll() loop and exchanges messages both ways with a real MQTT client.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the gateway may take to exit once it said "bye" (valgrind's
/// leak check included).
const EXIT_LIMIT: Duration = Duration::from_secs(60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `midge_*` function names declared in the header / exported in capi.rs.
fn names(source: &str, marker: &str) -> Vec<String> {
    let mut out: Vec<String> = source
        .split(marker)
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            name.starts_with("midge_").then_some(name)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn header_declares_exactly_the_exported_functions() {
    let header = std::fs::read_to_string(root().join("include/midge.h")).unwrap();
    let capi = std::fs::read_to_string(root().join("src/capi.rs")).unwrap();
    // Declarations: "<type> midge_x(" or "*midge_x(" at the start of a name.
    let declared: Vec<String> = names(&header.replace('*', " "), " ")
        .into_iter()
        .filter(|n| header.contains(&format!("{n}(")))
        .collect();
    let exported = names(&capi, "extern \"C\" fn ");
    assert!(exported.len() >= 15, "exports found: {exported:?}");
    assert_eq!(declared, exported);
}

/// The static library cargo built for this test run: `cargo test` leaves
/// it in target/<profile>/deps as libmidge-<hash>.a (`cargo build` also
/// copies it to target/<profile>/libmidge.a); take the newest.
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap(); // target/<profile>/deps
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .chain(std::iter::once(deps.parent().unwrap().join("libmidge.a")))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("libmidge") && name.ends_with(".a")
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no libmidge*.a next to {}", exe.display()))
}

fn build_gateway(name: &str) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no C compiler ({cc}) in CI"
        );
        eprintln!("skipped: no C compiler ({cc})");
        return None;
    }
    let out =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let status = Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Werror", "-g", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/c/gateway.c"))
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "gateway.c failed to compile");
    Some(out)
}

struct Gateway {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// All of standard error, once the process has closed it.
    stderr: mpsc::Receiver<String>,
}

impl Gateway {
    fn start(cmd: &mut Command) -> (Gateway, u16) {
        let mut child = cmd
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Read all along, so a chatty process never blocks on a full pipe.
        let mut stderr = child.stderr.take().unwrap();
        let (tx, errors) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            let _ = tx.send(text);
        });
        let mut g = Gateway {
            child,
            lines,
            stderr: errors,
        };
        let first = g.line();
        let port = first
            .strip_prefix("listening on port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        (g, port)
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from the gateway")
    }

    fn type_line(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin: the gateway shuts the broker down and exits (within
    /// EXIT_LIMIT).
    fn finish(mut self) -> (bool, String) {
        drop(self.child.stdin.take());
        let bye = self.line();
        let deadline = Instant::now() + EXIT_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway still running {EXIT_LIMIT:?} after \"bye\""
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.recv_timeout(WAIT).unwrap_or_default();
        (status.success() && bye == "bye", stderr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Messages flow both ways between the C program and a TCP client.
fn exchange(g: &mut Gateway, port: u16) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (mut client, _) = Raw::mqtt(addr, "c-api-test", true);
    client.subscribe(1, &[("gateway/in", 1)]);
    g.type_line("hello from stdin");
    let m = client.read_publish();
    assert_eq!((m.topic.as_str(), m.qos), ("gateway/in", 1));
    assert_eq!(m.payload, b"hello from stdin");
    client.send(&[0x40, 2, (m.pkid >> 8) as u8, m.pkid as u8]);
    client.send(&publish_packet(
        "gateway/out",
        b"to the host",
        2,
        9,
        false,
        false,
    ));
    client.expect(&[0x50, 2, 0, 9]);
    assert_eq!(g.line(), "message gateway/out qos=2 retain=0: to the host");
    client.send(&[0x62, 2, 0, 9]);
    client.expect(&[0x70, 2, 0, 9]);
}

#[test]
fn c_gateway_example_exchanges_messages_both_ways() {
    let Some(gateway) = build_gateway("gateway-plain") else {
        return;
    };
    let (mut g, port) = Gateway::start(&mut Command::new(&gateway));
    exchange(&mut g, port);
    let (ok, stderr) = g.finish();
    assert!(ok, "gateway did not exit cleanly: {stderr}");
}

#[test]
fn c_gateway_under_valgrind_has_no_leaks_or_invalid_accesses() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "valgrind missing in CI");
        eprintln!("skipped: valgrind not installed");
        return;
    }
    let Some(gateway) = build_gateway("gateway-valgrind") else {
        return;
    };
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "-q",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=99",
    ])
    .arg(&gateway);
    let (mut g, port) = Gateway::start(&mut cmd);
    exchange(&mut g, port);
    let (ok, stderr) = g.finish();
    assert!(ok, "valgrind reported errors:\n{stderr}");
}
