//! The `midge` binary: reads the command line (and a config file), sets up
//! logging, and runs the library's loop.

use getopts::Options;
use midge::conffile::{self, LogDest, ProcessSettings};
use midge::{logging, syslog, Broker, Config};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

/// Command-line options that map one-to-one onto config-file options:
/// (long option, config key, help).
const VALUE_OPTIONS: &[(&str, &str, &str)] = &[
    (
        "max-connections",
        "max_connections",
        "simultaneous clients, 0 = unlimited (default 0)",
    ),
    (
        "max-packet-size",
        "max_packet_size",
        "largest packet, bytes, whole (default 268435460)",
    ),
    (
        "message-size-limit",
        "message_size_limit",
        "largest PUBLISH and Will payload, bytes, 0 = none (default 0)",
    ),
    (
        "max-inflight",
        "max_inflight_messages",
        "most QoS 1/2 messages in flight per client, 0 = no maximum; the window starts at 20 and grows while the client keeps up (default 1000)",
    ),
    (
        "max-queued",
        "max_queued_messages",
        "messages queued per client, 0 = no maximum (default 1000)",
    ),
    (
        "max-queued-bytes",
        "max_queued_bytes",
        "payload bytes queued per client, 0 = no limit (default 0)",
    ),
    (
        "queue-full",
        "queue_full",
        "online subscriber's queue full: 'block' its publishers or 'drop' (default block)",
    ),
    (
        "stall-timeout",
        "stall_timeout",
        "seconds a subscriber may take no message while publishers wait for it, before it is disconnected, 0 = never (default 5)",
    ),
    (
        "queue-overflow",
        "queue_overflow",
        "when dropping: the 'newest' or 'oldest' message (default newest)",
    ),
    (
        "max-outgoing-bytes",
        "max_outgoing_bytes",
        "output buffered per client before QoS 0 is dropped (default 1048576)",
    ),
    (
        "memory-limit",
        "memory_limit",
        "bytes held for all connections' frames, output, parked messages and Wills; larger frames are refused, frames that do not fit wait (16 KiB or less: always read); 0 = no limit (default 67108864)",
    ),
    (
        "connect-timeout",
        "connect_timeout",
        "seconds a new connection has to send CONNECT (default 10)",
    ),
    (
        "max-keepalive",
        "max_keepalive",
        "refuse clients asking a longer (or no) keep-alive, 0 = any (default 0)",
    ),
    (
        "max-topic-levels",
        "max_topic_levels",
        "most levels in a topic name or SUBSCRIBE filter; deeper closes the connection (default 200)",
    ),
    (
        "sys-interval",
        "sys_interval",
        "seconds between $SYS updates, 0 = off (default 10)",
    ),
    (
        "password-file",
        "password_file",
        "mosquitto-format password file",
    ),
    ("acl-file", "acl_file", "mosquitto-format ACL file"),
    (
        "allow-anonymous",
        "allow_anonymous",
        "true/false (default: true unless a password file is set)",
    ),
    (
        "session-expiry",
        "persistent_client_expiration",
        "delete persistent sessions offline longer than this (e.g. 90, 12h, 14d, 2w)",
    ),
    (
        "persistence-max-bytes",
        "persistence_max_bytes",
        "disk the store may use, 0 = no limit (default 0)",
    ),
    (
        "fsync",
        "fsync",
        "with persistence: 'always' (before acknowledging) or SECS between fsyncs (default always)",
    ),
];

fn options() -> Options {
    let mut o = Options::new();
    o.optopt(
        "c",
        "config",
        "mosquitto.conf-style configuration file",
        "FILE",
    );
    o.optopt("p", "port", "TCP port to listen on (default 1883)", "PORT");
    o.optmulti(
        "b",
        "bind",
        "address or host name to listen on; repeat for several (default 127.0.0.1; 0.0.0.0 for all IPv4)",
        "ADDR",
    );
    for (long, _, help) in VALUE_OPTIONS {
        o.optopt("", long, help, "VALUE");
    }
    o.optopt(
        "",
        "persistence",
        "keep sessions and retained messages across restarts, in DIR",
        "DIR",
    );
    o.optflag(
        "",
        "queue-qos0",
        "also queue QoS 0 messages for offline persistent sessions",
    );
    o.optflag(
        "",
        "no-zero-length-client-id",
        "refuse empty client ids instead of assigning one",
    );
    o.optflagmulti(
        "v",
        "verbose",
        "log more (-v debug, -vv trace); RUST_LOG overrides",
    );
    o.optflag("h", "help", "print this help");
    o.optflag("V", "version", "print the version");
    o
}

