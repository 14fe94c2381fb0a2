//! Password files as a mosquitto user keeps them: `midge-passwd` keeps an
//! existing file's owner, group and mode (so a broker running as its own
//! user can still read it after an edit), converts plain-text files (`-U`)
//! and writes either hash (`-H`); the broker warns about a file every user
//! may read, as mosquitto 2 does.

mod common;
use common::process::{temp_file, Process};
use midge::auth::PasswordFile;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// An empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("passwd-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs midge-passwd; returns (success, stderr).
fn midge_passwd(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_midge-passwd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run midge-passwd");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn an_edited_file_keeps_its_owner_group_and_mode() {
    let dir = scratch("owner");
    let file = dir.join("pw");
    let f = file.to_str().unwrap();
    let (ok, err) = midge_passwd(&["-c", "-b", f, "alice", "a"]);
    assert!(ok, "{err}");
    assert_eq!(owner_and_mode(&file).2, 0o600, "a new file is private");
    // What the README's service setup does: readable by the broker's group.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (uid, gid) = if is_root() {
        // As root, hand the file to another user, as for a `midge` user.
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        (65534, 65534)
    } else {
        let (uid, gid, _) = owner_and_mode(&file);
        (uid, gid)
    };
    for args in [
        vec!["-b", f, "bob", "b"],
        vec!["-b", f, "alice", "a2"],
        vec!["-D", f, "bob"],
        vec!["-c", "-b", f, "carol", "c"],
    ] {
        let (ok, err) = midge_passwd(&args);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(owner_and_mode(&file), (uid, gid, 0o640), "after {args:?}");
    }
    let pw = PasswordFile::load(&file).unwrap();
    assert!(pw.check("carol", b"c") && !pw.contains("alice"));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
}

#[test]
fn dash_u_hashes_a_plain_text_file_like_mosquitto_passwd() {
    let dir = scratch("convert");
    // mosquitto reads a plain password up to the next ':' (strtok).
    let plain = "# users\nalice:wonder land\nbob:pass:with:colons\n\n";
    let file = dir.join("pw");
    std::fs::write(&file, plain).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let f = file.to_str().unwrap();
    let (ok, err) = midge_passwd(&["-U", f]);
    assert!(ok, "{err}");
    assert!(err.contains("2 passwords hashed"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# users\nalice:$7$101$"), "{text}");
    assert_eq!(owner_and_mode(&file).2, 0o640);
    let pw = PasswordFile::load(&file).unwrap();
    assert!(pw.check("alice", b"wonder land") && pw.check("bob", b"pass"));
    // Run again: the hashes are left alone (mosquitto_passwd would hash
    // them, making the file useless).
    let (ok, err) = midge_passwd(&["-U", f]);
    assert!(ok && err.contains("0 passwords hashed"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // The same plain file through mosquitto_passwd -U gives a file that
    // verifies the same way.
    if Path::new(MOSQUITTO_PASSWD).exists() {
        let theirs = dir.join("theirs");
        std::fs::write(&theirs, "alice:wonder land\nbob:pass:with:colons\n").unwrap();
        let ok = Command::new(MOSQUITTO_PASSWD)
            .args(["-U", theirs.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let pw = PasswordFile::load(&theirs).unwrap();
        assert!(pw.check("alice", b"wonder land") && pw.check("bob", b"pass"));
    }
    for args in [vec!["-U"], vec!["-U", f, "alice"], vec!["-U", "-b", f]] {
        let (ok, err) = midge_passwd(&args);
        assert!(!ok && err.contains("Error"), "{args:?}: {err}");
    }
}

#[test]
fn dash_h_chooses_the_hash_mosquitto_passwd_names() {
    let dir = scratch("hash");
    let file = dir.join("pw");
    let f = file.to_str().unwrap();
    let (ok, err) = midge_passwd(&["-c", "-H", "sha512", "-b", f, "old", "o"]);
    assert!(ok, "{err}");
    let (ok, err) = midge_passwd(&["-H", "sha512-pbkdf2", "-b", f, "new", "n"]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("old:$6$"), "{text}");
    assert!(text.contains("\nnew:$7$101$"), "{text}");
    let pw = PasswordFile::load(&file).unwrap();
    assert!(pw.check("old", b"o") && pw.check("new", b"n"));
    for args in [
        vec!["-H", "md5", "-b", f, "u", "x"],
        vec!["-H", "sha512", "-I", "5", "-b", f, "u", "x"],
    ] {
        let (ok, err) = midge_passwd(&args);
        assert!(!ok && err.contains("Error"), "{args:?}: {err}");
    }
}

#[test]
fn the_broker_warns_about_a_password_file_every_user_can_read() {
    let file = temp_file("open-to-all.passwd", "");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut p = Process::with_config(
        "open-to-all.conf",
        &format!("password_file {}\n", file.display()),
    );
    // Logged at start (before the "listening on" line the harness waits
    // for) and at each reload.
    p.signal("-HUP");
    let line = p.wait_for("is open to every user");
    assert!(
        line.contains("mode 0644") && line.contains("chmod 0600"),
        "{line}"
    );
}

/// On a terminal (here script(1)'s pseudo-terminal) the password is asked
/// twice, and two different answers write nothing.
#[test]
fn a_terminal_is_asked_for_the_password_twice() {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipping: script(1) is not installed");
        return;
    }
    let dir = scratch("tty");
    let file = dir.join("pw");
    let run = |answers: &str| {
        let cmd = format!(
            "{} -c {} carol",
            env!("CARGO_BIN_EXE_midge-passwd"),
            file.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answers.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = run("one\ntwo\n");
    assert!(
        !ok && out.contains("Reenter password") && out.contains("do not match"),
        "{out}"
    );
    assert!(!file.exists());
    let (ok, out) = run("same\nsame\n");
    assert!(ok, "{out}");
    assert!(PasswordFile::load(&file).unwrap().check("carol", b"same"));
}
