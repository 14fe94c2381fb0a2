//! What the generator reads from the operating system, without FFI: CPU
//! time and memory from /proc, and the open-files limit (raised with the
//! util-linux `prlimit` tool when that is installed).

use std::process::Command;

/// Clock ticks per second of /proc/*/stat times (USER_HZ, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// User + system CPU seconds of a process (`self` or a pid).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// (soft, hard) open-files limit of this process; `None` means unlimited.
fn nofile() -> Option<(Option<u64>, Option<u64>)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let parse = |s: Option<&str>| -> Option<Option<u64>> {
        match s? {
            "unlimited" => Some(None),
            v => v.parse().ok().map(Some),
        }
    };
    Some((parse(it.next())?, parse(it.next())?))
}

/// Makes sure `needed` descriptors can be open: raises the soft limit to the
/// hard one if necessary. Err explains what the user should do.
pub fn ensure_files(needed: u64) -> Result<(), String> {
    let Some((soft, hard)) = nofile() else {
        return Ok(()); // not Linux-like; let connect() tell
    };
    let enough = |l: Option<u64>| l.is_none_or(|l| l >= needed);
    if enough(soft) {
        return Ok(());
    }
    let target = hard.map_or("unlimited".to_string(), |h| h.to_string());
    let pid = std::process::id().to_string();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={target}:{target}")])
        .output();
    if let Some((soft, _)) = nofile() {
        if enough(soft) {
            return Ok(());
        }
    }
    let soft = soft.map_or("unlimited".into(), |s| s.to_string());
    if enough(hard) {
        Err(format!(
            "{needed} file descriptors are needed but the soft limit is {soft} and could not be \
             raised (no `prlimit`?): run `ulimit -n {needed}` (or `ulimit -n {target}`) first"
        ))
    } else {
        Err(format!(
            "{needed} file descriptors are needed but the hard limit is {target}: raise it \
             (as root: `ulimit -Hn {needed}`, or /etc/security/limits.conf) and run `ulimit -n {needed}`"
        ))
    }
}
