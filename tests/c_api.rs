//! The C API: the header matches the exported symbols and compiles as C89,
//! C99 and C++; the C example (examples/c/gateway.c) builds against the
//! static library, runs its own poll() loop and exchanges messages both
//! ways with a real MQTT client; the C test programs in tests/c (built the
//! same way) check the fixed bugs, edge- and level-triggered epoll hosts
//! and every callback, one of them under valgrind.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Held by the tests that load the machine most (valgrind, 1,100 clients),
/// so they run one at a time and the others' reply deadlines still hold.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let capi: String = std::fs::read_dir(root().join("src/capi"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    // Declarations: "<type> midge_x(" or "*midge_x(" at the start of a name.
    let declared: Vec<String> = names(&header.replace('*', " "), " ")
        .into_iter()
        .filter(|n| header.contains(&format!("{n}(")))
        .collect();
    let exported = names(&capi, "extern \"C\" fn ");
    assert!(exported.len() >= 30, "exports found: {exported:?}");
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

/// The C compiler, or None (test skipped; a failure under CI=1).
fn compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no C compiler ({cc}) in CI"
        );
        eprintln!("skipped: no C compiler ({cc})");
        return None;
    }
    Some(cc)
}

/// Compiles `source` (relative to the crate) against the static library.
fn build_c(source: &str, name: &str) -> Option<PathBuf> {
    let cc = compiler()?;
    let out =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let status = Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Werror", "-g", "-pthread", "-I"])
        .arg(root().join("include"))
        .arg(root().join(source))
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{source} failed to compile");
    Some(out)
}

fn build_gateway(name: &str) -> Option<PathBuf> {
    build_c("examples/c/gateway.c", name)
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
    let _heavy = heavy();
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

fn valgrind_installed() -> bool {
    if Command::new("valgrind").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "valgrind missing in CI");
    eprintln!("skipped: valgrind not installed");
    false
}

/// Runs a C test program to its end (killed after `limit`); panics with
/// its output unless it exits with 0.
fn run_c(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(s) if s.success() => out,
        Some(s) => panic!("{cmd:?} failed ({s}):\n{out}\n{err}"),
        None => panic!("{cmd:?} still running after {limit:?}:\n{out}\n{err}"),
    }
}

/// How long a C test program may run (valgrind included).
const C_LIMIT: Duration = Duration::from_secs(120);

/// The bug checks of tests/c/bugs.c, which use only calls that existed
/// before the fixes.
fn bug_check(check: &str) {
    let Some(bugs) = build_c("tests/c/bugs.c", &format!("bugs-{check}")) else {
        return;
    };
    let out = run_c(Command::new(&bugs).arg(check), C_LIMIT);
    assert_eq!(out.trim(), format!("ok {check}"));
}

#[test]
fn last_error_is_cleared_by_a_call_that_succeeds() {
    bug_check("last_error");
}

#[test]
fn an_empty_payload_comes_with_a_readable_pointer() {
    bug_check("empty_payload");
}

#[test]
fn next_timeout_inside_a_callback_is_zero_not_no_deadline() {
    bug_check("timeout_in_callback");
}

#[test]
fn after_shutdown_new_clients_are_refused() {
    bug_check("shutdown_refuses");
}

#[test]
fn a_second_thread_is_told_to_use_a_handle_not_that_it_is_a_callback() {
    bug_check("other_thread");
}

fn flood(mode: &str) {
    let _heavy = heavy();
    let Some(flood) = build_c("tests/c/flood.c", &format!("flood-{mode}")) else {
        return;
    };
    let out = run_c(Command::new(&flood).arg(mode), C_LIMIT);
    assert_eq!(out.trim(), "ok 1100 messages");
}

/// More sockets ready at once than one `midge_poll` handles (1,024): an
/// edge-triggered host hears of the rest only through
/// `midge_next_timeout_ms` (0).
#[test]
fn edge_triggered_epoll_host_gets_every_message_of_1100_clients() {
    flood("et");
}

#[test]
fn level_triggered_epoll_host_gets_every_message_of_1100_clients() {
    flood("lt");
}

#[test]
fn header_compiles_as_c89_c99_and_cpp() {
    let Some(cc) = compiler() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let source = dir.join(format!("header-{}.c", std::process::id()));
    std::fs::write(
        &source,
        "#include \"midge.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    let mut modes = vec![(cc.clone(), "-std=c89"), (cc, "-std=c99")];
    if Command::new("c++").arg("--version").output().is_ok() {
        modes.push(("c++".into(), "-std=c++98"));
    }
    for (compiler, std) in modes {
        let mut cmd = Command::new(&compiler);
        if compiler == "c++" {
            cmd.args(["-x", "c++"]);
        }
        let status = cmd
            .args([
                std,
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
                "-I",
            ])
            .arg(root().join("include"))
            .arg(&source)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "midge.h does not compile with {compiler} {std}"
        );
    }
}

