//! The `midge` binary's log, as mosquitto's `log_*` options describe it:
//! every `log_dest` at once (stderr, stdout, files, syslog), lines stamped
//! as `log_timestamp` and `log_timestamp_format` say, filtered by level
//! (`log_type`, `-v`) or `RUST_LOG`.
//!
//! env_logger filters (`RUST_LOG` syntax) and formats; each line is
//! formatted once and written whole to each destination with one `write`,
//! so lines from different threads never interleave. SIGHUP
//! reopens the log files, as mosquitto does, so logrotate's `postrotate`
//! habit (`kill -HUP`, `systemctl reload`) carries over.

use crate::conffile::LogDest;
use crate::syslog::{self, SyslogWriter};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The default stamp: UTC, to the second (env_logger's own default).
const DEFAULT_STAMP: &str = "%Y-%m-%dT%H:%M:%SZ";

/// How the log is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    pub dests: Vec<LogDest>,
    /// Filter directives in `RUST_LOG`'s syntax (`info`, `midge=debug`).
    pub filter: String,
    /// Only these levels (mosquitto's `log_type` lines), if given.
    pub levels: Option<Vec<log::Level>>,
    /// Syslog facility: `None` for daemon, `Some(n)` for local`n`.
    pub facility: Option<u8>,
    /// `None`: no time stamp; else a strftime format (in UTC, see
    /// `src/stamp.rs`).
    pub stamp: Option<String>,
    /// The syslog socket (`/dev/log`; another path in tests).
    pub syslog_socket: PathBuf,
}

impl Setup {
    /// The stamp `log_timestamp` and `log_timestamp_format` ask for.
    pub fn stamp_of(on: Option<bool>, format: Option<&str>) -> Option<String> {
        match (on, format) {
            (Some(false), _) => None,
            (_, Some(f)) => Some(f.to_string()),
            _ => Some(DEFAULT_STAMP.to_string()),
        }
    }
}

/// Where the formatted lines go (syslog gets its own line format).
enum Sink {
    Stderr,
    Stdout,
    File(PathBuf, File),
}

/// env_logger's output: every destination but syslog, each line written
/// whole to each. SIGHUP reopens the files before the next line.
struct Tee {
    sinks: Vec<Sink>,
    reopen: Arc<AtomicBool>,
}

impl Write for Tee {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.reopen.swap(false, Ordering::Relaxed) {
            reopen_files(&mut self.sinks);
        }
        for sink in self.sinks.iter_mut() {
            // A full disk or closed pipe must not stop the broker: the
            // line is lost for that destination only.
            let _ = match sink {
                Sink::Stderr => std::io::stderr().write_all(line),
                Sink::Stdout => std::io::stdout().write_all(line),
                Sink::File(_, f) => f.write_all(line),
            };
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `log`'s logger: env_logger (filter, format, the destinations of
/// [`Tee`]) plus mosquitto's `log_type` level choice and syslog.
struct Logger {
    env: env_logger::Logger,
    levels: Option<Vec<log::Level>>,
    /// Facility times 8, added to each line's severity.
    facility: u8,
    pid: u32,
    syslog: Option<Mutex<SyslogWriter>>,
}

/// A `log_timestamp_format` that cannot be formatted is a config error,
/// not a panic at the first log line.
pub fn check_stamp(format: &str) -> Result<(), String> {
    crate::stamp::format_now(format)
        .map(|_| ())
        .map_err(|e| format!("log_timestamp_format '{format}': {e}"))
}

fn stamp(format: &str) -> String {
    crate::stamp::format_now(format).unwrap_or_default()
}

/// Installs the logger; returns warnings to log once it runs (a missing
/// syslog socket: the log goes to stderr instead).
pub fn init(setup: Setup) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let mut sinks = Vec::new();
    let mut syslog = None;
    for dest in &setup.dests {
        let sink = match dest {
            LogDest::Stderr => Sink::Stderr,
            LogDest::Stdout => Sink::Stdout,
            LogDest::File(path) => Sink::File(path.clone(), open_log_file(path)?),
            LogDest::Syslog => match SyslogWriter::connect(&setup.syslog_socket) {
                Ok(writer) => {
                    syslog = Some(Mutex::new(writer));
                    continue;
                }
                // No syslog daemon (a container, say): the log still goes
                // somewhere, and says why.
                Err(e) => {
                    let path = setup.syslog_socket.display();
                    warnings.push(format!("log_dest syslog: {path}: {e}; logging to stderr"));
                    Sink::Stderr
                }
            },
        };
        if !(matches!(sink, Sink::Stderr) && sinks.iter().any(|s| matches!(s, Sink::Stderr))) {
            sinks.push(sink);
        }
    }
    let nowhere = sinks.is_empty() && syslog.is_none();
    let reopen = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reopen.clone())
        .map_err(|e| format!("SIGHUP for the log files: {e}"))?;
    let stamp_format = setup.stamp;
    let env = env_logger::Builder::new()
        .parse_filters(&setup.filter)
        .format(move |buf, record| {
            let (level, target) = (record.level(), record.target());
            match &stamp_format {
                Some(f) => writeln!(buf, "[{} {level:<5} {target}] {}", stamp(f), record.args()),
                None => writeln!(buf, "[{level:<5} {target}] {}", record.args()),
            }
        })
        .target(env_logger::Target::Pipe(Box::new(Tee { sinks, reopen })))
        .build();
    let max = if nowhere {
        log::LevelFilter::Off
    } else {
        env.filter()
    };
    let logger = Logger {
        env,
        levels: setup.levels,
        facility: setup.facility.map_or(syslog::FACILITY_DAEMON, |n| 16 + n),
        pid: std::process::id(),
        syslog,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    Ok(warnings)
}

fn open_log_file(path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("log_dest file {}: {e}", path.display()))
}

