//! mosquitto-format password files and ACL files (`midge::auth`), and the
//! `midge-passwd` tool. No broker needed.

use midge::auth::acl::{filter_covers, filters_overlap, Acl};
use midge::auth::password::{
    hash_password, hash_password_with_salt, set_user_line, PasswordFile, MAX_ITERATIONS,
};
use midge::Access::{Publish, Subscribe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------- helpers

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "midge-auth-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// The real mosquitto_passwd, if installed. Missing under CI is a failure;
/// elsewhere the test is skipped with a message.
fn mosquitto_passwd() -> Option<&'static str> {
    if Path::new(MOSQUITTO_PASSWD).exists() {
        Some(MOSQUITTO_PASSWD)
    } else if std::env::var_os("CI").is_some() {
        panic!("{MOSQUITTO_PASSWD} is required under CI (apt-get install mosquitto)");
    } else {
        eprintln!("skipping: {MOSQUITTO_PASSWD} is not installed");
        None
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn midge_passwd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_midge-passwd"))
}

/// Runs midge-passwd; returns (success, stderr).
fn midge_passwd_run(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = midge_passwd();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn midge-passwd");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse_err(text: &str) -> String {
    PasswordFile::parse(text).expect_err(&format!("should not parse: {text:?}"))
}

fn acl_err(text: &str) -> String {
    Acl::parse(text).expect_err(&format!("should not parse: {text:?}"))
}

// ---------------------------------------------------------- password files

/// Lines written by mosquitto_passwd 2.0.11 (`-c -b`, `-H sha512 -b`,
/// `-I 1000 -b`); passwords `secret`, `hunter2`, `x`. Cross-checked with
/// Python's hashlib: PBKDF2-HMAC-SHA512 for $7$, SHA-512(password || salt)
/// for $6$.
const KNOWN_VECTORS: &str = "\
alice:$7$101$pDRB51TCi9fD9dDa$csZ1EcV1BtroHnlnw9PvsZMu4ZlxGX6l9XvVRWEHtmR6kAcH4qUVboUr5Fv3t21sjy+rtJqGX+peF7Zv7TdGuA==
bob:$6$y8Fg7djuIliVOyF4$gEYgrIfL+Km/yye33+vIEQEd/jNx1nLf6w9TXMIpBKNtUF++LyaTQXESIWcJ21aN7BiFKnQhuMeROOYMgdPiHw==
carol:$7$1000$/5PlnTK4ztXD50uK$GWOHP83jmBlLjpxIiujMT7O6cuWalApN0nxebPiCAi+ZiMbF2MlH8DzZ+GVBIjUrDz6Oek5hh7fnmAhL/H9tCg==
";

#[test]
fn known_vectors_pbkdf2_and_salted_sha512_verify() {
    let pw = PasswordFile::parse(KNOWN_VECTORS).unwrap();
    assert_eq!(pw.len(), 3);
    assert!(pw.check("alice", b"secret"));
    assert!(pw.check("bob", b"hunter2"));
    assert!(pw.check("carol", b"x"));
    // Wrong password, someone else's password, prefix, case.
    assert!(!pw.check("alice", b"hunter2"));
    assert!(!pw.check("alice", b"secre"));
    assert!(!pw.check("alice", b"Secret"));
    assert!(!pw.check("alice", b""));
    assert!(!pw.check("bob", b"hunter2\n"));
    assert!(!pw.check("carol", b"y"));
    // User names are exact.
    assert!(!pw.check("Alice", b"secret"));
    assert!(!pw.check("nobody", b"secret"));
}

#[test]
fn hash_password_with_salt_reproduces_mosquitto_passwd_line() {
    // alice's salt from KNOWN_VECTORS, decoded.
    let salt = [164, 52, 65, 231, 84, 194, 139, 215, 195, 245, 208, 218];
    let line = format!("alice:{}", hash_password_with_salt(b"secret", 101, &salt));
    assert_eq!(line, KNOWN_VECTORS.lines().next().unwrap());
}

#[test]
fn hash_password_writes_fresh_salted_pbkdf2_lines() {
    let a = hash_password(b"p4ss w\xc3\xb6rd", 101);
    let b = hash_password(b"p4ss w\xc3\xb6rd", 101);
    assert_ne!(a, b, "each hash gets a random salt");
    let fields: Vec<&str> = a.split('$').collect();
    assert_eq!(fields[..3], ["", "7", "101"]);
    assert_eq!(fields[3].len(), 16, "12-byte salt in base64");
    assert_eq!(fields[4].len(), 88, "64-byte hash in base64");
    let pw = PasswordFile::parse(&format!("u:{a}\nv:{b}\nw:{}\n", hash_password(b"", 3))).unwrap();
    assert!(pw.check("u", "p4ss wörd".as_bytes()));
    assert!(pw.check("v", "p4ss wörd".as_bytes()));
    assert!(!pw.check("u", b"p4ss word"));
    assert!(
        pw.check("w", b""),
        "empty passwords are allowed, as mosquitto_passwd -b does"
    );
    assert!(!pw.check("w", b" "));
}

#[test]
fn files_from_real_mosquitto_passwd_verify() {
    let Some(tool) = mosquitto_passwd() else {
        return;
    };
    let dir = TempDir::new("mosq");
    let file = dir.file("pw");
    let f = file.to_str().unwrap();
    run_ok(Command::new(tool).args(["-c", "-b", f, "alice", "secret"]));
    run_ok(Command::new(tool).args(["-b", f, "bob", "correct horse battery staple"]));
    run_ok(Command::new(tool).args(["-H", "sha512", "-b", f, "old", "legacy"]));
    run_ok(Command::new(tool).args(["-b", "-I", "2000", f, "slow", "s"]));
    run_ok(Command::new(tool).args(["-b", f, "uni", "pässwörd€"]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("alice:$7$101$"), "{text}");
    assert!(text.contains("old:$6$"), "{text}");
    assert!(text.contains("slow:$7$2000$"), "{text}");

    let pw = PasswordFile::load(&file).unwrap();
    assert_eq!(pw.len(), 5);
    assert!(pw.check("alice", b"secret"));
    assert!(pw.check("bob", b"correct horse battery staple"));
    assert!(pw.check("old", b"legacy"));
    assert!(pw.check("slow", b"s"));
    assert!(pw.check("uni", "pässwörd€".as_bytes()));
    assert!(!pw.check("alice", b"Secret"));
    assert!(!pw.check("old", b"legacy "));
    assert!(!pw.check("uni", b"passwort"));
    assert!(!pw.check("eve", b"secret"));

    // Updating a user with mosquitto_passwd: the old password stops working.
    run_ok(Command::new(tool).args(["-b", f, "alice", "new"]));
    let pw = PasswordFile::load(&file).unwrap();
    assert!(pw.check("alice", b"new") && !pw.check("alice", b"secret"));
    run_ok(Command::new(tool).args(["-D", f, "bob"]));
    let pw = PasswordFile::load(&file).unwrap();
    assert!(!pw.contains("bob") && !pw.check("bob", b"correct horse battery staple"));
}

#[test]
fn comments_blank_lines_and_crlf_are_accepted() {
    let text = format!(
        "# users\r\n\r\n   \n{}\r\n  # indented comment\n",
        KNOWN_VECTORS.lines().next().unwrap()
    );
    let pw = PasswordFile::parse(&text).unwrap();
    assert_eq!(pw.len(), 1);
    assert!(pw.check("alice", b"secret"));
    assert!(PasswordFile::parse("").unwrap().is_empty());
}

#[test]
fn bad_password_lines_are_errors_naming_the_line() {
    let good = KNOWN_VECTORS.lines().next().unwrap();
    let salt = "pDRB51TCi9fD9dDa";
    let hash =
        "csZ1EcV1BtroHnlnw9PvsZMu4ZlxGX6l9XvVRWEHtmR6kAcH4qUVboUr5Fv3t21sjy+rtJqGX+peF7Zv7TdGuA==";
    let cases = [
        (format!("{good}\n\nbob\n"), "line 3", "user:hash"),
        (
            format!("# c\n{good}\nbob:plaintext\n"),
            "line 3",
            "unsupported",
        ),
        (format!("bob:$5${salt}${hash}\n"), "line 1", "unsupported"),
        (format!("bob:$7$101${salt}\n"), "line 1", "malformed"),
        (format!("bob:$6${salt}\n"), "line 1", "malformed"),
        (
            format!("{good}\nbob:$7$abc${salt}${hash}\n"),
            "line 2",
            "iteration",
        ),
        (
            format!("bob:$7$0${salt}${hash}\n"),
            "line 1",
            "out of range",
        ),
        (
            format!("\n\nbob:$7${}${salt}${hash}\n", MAX_ITERATIONS + 1),
            "line 3",
            "out of range",
        ),
        (
            format!("bob:$7$4294967296${salt}${hash}\n"),
            "line 1",
            "iteration",
        ),
        (format!("bob:$7$101$!!!!${hash}\n"), "line 1", "base64"),
        (format!("bob:$6${salt}$c2hvcnQ=\n"), "line 1", "want 64"),
        (format!("bob:$7$101$${hash}\n"), "line 1", "salt"),
        (format!(":$7$101${salt}${hash}\n"), "line 1", "empty user"),
        (format!("{good}\n{good}\n"), "line 2", "twice"),
    ];
    for (text, line, what) in cases {
        let err = parse_err(&text);
        assert!(err.starts_with(&format!("{line}:")), "{err:?} for {text:?}");
        assert!(err.contains(what), "{err:?} should mention {what:?}");
    }
    // The largest allowed count loads (it is not computed at load time).
    let max = format!("bob:$7${MAX_ITERATIONS}${salt}${hash}\n");
    assert!(PasswordFile::parse(&max).is_ok());
}

#[test]
fn load_errors_name_the_file() {
    let dir = TempDir::new("load");
    let missing = dir.file("nope");
    let err = PasswordFile::load(&missing).unwrap_err();
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    let bad = dir.file("bad");
    std::fs::write(&bad, "# ok\nnot a line\n").unwrap();
    let err = PasswordFile::load(&bad).unwrap_err();
    assert!(
        err.contains(bad.to_str().unwrap()) && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn set_user_line_adds_replaces_and_deletes_keeping_other_lines() {
    let text = "# header\nalice:H1\n\nbob:H2\r\n# alice:commented\n";
    let (t, found) = set_user_line(text, "bob", Some("N2"));
    assert!(found);
    assert_eq!(t, "# header\nalice:H1\n\nbob:N2\n# alice:commented\n");
    let (t, found) = set_user_line(&t, "carol", Some("N3"));
    assert!(!found);
    assert_eq!(
        t,
        "# header\nalice:H1\n\nbob:N2\n# alice:commented\ncarol:N3\n"
    );
    let (t, found) = set_user_line(&t, "alice", None);
    assert!(found);
    assert_eq!(t, "# header\n\nbob:N2\n# alice:commented\ncarol:N3\n");
    let (t2, found) = set_user_line(&t, "alice", None);
    assert!(!found);
    assert_eq!(t2, t);
    // A user name that is a prefix of another does not touch it.
    let (t, _) = set_user_line("ab:1\na:2\n", "a", Some("3"));
    assert_eq!(t, "ab:1\na:3\n");
}

// ------------------------------------------------------------ midge-passwd

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn midge_passwd_create_add_update_delete_round_trip() {
    let dir = TempDir::new("tool");
    let file = dir.file("passwd");
    let f = file.to_str().unwrap();

    let (ok, err) = midge_passwd_run(&["-b", f, "alice", "a1"], None);
    assert!(!ok && err.contains("-c"), "no file and no -c: {err}");

    let (ok, err) = midge_passwd_run(&["-c", "-b", f, "alice", "a1"], None);
    assert!(ok, "{err}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    let (ok, err) = midge_passwd_run(&["-b", "-I", "500", f, "bob", "b1"], None);
    assert!(ok, "{err}");
    // Password from a pipe (not a terminal): one line.
    let (ok, err) = midge_passwd_run(&[f, "carol"], Some("c 1\n"));
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$7$101$"), "{text}");
    assert!(text.contains("\nbob:$7$500$"), "{text}");

    let pw = PasswordFile::load(&file).unwrap();
    assert_eq!(pw.len(), 3);
    assert!(pw.check("alice", b"a1") && pw.check("bob", b"b1") && pw.check("carol", b"c 1"));
    assert!(!pw.check("alice", b"b1"));

    // Update keeps the line's place and the other lines.
    std::fs::write(&file, format!("# my users\n{text}")).unwrap();
    let (ok, err) = midge_passwd_run(&["-b", f, "alice", "a2"], None);
    assert!(ok, "{err}");
    let after = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines[0], "# my users");
    assert!(lines[1].starts_with("alice:"));
    assert_eq!(lines[2..], text.lines().collect::<Vec<_>>()[1..]);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    let pw = PasswordFile::load(&file).unwrap();
    assert!(pw.check("alice", b"a2") && !pw.check("alice", b"a1"));
    assert!(pw.check("bob", b"b1"));

    // Delete.
    let (ok, err) = midge_passwd_run(&["-D", f, "bob"], None);
    assert!(ok, "{err}");
    let pw = PasswordFile::load(&file).unwrap();
    assert_eq!(pw.len(), 2);
    assert!(!pw.contains("bob") && !pw.check("bob", b"b1"));
    let (ok, err) = midge_passwd_run(&["-D", f, "bob"], None);
    assert!(!ok && err.contains("not found"), "{err}");

    // -c overwrites.
    let (ok, err) = midge_passwd_run(&["-c", "-b", f, "dave", "d"], None);
    assert!(ok, "{err}");
    let pw = PasswordFile::load(&file).unwrap();
    assert_eq!(pw.len(), 1);
    assert!(pw.check("dave", b"d") && !pw.contains("alice"));

    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn midge_passwd_rejects_bad_usage() {
    let dir = TempDir::new("usage");
    let file = dir.file("passwd");
    let f = file.to_str().unwrap();
    for args in [
        vec!["-c", "-b", f, "a:b", "x"],
        vec!["-c", "-b", f, "", "x"],
        vec!["-c", "-b", "-I", "0", f, "u", "x"],
        vec!["-c", "-b", "-I", "10000001", f, "u", "x"],
        vec!["-c", "-b", "-I", "many", f, "u", "x"],
        vec!["-c", "-b", f, "u"],
        vec!["-c", "-D", f, "u"],
        vec!["-c", f],
        vec!["-c", "-b", "-Z", f, "u", "x"],
    ] {
        let (ok, err) = midge_passwd_run(&args, None);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains("Error"), "{args:?}: {err}");
    }
    assert!(!file.exists(), "nothing written on errors");
    // Empty stdin: no password, nothing written.
    let (ok, _) = midge_passwd_run(&["-c", f, "u"], Some(""));
    assert!(!ok);
    assert!(!file.exists());
}

#[test]
fn midge_passwd_edits_a_mosquitto_passwd_file() {
    let Some(tool) = mosquitto_passwd() else {
        return;
    };
    let dir = TempDir::new("interop");
    let file = dir.file("pw");
    let f = file.to_str().unwrap();
    run_ok(Command::new(tool).args(["-c", "-b", f, "m1", "one"]));
    run_ok(Command::new(tool).args(["-H", "sha512", "-b", f, "m2", "two"]));
    let (ok, err) = midge_passwd_run(&["-b", f, "g1", "three"], None);
    assert!(ok, "{err}");
    // And mosquitto_passwd edits a file midge-passwd wrote.
    run_ok(Command::new(tool).args(["-b", f, "m3", "four"]));
    run_ok(Command::new(tool).args(["-D", f, "m1"]));
    let pw = PasswordFile::load(&file).unwrap();
    assert_eq!(pw.len(), 3);
    assert!(pw.check("m2", b"two") && pw.check("g1", b"three") && pw.check("m3", b"four"));
    assert!(!pw.contains("m1"));
}

// ----------------------------------------------------------------- ACLs

#[test]
fn filter_covers_table() {
    let cases = [
        // (rule, subscription, covered)
        ("a/#", "a/#", true),
        ("a/#", "a", true),
        ("a/#", "a/b/c", true),
        ("a/#", "a/+", true),
        ("a/b", "a/#", false),
        ("a/+", "a/b", true),
        ("a/+", "a/+", true),
        ("a/+", "a/#", false),
        ("a/+", "a/b/c", false),
        ("a/b", "a/+", false),
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("#", "a/+/c", true),
        ("#", "#", true),
        ("+/#", "#", true),
        ("+/+", "#", false),
        ("+", "+", true),
        ("+", "a/b", false),
        ("a/+/c", "a/+/c", true),
        ("a/+/c", "a/b/+", false),
        ("+/b/#", "a/b/c/#", true),
        ("a/b/#", "a/+/#", false),
        // `$` topics are never matched by a rule starting with a wildcard.
        ("#", "$SYS/#", false),
        ("+/#", "$SYS/broker", false),
        ("$SYS/#", "$SYS/broker/+", true),
        ("$SYS/#", "#", false),
        // Levels are compared exactly.
        ("a/b", "A/b", false),
        ("a//b", "a/+/b", false),
        ("a/+/b", "a//b", true),
    ];
    for (rule, sub, want) in cases {
        assert_eq!(
            filter_covers(rule, sub),
            want,
            "filter_covers({rule}, {sub})"
        );
    }
}

#[test]
fn filters_overlap_table() {
    let cases = [
        ("a/b", "a/#", true),
        ("a/b", "a/+", true),
        ("a/b", "a/c", false),
        ("a/#", "a", true),
        ("a/b/#", "a", false),
        ("+/b", "a/+", true),
        ("#", "$SYS/x", false),
        ("$SYS/#", "$SYS/+", true),
        ("a/+/c", "a/b", false),
    ];
    for (x, y, want) in cases {
        assert_eq!(filters_overlap(x, y), want, "overlap({x}, {y})");
        assert_eq!(filters_overlap(y, x), want, "overlap({y}, {x})");
    }
}

const ACL: &str = "\
# anonymous clients
topic read public/#
topic write public/inbox

user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/status

user bob
topic shared/#
topic   write   bob/out

# everyone
pattern write clients/%c/status
pattern read users/%u/#
pattern deny users/%u/private/#
";

#[test]
fn acl_anonymous_rules_apply_only_without_user_name() {
    let acl = Acl::parse(ACL).unwrap();
    assert!(acl.allowed("c1", None, Subscribe, "public/#"));
    assert!(acl.allowed("c1", None, Subscribe, "public/news"));
    assert!(acl.allowed("c1", None, Publish, "public/inbox"));
    assert!(
        !acl.allowed("c1", None, Publish, "public/news"),
        "read only"
    );
    assert!(acl.allowed("c1", None, Subscribe, "public/inbox/#"));
    assert!(!acl.allowed("c1", None, Subscribe, "+/news"));
    assert!(!acl.allowed("c1", None, Subscribe, "#"));
    assert!(!acl.allowed("c1", None, Publish, "alice/x"));
    // A user without rules of their own does not get the anonymous ones.
    assert!(!acl.allowed("c1", Some("carol"), Subscribe, "public/news"));
    assert!(!acl.allowed("c1", Some("alice"), Subscribe, "public/news"));
}

#[test]
fn acl_user_sections_and_access_kinds() {
    let acl = Acl::parse(ACL).unwrap();
    assert!(acl.allowed("a", Some("alice"), Publish, "alice/x/y"));
    assert!(acl.allowed("a", Some("alice"), Subscribe, "alice/x/#"));
    assert!(acl.allowed("a", Some("alice"), Subscribe, "shared/bob/status"));
    assert!(acl.allowed("a", Some("alice"), Subscribe, "shared/+/status"));
    assert!(!acl.allowed("a", Some("alice"), Subscribe, "shared/#"));
    assert!(!acl.allowed("a", Some("alice"), Publish, "shared/bob/status"));
    assert!(!acl.allowed("a", Some("alice"), Publish, "bob/out"));
    // `topic FILTER` without a kind is readwrite; extra spaces are fine.
    assert!(acl.allowed("b", Some("bob"), Publish, "shared/x"));
    assert!(acl.allowed("b", Some("bob"), Subscribe, "shared/#"));
    assert!(acl.allowed("b", Some("bob"), Publish, "bob/out"));
    assert!(!acl.allowed("b", Some("bob"), Subscribe, "bob/out"));
    assert!(!acl.allowed("b", Some("bob"), Publish, "alice/x"));
}

#[test]
fn acl_deny_takes_precedence() {
    let acl = Acl::parse(ACL).unwrap();
    // Granted by alice/# but denied by `topic deny alice/secret`.
    assert!(!acl.allowed("a", Some("alice"), Publish, "alice/secret"));
    assert!(!acl.allowed("a", Some("alice"), Subscribe, "alice/secret"));
    assert!(acl.allowed("a", Some("alice"), Publish, "alice/secret/x"));
    // A subscription that would receive alice/secret is refused as a whole.
    // (the broker does not check each delivered message again).
    assert!(!acl.allowed("a", Some("alice"), Subscribe, "alice/+"));
    assert!(!acl.allowed("a", Some("alice"), Subscribe, "alice/#"));
    assert!(acl.allowed("a", Some("alice"), Subscribe, "alice/x/#"));
    // Deny listed after the grant, or as a pattern, still wins.
    let acl2 = Acl::parse("topic deny x/y\ntopic x/#\npattern deny x/%c\n").unwrap();
    assert!(!acl2.allowed("c", None, Publish, "x/y"));
    assert!(!acl2.allowed("c", None, Publish, "x/c"));
    assert!(acl2.allowed("c", None, Publish, "x/d"));
    assert!(acl2.allowed("d", None, Publish, "x/c"));
    assert!(!acl2.allowed("c", None, Subscribe, "x/#"));
    assert!(acl2.allowed("c", None, Subscribe, "x/d/#"));
    // Deny patterns with %u.
    assert!(acl.allowed("z", Some("zed"), Subscribe, "users/zed/inbox"));
    assert!(!acl.allowed("z", Some("zed"), Subscribe, "users/zed/private/x"));
    assert!(!acl.allowed("z", Some("zed"), Subscribe, "users/zed/#"));
}

#[test]
fn acl_patterns_substitute_client_id_and_user_name() {
    let acl = Acl::parse(ACL).unwrap();
    assert!(acl.allowed("dev7", None, Publish, "clients/dev7/status"));
    assert!(acl.allowed("dev7", Some("zed"), Publish, "clients/dev7/status"));
    assert!(!acl.allowed("dev7", None, Publish, "clients/dev8/status"));
    assert!(!acl.allowed("dev7", None, Subscribe, "clients/dev7/status"));
    assert!(acl.allowed("x", Some("zed"), Subscribe, "users/zed/inbox"));
    assert!(!acl.allowed("x", Some("zed"), Subscribe, "users/amy/inbox"));
    assert!(!acl.allowed("x", Some("zed"), Publish, "users/zed/inbox"));
    // %u never matches an anonymous client (not even as a literal "%u").
    assert!(!acl.allowed("x", None, Subscribe, "users/%u/inbox"));
    assert!(!acl.allowed("x", None, Subscribe, "users/+/inbox"));
    // Patterns add to a user's own section.
    assert!(acl.allowed("dev1", Some("alice"), Publish, "clients/dev1/status"));
    // Several substitutions in one pattern; a `%` not followed by c or u is
    // literal.
    let acl = Acl::parse("pattern readwrite a/%u/%c/%x/%c\n").unwrap();
    assert!(acl.allowed("id", Some("u"), Publish, "a/u/id/%x/id"));
    assert!(!acl.allowed("id", Some("u"), Publish, "a/u/id/%x/other"));
}

#[test]
fn acl_ids_and_user_names_with_wildcards_or_slashes_cannot_widen_patterns() {
    let acl = Acl::parse("pattern readwrite clients/%c/#\npattern read users/%u\n").unwrap();
    assert!(acl.allowed("ok", None, Subscribe, "clients/ok/#"));
    for id in ["#", "+", "a/b", "x/#", "+/+"] {
        assert!(!acl.allowed(id, None, Subscribe, "clients/#"), "{id}");
        assert!(
            !acl.allowed(id, None, Subscribe, &format!("clients/{id}/#")),
            "{id}"
        );
        assert!(
            !acl.allowed(id, None, Publish, &format!("clients/{id}/x")),
            "{id}"
        );
        assert!(!acl.allowed(id, None, Publish, "clients/a/b/x"), "{id}");
    }
    for user in ["#", "+", "a/b"] {
        assert!(
            !acl.allowed("c", Some(user), Subscribe, "users/#"),
            "{user}"
        );
        assert!(
            !acl.allowed("c", Some(user), Subscribe, &format!("users/{user}")),
            "{user}"
        );
        assert!(
            !acl.allowed("c", Some(user), Subscribe, "users/a/b"),
            "{user}"
        );
    }
    // A deny pattern that cannot be applied safely refuses everything.
    let acl = Acl::parse("topic readwrite #\npattern deny secret/%c\n").unwrap();
    assert!(acl.allowed("ok", None, Publish, "x"));
    assert!(!acl.allowed("ok", None, Publish, "secret/ok"));
    assert!(!acl.allowed("a/b", None, Publish, "x"));
}

#[test]
fn acl_rules_starting_with_a_wildcard_do_not_grant_dollar_topics() {
    let acl = Acl::parse("topic #\nuser admin\ntopic $SYS/#\ntopic #\n").unwrap();
    assert!(acl.allowed("c", None, Publish, "a/b"));
    assert!(acl.allowed("c", None, Subscribe, "#"));
    assert!(!acl.allowed("c", None, Publish, "$SYS/x"));
    assert!(!acl.allowed("c", None, Subscribe, "$SYS/#"));
    assert!(acl.allowed("c", Some("admin"), Subscribe, "$SYS/#"));
    assert!(acl.allowed("c", Some("admin"), Subscribe, "$SYS/broker/+"));
}

#[test]
fn acl_empty_file_refuses_everything_and_repeated_user_sections_merge() {
    let acl = Acl::parse("# nothing\n\n").unwrap();
    assert!(acl.is_empty());
    assert!(!acl.allowed("c", None, Publish, "a"));
    assert!(!acl.allowed("c", Some("u"), Subscribe, "a"));
    let acl = Acl::parse("user u\ntopic a\nuser v\ntopic b\nuser u\ntopic c\n").unwrap();
    assert!(!acl.is_empty());
    assert!(acl.allowed("c", Some("u"), Publish, "a") && acl.allowed("c", Some("u"), Publish, "c"));
    assert!(!acl.allowed("c", Some("u"), Publish, "b"));
    // A filter with spaces, after an explicit access kind.
    let acl = Acl::parse("topic readwrite my topic/#\n").unwrap();
    assert!(acl.allowed("c", None, Publish, "my topic/x"));
    // User names may contain spaces (the rest of the line).
    let acl = Acl::parse("user John Smith\ntopic read js/#\n").unwrap();
    assert!(acl.allowed("c", Some("John Smith"), Subscribe, "js/#"));
    assert!(!acl.allowed("c", Some("John"), Subscribe, "js/#"));
}

#[test]
fn acl_bad_lines_are_errors_naming_the_line() {
    let cases = [
        ("topic a\nfoo bar\n", "line 2", "unknown keyword"),
        ("\n\n\ntopic\n", "line 4", "missing topic filter"),
        ("user\n", "line 1", "user name"),
        ("# c\ntopic read a/#/b\n", "line 2", "invalid topic filter"),
        ("pattern write a+\n", "line 1", "invalid topic filter"),
        ("topic readonly a\n", "line 1", "invalid access"),
        ("topic my topic\n", "line 1", "invalid access"),
        ("users alice\n", "line 1", "unknown keyword"),
    ];
    for (text, line, what) in cases {
        let err = acl_err(text);
        assert!(err.starts_with(&format!("{line}:")), "{err:?} for {text:?}");
        assert!(err.contains(what), "{err:?} should mention {what:?}");
    }
    let dir = TempDir::new("acl");
    let path = dir.file("acl");
    std::fs::write(&path, "topic a\nbogus\n").unwrap();
    let err = Acl::load(&path).unwrap_err();
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("line 2"),
        "{err}"
    );
    std::fs::write(&path, ACL).unwrap();
    assert!(Acl::load(&path).is_ok());
    assert!(Acl::load(dir.file("missing")).is_err());
}