fn features(valgrind: bool) {
    let _heavy = valgrind.then(heavy);
    let Some(program) = build_c("tests/c/features.c", "features") else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("features-{}-{valgrind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = if valgrind {
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "-q",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=1",
        ])
        .arg(&program);
        cmd
    } else {
        Command::new(&program)
    };
    let out = run_c(cmd.arg(&dir), C_LIMIT);
    assert!(out.ends_with("ok all\n"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every callback and call of the API, from a C host.
#[test]
fn c_host_uses_the_whole_api() {
    features(false);
}

#[test]
fn c_host_using_the_whole_api_under_valgrind_has_no_leaks_or_errors() {
    if valgrind_installed() {
        features(true);
    }
}

/// CONNECT with a user name and a password, Keep Alive 60.
fn connect_login(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
    for field in [client_id, user, password] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    packet(0x10, &body)
}

/// examples/c/epoll_auth.c: an edge-triggered epoll host whose callbacks
/// decide logins and topics and report who comes and goes.
#[test]
fn c_epoll_auth_example_decides_logins_and_topics() {
    let Some(program) = build_c("examples/c/epoll_auth.c", "epoll-auth") else {
        return;
    };
    let (mut g, port) = Gateway::start(&mut Command::new(&program));
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut wrong = Raw::connect(addr);
    wrong.send(&connect_login("w", "sensor", "guess"));
    assert_eq!(wrong.read_reply("CONNACK"), Some((0x20, vec![0, 4])));
    let mut c = Raw::connect(addr);
    c.send(&connect_login("s1", "sensor", "secret"));
    assert_eq!(c.read_reply("CONNACK"), Some((0x20, vec![0, 0])));
    let line = g.line();
    assert!(
        line.starts_with("connected s1 (sensor) from 127.0.0.1:"),
        "{line}"
    );
    c.publish_done("elsewhere", b"dropped", 1, 1); // acknowledged, dropped
    c.publish_done("sensors/t", b"21", 1, 2);
    assert_eq!(g.line(), "message sensors/t from s1: 21");
    c.send(&subscribe_packet(3, &[("admin/#", 0)]));
    assert_eq!(c.read_reply("SUBACK"), Some((0x90, vec![0, 3, 0x80])));
    c.disconnect();
    assert_eq!(g.line(), "disconnected s1: client sent DISCONNECT");
    let (ok, stderr) = g.finish();
    assert!(ok, "epoll_auth did not exit cleanly: {stderr}");
}

/// scripts/install-lib.sh installs header, libraries (the shared one under
/// its SONAME) and a pkg-config file; the gateway built with
/// `pkg-config --cflags --libs midge` runs against the shared library.
#[test]
fn installed_shared_library_works_through_pkg_config() {
    let Some(cc) = compiler() else {
        return;
    };
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "pkg-config missing in CI");
        eprintln!("skipped: pkg-config not installed");
        return;
    }
    let build = static_lib().parent().unwrap().to_path_buf();
    let prefix =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    let status = Command::new(root().join("scripts/install-lib.sh"))
        .arg(&prefix)
        .env("BUILD_DIR", &build)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "install-lib.sh failed");
    let pkg = |args: &[&str]| {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("midge")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .output()
            .unwrap();
        assert!(out.status.success(), "pkg-config {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let flags = pkg(&["--cflags", "--libs"]);
    let gateway = prefix.join("gateway");
    let status = Command::new(&cc)
        .args(["-Wall", "-Werror"])
        .arg(root().join("examples/c/gateway.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&gateway)
        .status()
        .unwrap();
    assert!(status.success(), "gateway.c does not build with pkg-config");
    let needed = Command::new("readelf")
        .arg("-d")
        .arg(&gateway)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        needed.contains("[libmidge.so.0."),
        "the gateway does not need libmidge by its SONAME:\n{needed}"
    );
    let mut cmd = Command::new(&gateway);
    cmd.env("LD_LIBRARY_PATH", prefix.join("lib"));
    let (mut g, port) = Gateway::start(&mut cmd);
    exchange(&mut g, port);
    let (ok, stderr) = g.finish();
    assert!(ok, "gateway did not exit cleanly: {stderr}");
    let _ = std::fs::remove_dir_all(&prefix);
}

/// MQTT 5 from a C host: properties in both directions and an enhanced
/// authentication method.
#[test]
fn c_host_reads_and_sets_properties_and_runs_an_auth_exchange() {
    let Some(program) = build_c("tests/c/mqtt5.c", "mqtt5") else {
        return;
    };
    let out = run_c(&mut Command::new(&program), C_LIMIT);
    assert!(out.ends_with("ok all\n"), "{out}");
}