/// After a rotation the old file has been renamed: lines go to a new file
/// at the configured path. One that cannot be opened keeps the old handle
/// (and says so there).
fn reopen_files(sinks: &mut [Sink]) {
    for sink in sinks {
        if let Sink::File(path, file) = sink {
            match open_log_file(path) {
                Ok(new) => *file = new,
                Err(e) => {
                    let _ = writeln!(file, "cannot reopen the log file: {e}");
                }
            }
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let level = metadata.level();
        self.env.enabled(metadata) && self.levels.as_ref().is_none_or(|l| l.contains(&level))
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.env.matches(record) || !self.enabled(record.metadata()) {
            return;
        }
        self.env.log(record);
        if let Some(syslog) = &self.syslog {
            let text = record.args().to_string();
            let line = syslog_line(self.facility, self.pid, record.level(), &text);
            let mut w = syslog.lock().unwrap_or_else(|e| e.into_inner());
            let _ = w.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// A line as syslog(3) sends it: priority (facility and severity), tag
/// and pid, the text on one line (the daemon stamps it).
fn syslog_line(facility: u8, pid: u32, level: log::Level, text: &str) -> String {
    let pri = facility * 8 + syslog::severity(level);
    format!("<{pri}>midge[{pid}]: {}\n", syslog::one_line(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_facility_picks_local0_to_local7() {
        let line = syslog_line(16 + 5, 7, log::Level::Warn, "a\nb");
        assert_eq!(line, "<172>midge[7]: a\\x0ab\n");
        let line = syslog_line(syslog::FACILITY_DAEMON, 7, log::Level::Info, "x");
        assert_eq!(line, "<30>midge[7]: x\n");
    }

    #[test]
    fn stamps_follow_log_timestamp_and_its_format() {
        assert_eq!(Setup::stamp_of(Some(false), Some("%H")), None);
        assert_eq!(Setup::stamp_of(None, Some("%H")).as_deref(), Some("%H"));
        assert_eq!(
            Setup::stamp_of(Some(true), None).as_deref(),
            Some(DEFAULT_STAMP)
        );
        let year = stamp("%Y");
        assert!(year.len() == 4 && year.starts_with('2'), "{year}");
        assert!(stamp(DEFAULT_STAMP).ends_with('Z'));
        assert!(check_stamp("%Y-%m-%dT%H:%M:%S").is_ok());
        assert!(check_stamp("%Y %").is_err(), "an unfinished conversion");
    }
}
