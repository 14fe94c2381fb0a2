//! What each fuzz target does with its input: shared by the cargo-fuzz
//! targets (`fuzz_targets/`) and the corpus replay on stable
//! (`tests/fuzz_corpus.rs`), which includes this file. Every input must
//! come back without a panic, as it would from a peer or a file.

use bytes::BytesMut;
use midge::auth::{Acl, PasswordFile};
use midge::protocol::{self, Limits, ProtocolLevel, Role};
use midge::{conffile, store, Access, Config};

// The `engine` target's driver and the packets its scripts send.
#[path = "engine_driver.rs"]
mod engine_driver;
#[path = "engine_packets.rs"]
mod engine_packets;
#[path = "engine_storage.rs"]
mod engine_storage;

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("codec", codec),
    ("config", config),
    ("password", password),
    ("acl", acl),
    ("store", store),
    ("engine", engine),
];

/// The codec, as the broker's reader and a client's use it: the first
/// byte picks the protocol level (none yet: CONNECT, or 3.1, 3.1.1, 5),
/// the role whose packets are read, and whether MQTT 5 CONNECTs are
/// decoded; the rest is read packet by packet until it runs out or fails.
pub fn codec(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let level = match pick & 3 {
        0 => None,
        1 => Some(ProtocolLevel::V31),
        2 => Some(ProtocolLevel::V311),
        _ => Some(ProtocolLevel::V5),
    };
    let role = if pick & 4 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let limits = Limits {
        max_remaining_length: 1 << 20,
        mqtt5: pick & 8 == 0,
    };
    let _ = protocol::bytes_wanted(rest);
    let mut buf = BytesMut::from(rest);
    // Each packet takes at least two bytes: this many rounds read them all.
    for _ in 0..=rest.len() / 2 {
        match protocol::decode(&mut buf, level, role, &limits) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

/// A configuration file (mosquitto.conf's format). Left out: `include_dir`
/// (it reads other files) and host names in `listener`/`bind_address`
/// (they would be looked up in DNS; IP addresses are parsed).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include_dir") || text.lines().any(names_a_host) {
        return;
    }
    let mut config = Config::default();
    if conffile::parse(text, &mut config).is_ok() {
        let _ = config.max_remaining_length();
    }
}

/// True if `line` gives a listener or bind address that is not an IP
/// address, read as `conffile` reads the line.
fn names_a_host(line: &str) -> bool {
    let line = line.trim();
    let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let host = match key {
        "listener" => value.split_whitespace().nth(1),
        "bind_address" => Some(value.trim()),
        _ => return false,
    };
    host.is_some_and(|h| h.parse::<std::net::IpAddr>().is_err())
}

/// A password file. Only parsed: a check would hash with the file's own
/// iteration count (up to 10 million).
pub fn password(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PasswordFile::parse(text);
    }
}

/// An ACL file, and a few decisions with it (pattern substitution,
/// wildcard filters against rules).
pub fn acl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(acl) = Acl::parse(text) else {
        return;
    };
    for (user, access, topic) in [
        (Some("u"), Access::Publish, "a/b/c"),
        (Some("u"), Access::Subscribe, "a/+/#"),
        (None, Access::Subscribe, "#"),
        (Some("%u"), Access::Publish, "$SYS/x"),
    ] {
        let _ = acl.verdict("client", user, access, topic);
    }
}

/// The store's log, read as on start-up, and the same bytes as one
/// record's body (past the checksum a random input never matches).
pub fn store(data: &[u8]) {
    let (_, good) = store::read_log_bytes(data);
    assert!(good <= data.len());
    let _ = store::decode_record(data);
}

/// The engine as the event loop drives it, over a script of operations by
/// up to four clients with a moving clock (see `engine_driver.rs`).
pub fn engine(data: &[u8]) {
    engine_driver::run(data);
}