/// The config file first, then the command line on top of it.
fn configure(m: &getopts::Matches) -> Result<(Config, ProcessSettings), String> {
    let mut c = Config::default();
    let settings = match m.opt_str("config") {
        Some(path) => conffile::load(path.as_ref(), &mut c)?,
        None => ProcessSettings::default(),
    };
    let binds = m.opt_strs("bind");
    if m.opt_present("port") || !binds.is_empty() {
        let port: u16 = match m.opt_str("port") {
            Some(p) => p
                .parse()
                .map_err(|_| format!("--port: '{p}' is not a port"))?,
            None => 1883,
        };
        let ips: Vec<IpAddr> = if binds.is_empty() {
            vec![IpAddr::from([127, 0, 0, 1])]
        } else {
            binds
                .iter()
                .map(|b| midge::config::parse_host("--bind", b))
                .collect::<Result<_, _>>()?
        };
        c.listen_on(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
    }
    for (long, key, _) in VALUE_OPTIONS {
        if let Some(v) = m.opt_str(long) {
            c.set(key, &v).map_err(|e| format!("--{long}: {e}"))?;
        }
    }
    if let Some(dir) = m.opt_str("persistence") {
        c.set("persistence", "true")?;
        c.set("persistence_location", &dir)?;
    }
    if m.opt_present("queue-qos0") {
        c.set("queue_qos0_messages", "true")?;
    }
    if m.opt_present("no-zero-length-client-id") {
        c.set("allow_zero_length_clientid", "false")?;
    }
    Ok((c, settings))
}

fn init_logging(m: &getopts::Matches, settings: &ProcessSettings) -> Result<(), String> {
    let level = match (m.opt_count("verbose"), settings.log_level) {
        (0, Some(l)) => l.to_string().to_lowercase(),
        (0, None) => "info".into(),
        (1, _) => "debug".into(),
        _ => "trace".into(),
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    // log_type picks levels one by one, unless -v or RUST_LOG says more.
    let by_type = m.opt_count("verbose") == 0 && rust_log.is_none();
    let levels = settings
        .log_level
        .filter(|_| by_type)
        .map(|_| settings.log_types.clone());
    let setup = logging::Setup {
        dests: (settings.log_dests.clone()).unwrap_or_else(|| vec![LogDest::Stderr]),
        filter: rust_log.unwrap_or(level),
        levels,
        facility: settings.log_facility,
        stamp: logging::Setup::stamp_of(
            settings.log_timestamp,
            settings.log_timestamp_format.as_deref(),
        ),
        syslog_socket: syslog::SOCKET.into(),
    };
    for w in logging::init(setup)? {
        log::warn!("{w}");
    }
    for w in &settings.warnings {
        log::warn!("config: {w}");
    }
    Ok(())
}

fn run(config: Config, settings: &ProcessSettings) -> std::io::Result<()> {
    // Written first, so that a start it fails never listened.
    if let Some(pid_file) = &settings.pid_file {
        write_pid_file(pid_file)?;
    }
    let result = Broker::new(config).and_then(|mut broker| {
        broker.handle_signals()?;
        log::info!("midge {} running", env!("CARGO_PKG_VERSION"));
        broker.run()
    });
    if let Some(pid_file) = &settings.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    result
}

/// `pid_file`, with an error that names it (and its missing directory).
fn write_pid_file(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let why = match dir {
            Some(dir) if !dir.is_dir() => format!("directory {} does not exist", dir.display()),
            _ => e.to_string(),
        };
        std::io::Error::new(e.kind(), format!("pid_file {}: {why}", path.display()))
    })
}

fn main() -> ExitCode {
    let opts = options();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("midge: {e}\n{}", opts.short_usage("midge"));
            return ExitCode::from(2);
        }
    };
    if m.opt_present("help") {
        print!(
            "{}",
            opts.usage("Usage: midge [options]\n\nAn MQTT 3.1.1 broker.")
        );
        return ExitCode::SUCCESS;
    }
    if m.opt_present("version") {
        println!("midge {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let (config, settings) = match configure(&m) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("midge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&m, &settings) {
        eprintln!("midge: {e}");
        return ExitCode::from(2);
    }
    match run(config, &settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
