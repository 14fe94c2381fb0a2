//! Start-up errors a mosquitto user meets when switching, through the
//! binary: each names the option, file or line at fault, and a start that
//! fails never says it is listening.

mod common;
use common::process::{exit_within, midge, temp_file, Process};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// Runs midge with this config text (after an open loopback listener);
/// it must exit with an error. Returns stderr.
fn failed_start(name: &str, text: &str) -> String {
    let text = format!("listener 0 127.0.0.1\nallow_anonymous true\n{text}");
    let conf = temp_file(name, &text);
    let (code, err) = exit_within(midge().arg("-c").arg(&conf), LIMIT);
    assert!(
        matches!(code, Some(c) if c != 0),
        "{name}: exit {code:?}: {err}"
    );
    assert!(!err.contains("listening on"), "{name}: {err}");
    err
}

#[test]
fn a_pid_file_in_a_missing_directory_is_named() {
    let err = failed_start("pid.conf", "pid_file /nonexistent-midge/run/midge.pid\n");
    let want = "pid_file /nonexistent-midge/run/midge.pid: directory /nonexistent-midge/run does not exist";
    assert!(err.contains(want), "{err}");
}

#[test]
fn a_persistence_location_that_is_a_file_is_named() {
    let file = temp_file("not-a-dir", "x");
    let err = failed_start(
        "persistence-file.conf",
        &format!(
            "persistence true\npersistence_location {}\n",
            file.display()
        ),
    );
    let want = format!("persistence in {}: not a directory", file.display());
    assert!(err.contains(&want), "{err}");
}

#[test]
fn an_option_without_its_value_names_its_line() {
    let err = failed_start("empty-acl.conf", "# rules\nacl_file\n");
    assert!(err.contains("line 4: acl_file needs a value"), "{err}");
}

#[test]
fn mosquitto_options_midge_lacks_are_not_called_unknown_as_if_misspelt() {
    let err = failed_start("tls.conf", "certfile /etc/midge/cert.pem\n");
    let want = "line 3: unknown option 'certfile': mosquitto option not supported by midge (TLS";
    assert!(err.contains(want), "{err}");
    let err = failed_start("plugin.conf", "plugin_opt_db /x\n");
    assert!(err.contains("not supported by midge (plugins"), "{err}");
}

#[test]
fn an_empty_acl_file_is_reported() {
    let acl = temp_file("empty.acl", "# nothing yet\n");
    let mut p = Process::with_config(
        "empty-acl-file.conf",
        &format!("acl_file {}\n", acl.display()),
    );
    let line = p.wait_for("has no rules");
    assert!(
        line.contains("every publish and subscription is refused"),
        "{line}"
    );
}

#[test]
fn bind_takes_a_host_name_on_the_command_line_too() {
    let p = Process::start(&["-b", "localhost", "-p", "0"]);
    assert!(p.addr.ip().is_loopback(), "{}", p.addr);
}
