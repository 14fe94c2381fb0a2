//! `log_dest syslog`: log lines go as datagrams to the local syslog socket
//! (`/dev/log`), the way syslog(3) sends them, so journald, rsyslog or a
//! router's busybox syslogd files them with the rest of the system.
//!
//! The socket is non-blocking: when the syslog daemon falls behind, lines
//! are dropped rather than stalling the broker's loop.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where syslog daemons listen on Linux.
pub const SOCKET: &str = "/dev/log";

/// The `daemon` facility, as mosquitto uses (`log_facility N` picks
/// local`N`, 16 + N, instead).
pub const FACILITY_DAEMON: u8 = 3;

/// Longest line sent; the rest of a longer one is cut (bounded memory).
const MAX_LINE: usize = 8 * 1024;

/// The syslog priority (facility daemon) of a log level.
pub fn priority(level: log::Level) -> u8 {
    FACILITY_DAEMON * 8 + severity(level)
}

/// The syslog severity of a log level.
pub fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// A log message as one syslog line: control characters (a newline in a
/// client id, say) become `\xNN`, so a client cannot start a line of its
/// own with a priority and tag it chose.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A `Write` that sends each line written to it as one datagram.
#[derive(Debug)]
pub struct SyslogWriter {
    socket: UnixDatagram,
    path: PathBuf,
    line: Vec<u8>,
    /// Lines lost because the daemon was busy or gone.
    pub dropped: u64,
}

impl SyslogWriter {
    /// Connects to the syslog socket at `path`.
    pub fn connect(path: &Path) -> io::Result<SyslogWriter> {
        Ok(SyslogWriter {
            socket: open(path)?,
            path: path.to_path_buf(),
            line: Vec::new(),
            dropped: 0,
        })
    }

    fn send_line(&mut self) {
        if self.socket.send(&self.line).is_err() {
            // The daemon may have restarted: its socket is a new one.
            let resent = open(&self.path).and_then(|s| {
                self.socket = s;
                self.socket.send(&self.line)
            });
            if resent.is_err() {
                self.dropped += 1;
            }
        }
        self.line.clear();
    }
}

fn open(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

impl Write for SyslogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &byte in buf {
            if byte == b'\n' {
                self.send_line();
            } else if self.line.len() < MAX_LINE {
                self.line.push(byte);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let id = "x\n<10>sshd[1]: Accepted password for root\r";
        assert_eq!(
            one_line(&format!("{id} connected")),
            "x\\x0a<10>sshd[1]: Accepted password for root\\x0d connected"
        );
    }

    #[test]
    fn levels_map_to_daemon_priorities() {
        assert_eq!(priority(log::Level::Error), 27);
        assert_eq!(priority(log::Level::Warn), 28);
        assert_eq!(priority(log::Level::Info), 30);
        assert_eq!(priority(log::Level::Trace), 31);
    }

    #[test]
    fn each_line_is_one_datagram_and_a_gone_daemon_costs_only_the_line() {
        let dir = std::env::temp_dir().join(format!("midge-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut w = SyslogWriter::connect(&path).unwrap();
        w.write_all(b"<30>midge[1]: first").unwrap();
        w.write_all(b" line\n<27>midge[1]: second\n").unwrap();
        let mut buf = [0u8; 256];
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>midge[1]: first line");
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<27>midge[1]: second");
        // The daemon goes away: lines are dropped and counted, no error.
        drop(daemon);
        std::fs::remove_file(&path).unwrap();
        w.write_all(b"lost\n").unwrap();
        assert_eq!(w.dropped, 1);
        // It comes back at the same path: the writer reconnects.
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        w.write_all(b"back\n").unwrap();
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
