//! midge-passwd: manage password files in mosquitto's format, like
//! `mosquitto_passwd`.
//!
//! ```text
//! midge-passwd [-H sha512|sha512-pbkdf2] [-I iterations] [-c] FILE USER   (password asked)
//! midge-passwd [-H sha512|sha512-pbkdf2] [-I iterations] [-c] -b FILE USER PASSWORD
//! midge-passwd -D FILE USER
//! midge-passwd -U FILE        (hash the plain-text passwords of FILE)
//! ```
//!
//! The file is rewritten atomically (a temporary file in the same directory,
//! then a rename); other lines are kept as they were. An existing file keeps
//! its owner, group and mode, as with mosquitto_passwd (which rewrites it in
//! place), so a file made readable by the broker's user stays readable; a
//! new one gets mode 0600.

use midge::auth::password::{
    hash_plain_lines, set_user_line, valid_username, HashKind, DEFAULT_ITERATIONS, MAX_ITERATIONS,
};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

fn usage(program: &str, opts: &getopts::Options) -> String {
    let brief = format!(
        "Manage a password file in mosquitto's format.\n\n\
         Usage: {program} [-H sha512|sha512-pbkdf2] [-c] FILE USER\n       \
         {program} [-H sha512|sha512-pbkdf2] [-c] -b FILE USER PASSWORD\n       \
         {program} -D FILE USER\n       \
         {program} -U FILE"
    );
    opts.usage(&brief)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .map(|p| {
            Path::new(p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "midge-passwd".into());
    let mut opts = getopts::Options::new();
    opts.optflag(
        "c",
        "",
        "create a new password file (overwrites an existing one)",
    );
    opts.optflag("b", "", "batch mode: the password is on the command line");
    opts.optflag("D", "", "delete the user");
    opts.optflag(
        "U",
        "",
        "hash the plain-text passwords of FILE (lines already hashed are kept)",
    );
    opts.optopt(
        "H",
        "",
        "hash: sha512-pbkdf2 (the default) or sha512 (mosquitto 1.6 and earlier)",
        "HASH",
    );
    opts.optopt(
        "I",
        "",
        &format!("PBKDF2 iterations (default {DEFAULT_ITERATIONS})"),
        "N",
    );
    opts.optflag("h", "help", "print this help");
    let m = match opts.parse(&args[1..]) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", usage(&program, &opts));
            return ExitCode::FAILURE;
        }
    };
    if m.opt_present("h") {
        print!("{}", usage(&program, &opts));
        return ExitCode::SUCCESS;
    }
    match run(&m) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("Error: {e}\n\n{}", usage(&program, &opts));
            ExitCode::FAILURE
        }
        Err(Failure::Error(e)) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Error(String),
}

fn run(m: &getopts::Matches) -> Result<(), Failure> {
    let kind = hash_kind(m)?;
    let (create, batch, delete) = (m.opt_present("c"), m.opt_present("b"), m.opt_present("D"));
    if m.opt_present("U") {
        if create || batch || delete {
            return Err(Failure::Usage("-U cannot be used with -c, -b or -D".into()));
        }
        let [file] = m.free.as_slice() else {
            return Err(Failure::Usage("-U takes one argument, the file".into()));
        };
        return convert(Path::new(file), kind);
    }
    if delete && (create || batch) {
        return Err(Failure::Usage("-D cannot be used with -c or -b".into()));
    }
    let wanted = if batch { 3 } else { 2 };
    if m.free.len() != wanted {
        return Err(Failure::Usage(format!(
            "expected {wanted} arguments, got {}",
            m.free.len()
        )));
    }
    let file = Path::new(&m.free[0]);
    let user = &m.free[1];
    valid_username(user).map_err(Failure::Error)?;
    let old = if create { String::new() } else { read(file)? };
    let new = if delete {
        let (text, found) = set_user_line(&old, user, None);
        if !found {
            return Err(Failure::Error(format!(
                "user {user} not found in {}",
                file.display()
            )));
        }
        text
    } else {
        let password = if batch {
            m.free[2].clone()
        } else {
            read_password().map_err(Failure::Error)?
        };
        set_user_line(&old, user, Some(&kind.hash(password.as_bytes()))).0
    };
    write(file, &new)
}

/// `-H` and `-I`: the hash to write.
fn hash_kind(m: &getopts::Matches) -> Result<HashKind, Failure> {
    let iterations = match m.opt_str("I") {
        None => DEFAULT_ITERATIONS,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => n,
            _ => {
                return Err(Failure::Usage(format!(
                    "-I wants a number of iterations from 1 to {MAX_ITERATIONS}, not {s:?}"
                )))
            }
        },
    };
    match m.opt_str("H").as_deref() {
        None | Some("sha512-pbkdf2") => Ok(HashKind::Pbkdf2 { iterations }),
        Some("sha512") if m.opt_present("I") => {
            Err(Failure::Usage("-I is for sha512-pbkdf2 hashes only".into()))
        }
        Some("sha512") => Ok(HashKind::Sha512),
        Some(other) => Err(Failure::Usage(format!(
            "-H wants sha512 or sha512-pbkdf2, not {other:?}"
        ))),
    }
}

/// `-U`: hashes every plain-text password of `file`.
fn convert(file: &Path, kind: HashKind) -> Result<(), Failure> {
    let (new, hashed) = hash_plain_lines(&read(file)?, |p| kind.hash(p));
    write(file, &new)?;
    eprintln!("{}: {hashed} passwords hashed", file.display());
    Ok(())
}

fn read(file: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(file).map_err(|e| {
        Failure::Error(format!(
            "cannot read {}: {e} (use -c to create it)",
            file.display()
        ))
    })
}

fn write(file: &Path, text: &str) -> Result<(), Failure> {
    write_atomically(file, text.as_bytes())
        .map_err(|e| Failure::Error(format!("cannot write {}: {e}", file.display())))
}

/// Two prompts without echo on a terminal; one line otherwise.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return read_line(&mut stdin.lock()).map_err(|e| format!("reading the password: {e}"));
    }
    let echo_off = stty("-echo");
    let result = (|| {
        let first = prompt("Password: ")?;
        let second = prompt("Reenter password: ")?;
        if first != second {
            return Err("passwords do not match".to_string());
        }
        Ok(first)
    })();
    if echo_off {
        stty("echo");
    }
    result
}

fn prompt(text: &str) -> Result<String, String> {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let line = read_line(&mut std::io::stdin().lock());
    eprintln!();
    line.map_err(|e| format!("reading the password: {e}"))
}

fn read_line(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no password given",
        ));
    }
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_string())
}

/// Runs `stty` on the terminal (stdin); true if it worked.
fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes `data` to a temporary file next to `path`, gives it the owner,
/// group and mode of the file it replaces (0600 if there is none), syncs
/// it and renames it over `path`. Nothing is replaced if the owner cannot
/// be kept (a user other than root editing someone else's file).
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut f = options.open(&tmp)?;
        #[cfg(unix)]
        keep_owner_and_mode(path, &f)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Gives `new` the owner, group and permission bits of the file at `path`,
/// if there is one.
#[cfg(unix)]
fn keep_owner_and_mode(path: &Path, new: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::{fchown, MetadataExt, PermissionsExt};
    let old = match std::fs::metadata(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mine = new.metadata()?;
    if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
        fchown(new, Some(old.uid()), Some(old.gid())).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot keep its owner (uid {}, gid {}): {e}; run this as root or as its owner",
                    old.uid(),
                    old.gid()
                ),
            )
        })?;
    }
    new.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
}
