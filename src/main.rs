//! The `midge` binary: parses the command line and runs the library's loop.

use getopts::Options;
use midge::config::QueueFull;
use midge::session::Overflow;
use midge::{Broker, Config};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

fn options() -> Options {
    let mut o = Options::new();
    o.optopt("p", "port", "TCP port to listen on (default 1883)", "PORT");
    o.optmulti(
        "b",
        "bind",
        "address to listen on; repeat for several (default 127.0.0.1; 0.0.0.0 for all IPv4)",
        "ADDR",
    );
    o.optopt(
        "",
        "max-connections",
        "simultaneous clients, 0 = unlimited (default 0)",
        "N",
    );
    o.optopt(
        "",
        "max-packet-size",
        "largest packet in bytes (default 268435455)",
        "BYTES",
    );
    o.optopt(
        "",
        "max-inflight",
        "QoS 1/2 messages in flight per client (default 20)",
        "N",
    );
    o.optopt(
        "",
        "max-queued",
        "messages queued per client (default 1000)",
        "N",
    );
    o.optopt(
        "",
        "queue-full",
        "when an online subscriber's queue is full: 'block' its publishers until it drains, or 'drop' (default block)",
        "POLICY",
    );
    o.optopt(
        "",
        "queue-overflow",
        "when a queue is full drop the 'newest' or 'oldest' message (default newest)",
        "POLICY",
    );
    o.optopt(
        "",
        "max-outgoing-bytes",
        "output buffered per client before QoS 0 is dropped (default 1048576)",
        "BYTES",
    );
    o.optopt(
        "",
        "connect-timeout",
        "seconds a new connection has to send CONNECT (default 10)",
        "SECS",
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

fn number<T: std::str::FromStr>(
    m: &getopts::Matches,
    name: &str,
    into: &mut T,
) -> Result<(), String> {
    if let Some(v) = m.opt_str(name) {
        *into = v
            .parse()
            .map_err(|_| format!("--{name}: '{v}' is not a valid number"))?;
    }
    Ok(())
}

fn config_from(m: &getopts::Matches) -> Result<Config, String> {
    let mut c = Config::default();
    let mut port: u16 = 1883;
    number(m, "port", &mut port)?;
    let binds = m.opt_strs("bind");
    let addrs: Vec<IpAddr> = if binds.is_empty() {
        vec![IpAddr::from([127, 0, 0, 1])]
    } else {
        binds
            .iter()
            .map(|b| {
                b.parse()
                    .map_err(|_| format!("--bind: '{b}' is not an IP address"))
            })
            .collect::<Result<_, _>>()?
    };
    c.listen = addrs
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    number(m, "max-connections", &mut c.max_connections)?;
    number(m, "max-packet-size", &mut c.max_packet_size)?;
    if c.max_packet_size > midge::codec::MAX_REMAINING_LENGTH {
        return Err("--max-packet-size: at most 268435455".into());
    }
    number(m, "max-inflight", &mut c.max_inflight)?;
    if c.max_inflight == 0 || c.max_inflight > 65_535 {
        return Err("--max-inflight: between 1 and 65535".into());
    }
    number(m, "max-queued", &mut c.max_queued)?;
    number(m, "max-outgoing-bytes", &mut c.max_outgoing_bytes)?;
    let mut secs: u64 = c.connect_timeout.as_secs();
    number(m, "connect-timeout", &mut secs)?;
    c.connect_timeout = Duration::from_secs(secs.max(1));
    c.queue_overflow = match m.opt_str("queue-overflow").as_deref() {
        None | Some("newest") => Overflow::DropNewest,
        Some("oldest") => Overflow::DropOldest,
        Some(v) => return Err(format!("--queue-overflow: 'newest' or 'oldest', not '{v}'")),
    };
    c.queue_full = match m.opt_str("queue-full").as_deref() {
        None | Some("block") => QueueFull::Block,
        Some("drop") => QueueFull::Drop,
        Some(v) => return Err(format!("--queue-full: 'block' or 'drop', not '{v}'")),
    };
    c.queue_qos0 = m.opt_present("queue-qos0");
    c.allow_zero_length_client_id = !m.opt_present("no-zero-length-client-id");
    Ok(c)
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
    let level = match m.opt_count("verbose") {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let config = match config_from(&m) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("midge: {e}");
            return ExitCode::from(2);
        }
    };
    let result = Broker::new(config).and_then(|mut broker| {
        broker.handle_signals()?;
        log::info!("midge {} running", env!("CARGO_PKG_VERSION"));
        broker.run()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
