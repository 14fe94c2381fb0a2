//! The systemd unit (`scripts/midge.service`) and the service habits of a
//! mosquitto user: the unit gives midge every directory its example config
//! writes to, `systemd-analyze verify` accepts it, midge runs as an
//! unprivileged user with only those directories writable (and keeps
//! reading a password file that root edits with midge-passwd), and a
//! `mosquitto.db` left in the store's directory is reported.

mod common;
use common::process::{temp_file, Process};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = include_str!("../scripts/midge.service");
const PI_CONF: &str = include_str!("../scripts/midge-pi.conf");
/// The user the unprivileged run uses (nobody).
const UID: u32 = 65534;

/// `KEY=value` of the unit's lines.
fn unit_value(key: &str) -> Option<&'static str> {
    UNIT.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The value of a commented-out `#KEY VALUE` line of the example config.
fn example(key: &str) -> &'static str {
    PI_CONF
        .lines()
        .find_map(|l| l.strip_prefix('#')?.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("midge-pi.conf has no '#{key} ...' line"))
}

fn present(tool: &str) -> bool {
    if Path::new(tool).exists() {
        true
    } else if std::env::var_os("CI").is_some() {
        panic!("{tool} is required under CI");
    } else {
        eprintln!("skipping: {tool} is not installed");
        false
    }
}

#[test]
fn the_unit_makes_every_path_of_the_example_config_writable() {
    assert_eq!(unit_value("ProtectSystem"), Some("strict"));
    let dirs = [
        ("persistence_location", "StateDirectory", "/var/lib/"),
        ("pid_file", "RuntimeDirectory", "/run/"),
        ("log_dest file", "LogsDirectory", "/var/log/"),
    ];
    for (option, directive, root) in dirs {
        let name = unit_value(directive).unwrap_or_else(|| panic!("no {directive}"));
        let path = example(option);
        assert!(
            path.starts_with(&format!("{root}{name}/")),
            "{option} {path} is outside {directive}={name} ({root}{name})"
        );
    }
    // The commented lines are valid once uncommented.
    let text: String = PI_CONF
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if ["persistence", "pid_file", "log_dest"]
                    .iter()
                    .any(|k| rest.starts_with(k)) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut c = midge::Config::default();
    midge::conffile::parse(&text, &mut c).unwrap();
    assert!(c.persistence);
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if !present("/usr/bin/systemd-analyze") {
        return;
    }
    // verify wants ExecStart's binary to exist: the one just built.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("midge.service");
    let text = UNIT.replace("/usr/local/bin/midge", env!("CARGO_BIN_EXE_midge"));
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

/// A directory tree like the unit's: (state, logs, run), owned by `UID`.
fn unit_dirs(root: &Path) -> [PathBuf; 3] {
    let _ = std::fs::remove_dir_all(root);
    let dirs = ["var/lib/midge", "var/log/midge", "run/midge"].map(|d| root.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
        std::os::unix::fs::chown(d, Some(UID), Some(UID)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    dirs
}

fn midge_passwd(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_midge-passwd"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CONNACK code for user/password.
fn connack(addr: std::net::SocketAddr, user: &str, password: &str) -> u8 {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
    for field in ["svc", user, password] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    let mut c = common::Raw::connect(addr);
    c.send(&common::packet(0x10, &body));
    let (_, ack) = c.read_reply("CONNACK").expect("CONNACK");
    ack[1]
}

#[test]
fn midge_runs_as_a_system_user_writing_only_the_units_directories() {
    let root_user = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root_user || !present("/usr/bin/setpriv") {
        eprintln!("skipping: needs root and setpriv to run midge as another user");
        return;
    }
    let root = std::env::temp_dir().join(format!("midge-service-{}", std::process::id()));
    let [state, logs, run] = unit_dirs(&root);
    // The password file as the README sets it up: root:midge 0640.
    let passwd = root.join("passwd");
    let p = passwd.to_str().unwrap();
    midge_passwd(&["-c", "-b", p, "alice", "a"]);
    std::os::unix::fs::chown(&passwd, Some(0), Some(UID)).unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (log, pid) = (logs.join("midge.log"), run.join("midge.pid"));
    let conf = temp_file(
        "service.conf",
        &format!(
            "listener 0 127.0.0.1\npassword_file {p}\npersistence true\n\
             persistence_location {}/\npid_file {}\nlog_dest stderr\nlog_dest file {}\n\
             sys_interval 0\n",
            state.display(),
            pid.display(),
            log.display()
        ),
    );
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", &UID.to_string(), "--regid", &UID.to_string()])
        .args(["--clear-groups", "--", env!("CARGO_BIN_EXE_midge"), "-c"])
        .arg(&conf)
        .env_remove("RUST_LOG");
    let mut midge = Process::spawn(cmd);
    assert_eq!(connack(midge.addr, "alice", "a"), 0);
    let pid_text = std::fs::read_to_string(&pid).unwrap();
    assert!(pid_text.trim().parse::<u32>().is_ok(), "{pid_text:?}");
    assert_eq!(
        std::fs::metadata(state.join("midge.log")).unwrap().uid(),
        UID
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("listening on"));
    // Root adds a user; the broker, not root, must still read the file.
    midge_passwd(&["-b", p, "bob", "b"]);
    midge.signal("-HUP");
    midge.wait_for("password and ACL files reloaded");
    assert_eq!(connack(midge.addr, "bob", "b"), 0);
    drop(midge);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_mosquitto_db_in_the_store_directory_is_reported_not_ignored() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mosquitto-db");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mosquitto.db"), b"\x00\xb5\x00mosquitto db").unwrap();
    let conf = format!(
        "persistence true\npersistence_location {}/\n",
        dir.display()
    );
    let mut p = Process::with_config("mosquitto-db.conf", &conf);
    let line = p.wait_for("mosquitto.db");
    assert!(line.contains("midge does not import it"), "{line}");
    assert!(line.contains("Switching from mosquitto"), "{line}");
}
