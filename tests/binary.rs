//! The `midge` binary as a user runs it: options, config files, `$SYS`,
//! signals.

mod common;
use common::process::{exit_within, midge, temp_file, Process};
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn help_and_version() {
    let out = midge().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--port",
        "--bind",
        "--config",
        "--max-queued",
        "--queue-full",
        "--password-file",
    ] {
        assert!(help.contains(opt), "help lacks {opt}");
    }
    let out = midge().arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("midge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_options_and_config_lines_are_errors_naming_the_line() {
    let out = midge().args(["--max-inflight", "70000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let conf = temp_file("bad.conf", "# comment\nport 1883\nbridge_cafile /x\n");
    let out = midge().arg("-c").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 3: unknown option 'bridge_cafile'"),
        "{err}"
    );
}

#[test]
fn config_file_is_applied_and_the_command_line_overrides_it() {
    let conf = temp_file(
        "good.conf",
        "max_connections 1\nlistener 1 127.0.0.1\nallow_anonymous true\nautosave_interval 60\nsys_interval 0\n",
    );
    // The file's listener port is replaced by -p 0 (a free port).
    let mut p = Process::start(&["-c", conf.to_str().unwrap(), "-p", "0"]);
    let (_first, _) = Raw::mqtt(p.addr, "one", true);
    // max_connections 1 from the file: a second connection is refused.
    let mut second = Raw::connect(p.addr);
    second.expect_closed();
    p.wait_for("max_connections (1) reached");
}

#[test]
fn sys_topics_report_values_that_move_with_traffic() {
    let p = Process::start(&["-p", "0", "--sys-interval", "1"]);
    let (mut watcher, _) = Raw::mqtt(p.addr, "watcher", true);
    watcher.send(&subscribe_packet(1, &[("$SYS/broker/#", 0)]));
    let mut received: Vec<u64> = Vec::new();
    let mut version = String::new();
    let (mut publisher, _) = Raw::mqtt(p.addr, "publisher", true);
    // Read $SYS updates (bounded: 60 packets, ~5 intervals) while traffic
    // flows, until messages/received has grown past the traffic sent.
    for round in 0..60 {
        let (first, body) = watcher.read_packet().expect("packet");
        if first == 0x90 {
            continue; // SUBACK
        }
        let m = parse_publish(first, &body);
        let value = String::from_utf8(m.payload).unwrap();
        match m.topic.as_str() {
            "$SYS/broker/version" => version = value,
            "$SYS/broker/messages/received" => received.push(value.parse().unwrap()),
            "$SYS/broker/clients/connected" => assert!(value.parse::<u32>().unwrap() <= 2),
            _ => {}
        }
        if round % 10 == 0 {
            for i in 0..5u16 {
                publisher.send(&publish_packet("load", b"x", 1, i + 1, false, false));
            }
        }
        if received.last().is_some_and(|&n| n >= 10) {
            break;
        }
    }
    assert!(version.starts_with("midge version"), "{version:?}");
    assert!(
        received.len() >= 2,
        "messages/received never updated: {received:?}"
    );
    assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
}

/// Drops are logged once per burst, with the session's count (README
/// "Overload without silent loss"): a full offline queue, and QoS 0
/// messages to a client that does not read.
#[test]
fn drops_are_logged_with_their_count() {
    let mut p = Process::start(&[
        "-p",
        "0",
        "--max-queued",
        "1",
        "--max-outgoing-bytes",
        "4096",
    ]);
    let (mut off, _) = Raw::mqtt(p.addr, "offline", false);
    off.subscribe(1, &[("q", 1)]);
    off.disconnect();
    let (mut publ, _) = Raw::mqtt(p.addr, "publisher", true);
    for i in 1..=3 {
        publ.publish_done("q", b"m", 1, i); // 1 queued, 2 dropped
    }
    p.wait_for("offline: queue full (1 messages): dropping messages (1 so far)");
    let (mut slow, _) = Raw::mqtt(p.addr, "slow", true);
    slow.subscribe(1, &[("z", 0)]);
    // 32 MiB: far more than the socket buffers hold for a reader that
    // does not read.
    let message = publish_packet("z", &[b'z'; 32 * 1024], 0, 0, false, false);
    for _ in 0..1024 {
        publ.send(&message);
    }
    publ.ping();
    p.wait_for("slow: not reading fast enough: dropping QoS 0 messages");
}

#[test]
fn sigterm_stops_cleanly_and_publishes_wills() {
    let mut p = Process::start(&["-p", "0"]);
    let (mut observer, _) = Raw::mqtt(p.addr, "observer", true);
    observer.subscribe(1, &[("wills/#", 1)]);
    let mut dev = Raw::connect(p.addr);
    dev.send(&connect_with_will(
        "dev",
        true,
        60,
        "wills/dev",
        b"gone",
        1,
        false,
    ));
    dev.expect(&[0x20, 2, 0, 0]);
    p.signal("-TERM");
    let will = observer.read_publish();
    assert_eq!(will.payload, b"gone");
    observer.expect_closed();
    p.wait_for("broker stopped");
    let status = p.exit_status();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_reloads_the_acl_and_rechecks_subscriptions_without_disconnecting() {
    let acl = temp_file("reload.acl", "topic readwrite #\n");
    let conf = temp_file(
        "reload.conf",
        &format!("acl_file {}\nsys_interval 0\n", acl.display()),
    );
    let mut p = Process::start(&["-c", conf.to_str().unwrap(), "-p", "0"]);
    let (mut sub, _) = Raw::mqtt(p.addr, "sub", true);
    sub.subscribe(1, &[("secret/#", 0), ("open/#", 0)]);
    // New rules: secret/# is no longer readable.
    std::fs::write(&acl, "topic readwrite open/#\n").unwrap();
    p.signal("-HUP");
    p.wait_for("password and ACL files reloaded");
    p.wait_for("subscription \"secret/#\" removed");
    // Still connected; the revoked subscription delivers nothing, the
    // other one works, and new subscriptions follow the new file.
    let (mut publ, _) = Raw::mqtt(p.addr, "pub", true);
    publ.send(&publish_packet("open/a", b"1", 0, 0, false, false));
    publ.send(&publish_packet("secret/a", b"2", 0, 0, false, false));
    publ.send(&publish_packet("open/a", b"3", 0, 0, false, false));
    assert_eq!(sub.read_publish().payload, b"1");
    assert_eq!(sub.read_publish().payload, b"3");
    sub.send(&subscribe_packet(2, &[("secret/#", 0)]));
    assert_eq!(sub.read_reply("SUBACK"), Some((0x90, vec![0, 2, 0x80])));
    // A broken file on reload keeps the previous rules.
    std::fs::write(&acl, "topic sometimes x\n").unwrap();
    p.signal("-HUP");
    p.wait_for("reload failed, keeping the previous files");
    sub.ping();
}

/// The README's first command, `cargo run --release`, needs to know which
/// of the crate's binaries to run (there are three): the manifest names
/// the broker.
#[test]
fn cargo_run_starts_the_broker() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    assert!(
        manifest
            .lines()
            .any(|l| l.trim() == r#"default-run = "midge""#),
        "Cargo.toml must set default-run = \"midge\""
    );
}

/// The CONNACK return code an anonymous MQTT 3.1.1 client gets.
fn anonymous_connack(addr: SocketAddr) -> u8 {
    let mut c = Raw::connect(addr);
    c.send(&connect_packet("anonymous", true, 60));
    let (first, body) = c.read_packet().expect("CONNACK");
    assert_eq!((first, body.len()), (0x20, 2), "CONNACK");
    body[1]
}

/// mosquitto 2: a config file that defines a listener (`listener`, or
/// `port`) refuses anonymous clients unless it says `allow_anonymous true`;
/// a file without one keeps the local-only default (anonymous allowed).
#[test]
fn a_config_file_listener_refuses_anonymous_clients_unless_allowed() {
    for (name, text, code) in [
        (
            "anon-listener.conf",
            "listener 0 127.0.0.1\nsys_interval 0\n",
            5,
        ),
        ("anon-port.conf", "port 0\nsys_interval 0\n", 5),
        (
            "anon-allowed.conf",
            "listener 0 127.0.0.1\nallow_anonymous true\n",
            0,
        ),
    ] {
        let conf = temp_file(name, text);
        let p = Process::start(&["-c", conf.to_str().unwrap()]);
        assert_eq!(anonymous_connack(p.addr), code, "{text}");
    }
    // No listener in the file: local only, anonymous allowed.
    let conf = temp_file("anon-local.conf", "sys_interval 0\n");
    let p = Process::start(&["-c", conf.to_str().unwrap(), "-p", "0"]);
    assert_eq!(anonymous_connack(p.addr), 0);
}

/// Settings per listener do not exist yet: `per_listener_settings true`
/// would make one listener's security settings everyone's, so it is an
/// error naming the file and line; `false` (the default) is accepted.
#[test]
fn per_listener_settings_true_is_refused_naming_the_file_and_line() {
    let conf = temp_file(
        "per-listener.conf",
        "listener 0 127.0.0.1\nper_listener_settings true\nallow_anonymous true\n",
    );
    let (code, err) = exit_within(midge().arg("-c").arg(&conf), Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    let want = format!(
        "{}: line 2: not supported yet: per_listener_settings true",
        conf.display()
    );
    assert!(err.contains(&want), "{err}");
    let conf = temp_file(
        "global.conf",
        "per_listener_settings false\nlistener 0 127.0.0.1\nallow_anonymous true\n",
    );
    let p = Process::start(&["-c", conf.to_str().unwrap()]);
    assert_eq!(anonymous_connack(p.addr), 0);
}

/// After a `listener` line, `max_connections` is that listener's own limit
/// (as in mosquitto); the other listener is not limited by it.
#[test]
fn max_connections_in_a_listener_section_limits_that_listener() {
    let conf = temp_file(
        "two-listeners.conf",
        "listener 0 127.0.0.1\nmax_connections 1\nlistener 0 127.0.0.1\nallow_anonymous true\n",
    );
    let mut p = Process::start(&["-c", conf.to_str().unwrap()]);
    let line = p.wait_for("listening on ");
    let other: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let (_first, _) = Raw::mqtt(p.addr, "one", true);
    let mut refused = Raw::connect(p.addr);
    refused.expect_closed();
    p.wait_for("max_connections (1) reached");
    let (_two, _) = Raw::mqtt(other, "two", true);
    let (_three, _) = Raw::mqtt(other, "three", true);
}
