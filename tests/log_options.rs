//! mosquitto's logging options through the binary: several `log_dest`
//! lines all receive the log, `log_dest none` silences what came before it,
//! `log_timestamp` and `log_timestamp_format` shape each line,
//! `log_facility` is checked.

mod common;
use common::process::{midge, temp_file, Process};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn log_path(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// The file's text once it contains `text` (within 10 s).
fn wait_in_file(path: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(path).unwrap_or_default();
        if got.contains(text) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never in {path:?}: {got}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_log_dest_line_gets_the_log() {
    let (a, b) = (log_path("dest-a.log"), log_path("dest-b.log"));
    let conf = format!(
        "log_dest file {}\nlog_dest stderr\nlog_dest file {}\n",
        a.display(),
        b.display()
    );
    let mut p = Process::with_config("dests.conf", &conf);
    let (mut c, _) = common::Raw::mqtt(p.addr, "logged-client", true);
    c.ping();
    for file in [&a, &b] {
        let text = wait_in_file(file, "logged-client");
        assert!(text.contains("listening on"), "{text}");
    }
    drop(c);
    p.wait_for("(logged-client): closed");
}

/// Runs midge with this config until `file` shows it is listening, then
/// stops it; returns what it wrote to stderr.
fn stderr_of_run(conf_name: &str, text: &str, file: &Path) -> String {
    let conf = temp_file(conf_name, text);
    let mut child = midge()
        .args(["-c", conf.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_in_file(file, "listening on");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn log_dest_none_drops_the_destinations_before_it() {
    let file = log_path("after-none.log");
    let text = format!(
        "listener 0 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_dest none\nlog_dest file {}\n",
        file.display()
    );
    let stderr = stderr_of_run("none.conf", &text, &file);
    assert_eq!(stderr, "", "nothing on stderr after log_dest none");
}

#[test]
fn log_timestamp_false_and_log_timestamp_format() {
    let mut p = Process::with_config("no-stamp.conf", "log_timestamp false\n");
    let line = p.wait_for("running");
    assert!(line.starts_with("[INFO  midge]"), "{line}");
    let conf = "log_timestamp_format %Y/%m/%d %H-%M-%S\n";
    let mut p = Process::with_config("stamp-format.conf", conf);
    let line = p.wait_for("running");
    let stamp = line.trim_start_matches('[').split(" INFO").next().unwrap();
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { 'n' } else { c })
        .collect();
    assert_eq!(shape, "nnnn/nn/nn nn-nn-nn", "{line}");
}

#[test]
fn bad_log_options_name_their_line() {
    for (text, want) in [
        ("log_facility 8\n", "line 1: log_facility: 0 to 7"),
        ("log_timestamp maybe\n", "line 1: log_timestamp"),
        (
            "log_timestamp_format %Y %\n",
            "line 1: log_timestamp_format",
        ),
        ("log_dest file\n", "line 1: log_dest: cannot use 'file'"),
    ] {
        let conf = temp_file("bad-log.conf", text);
        let out = midge()
            .args(["-c", conf.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{text}: {err}");
    }
    // log_facility 5 is accepted (local5; it shows with log_dest syslog).
    let mut p = Process::with_config("facility.conf", "log_facility 5\n");
    p.wait_for("running");
}

/// logrotate's habit with mosquitto: rename the file, then SIGHUP; the
/// log goes on in a new file at the configured path.
#[test]
fn sighup_reopens_a_rotated_log_file() {
    let (file, rotated) = (log_path("rotate.log"), log_path("rotate.log.1"));
    let conf = format!("log_dest stderr\nlog_dest file {}\n", file.display());
    let mut p = Process::with_config("rotate.conf", &conf);
    wait_in_file(&file, "listening on");
    std::fs::rename(&file, &rotated).unwrap();
    p.signal("-HUP");
    p.wait_for("SIGHUP received");
    let text = wait_in_file(&file, "SIGHUP received");
    assert!(!text.contains("listening on"), "a new file: {text}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        !old.contains("SIGHUP"),
        "nothing more in the rotated file: {old}"
    );
}

/// mosquitto's `log_type` picks types one by one: warnings and
/// information without errors leaves the errors out.
#[test]
fn log_type_lines_pick_levels_one_by_one() {
    let file = log_path("types.log");
    let acl = temp_file("types.acl", "topic readwrite #\n");
    let conf = format!(
        "log_dest stderr\nlog_dest file {}\nlog_type warning\nlog_type information\n\
         acl_file {}\nautosave_interval 60\n",
        file.display(),
        acl.display()
    );
    let mut p = Process::with_config("types.conf", &conf);
    // An error: the ACL file breaks and a reload fails.
    std::fs::write(&acl, "topic sometimes x\n").unwrap();
    p.signal("-HUP");
    p.wait_for("SIGHUP received");
    let (mut c, _) = common::Raw::mqtt(p.addr, "after-reload", true);
    c.ping();
    let text = wait_in_file(&file, "after-reload");
    assert!(
        text.contains("WARN") && text.contains("autosave_interval"),
        "{text}"
    );
    assert!(
        !text.contains("reload failed"),
        "an error was logged: {text}"
    );
}
