//! Broker settings with the defaults a small embedded machine wants.

use crate::protocol::{QoS, MAX_REMAINING_LENGTH};
use crate::session::Overflow;
use std::net::SocketAddr;
use std::time::Duration;

/// Policy for an online subscriber whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFull {
    /// Stop reading PUBLISHes from the connections that feed the full queue
    /// until it drains: TCP pushes back on the publishers, and nothing the
    /// broker acknowledged is dropped. The default.
    Block,
    /// Drop per `queue_overflow` and count it (mosquitto's behaviour).
    Drop,
}

/// What a listener's clients speak. Only MQTT over plain TCP today; TLS
/// and WebSocket listeners will be further kinds, each with its own
/// `transport` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerKind {
    #[default]
    Mqtt,
}

/// The settings mosquitto keeps per listener even without
/// `per_listener_settings`, of those midge has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Clients this listener serves at once; 0: no limit of its own
    /// ([`Config::max_connections`], the total, still applies).
    pub max_connections: usize,
    /// The user name replaces the client id, so one user cannot take over
    /// another's session; a client without a user name gets CONNACK 5
    /// (mosquitto `use_username_as_clientid`).
    pub use_username_as_client_id: bool,
}

/// One listener: where, what it speaks, and its own settings.
/// (`per_listener_settings true` will add an `Option<Security>` here that
/// replaces [`Config::security`] for this listener's clients.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Port 0 picks a free port (see [`crate::Broker::local_addrs`]).
    pub addr: SocketAddr,
    pub kind: ListenerKind,
    pub settings: ListenerSettings,
}

impl ListenerConfig {
    /// An MQTT listener on `addr` with default settings.
    pub fn mqtt(addr: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            addr,
            kind: ListenerKind::Mqtt,
            settings: ListenerSettings::default(),
        }
    }
}

/// Who may connect: mosquitto's security options, global while settings
/// per listener do not exist.
#[derive(Debug, Clone)]
pub struct Security {
    /// Whether clients without a user name may connect. `None`: yes, unless
    /// a password file is set. A config file that defines a listener
    /// makes it `Some(false)` unless it says otherwise (mosquitto 2, see
    /// [`crate::conffile`]).
    pub allow_anonymous: Option<bool>,
    /// mosquitto-format password file (`mosquitto_passwd`, `midge-passwd`).
    pub password_file: Option<std::path::PathBuf>,
    /// mosquitto-format ACL file.
    pub acl_file: Option<std::path::PathBuf>,
    /// Accept an empty client id (CleanSession 1 only) by assigning one.
    pub allow_zero_length_client_id: bool,
    /// Start of the client ids the broker assigns to clients that send an
    /// empty one (mosquitto `auto_id_prefix`); followed by `<pid>-<n>`.
    pub auto_id_prefix: String,
    /// Withhold a retained message from new subscribers once its publisher
    /// may no longer write to its topic (mosquitto `check_retain_source`,
    /// on by default as there; it costs an ACL check per retained message
    /// sent, only when an ACL file or authorizer is in force).
    pub check_retain_source: bool,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
            allow_zero_length_client_id: true,
            auto_id_prefix: "midge-".into(),
            check_retain_source: true,
        }
    }
}

/// The broker's settings in sections: listeners, security, and the rest
/// (global). Bridges (mosquitto's `connection NAME` sections) will be one
/// more list here.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect, each listener with its own settings.
    pub listeners: Vec<ListenerConfig>,
    pub security: Security,
    /// Largest accepted Remaining Length (the standard allows 256 MiB - 1).
    /// A larger packet closes its connection.
    pub max_packet_size: usize,
    /// Largest PUBLISH payload, and Will payload, accepted (mosquitto:
    /// `message_size_limit`); 0: none but `max_packet_size`. As in
    /// mosquitto, a larger PUBLISH is acknowledged and dropped, a CONNECT
    /// with a larger Will refused with CONNACK 5.
    pub message_size_limit: usize,
    /// Most outbound QoS 1/2 messages in flight per client (mosquitto:
    /// `max_inflight_messages`). A connection's window starts at
    /// [`crate::session::START_WINDOW`] (or this, if lower) and grows
    /// while the client keeps up, up to this. 0: no maximum (as in
    /// mosquitto) but the 65,535 packet ids.
    pub max_inflight: usize,
    /// Payload bytes of outbound QoS 1/2 messages in flight per client
    /// (mosquitto: `max_inflight_bytes`; 0: no limit): a message is put in
    /// flight only while fewer are, so one larger message still goes, alone.
    pub max_inflight_bytes: usize,
    /// Deliver at the subscription's QoS even when the message was
    /// published at a lower one (mosquitto: `upgrade_outgoing_qos`; the
    /// standard forbids it [MQTT-3.8.4-6]).
    pub upgrade_outgoing_qos: bool,
    /// Messages queued per session behind the in-flight window, online or
    /// offline (mosquitto: `max_queued_messages`). 0: no maximum (as in
    /// mosquitto; `max_queued_bytes` may still bound the queue).
    pub max_queued: usize,
    /// What to drop when an offline session's queue is full (and an online
    /// one's, with [`QueueFull::Drop`]).
    pub queue_overflow: Overflow,
    /// What to do when an online subscriber's queue is full.
    pub queue_full: QueueFull,
    /// With [`QueueFull::Block`]: an online subscriber to which nothing
    /// could be sent for this long (its in-flight window full without an
    /// acknowledgement, or its socket not draining) while messages wait for
    /// it no longer holds publishers back: it is disconnected (its
    /// persistent session then queues offline, dropping past the limits,
    /// counted). Zero: never.
    pub stall_timeout: Duration,
    /// Bytes that may wait in one client's output buffer before QoS 0
    /// messages to it are dropped and QoS 1/2 ones wait in its queue. Also
    /// stops reading from a client whose replies it does not read.
    pub max_outgoing_bytes: usize,
    /// Bytes the broker may hold for connections together (mosquitto:
    /// `memory_limit`; 0: no limit): the frames they are reading (each
    /// counted in full from its header), their output, their parked
    /// PUBLISHes and their Wills. A frame larger than this is refused from its header; one
    /// that does not fit beside what is held waits, unread, until it does
    /// (frames up to 16 KiB are always read, so acknowledgements flow).
    pub memory_limit: usize,
    /// Simultaneous client connections over all listeners; 0 means no
    /// limit beyond the process's file descriptors (each listener may have
    /// its own limit too, [`ListenerSettings::max_connections`]).
    pub max_connections: usize,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0: bool,
    /// Payload bytes queued per session (0: no limit besides
    /// `max_queued`; mosquitto `max_queued_bytes`).
    pub max_queued_bytes: usize,
    /// Longest Keep Alive accepted; a CONNECT asking for more (or for 0,
    /// "never") is refused with CONNACK 2, as mosquitto does for MQTT 3.x.
    /// 0 accepts any.
    pub max_keepalive: u16,
    /// Most levels in a topic name (PUBLISH, Will) or a SUBSCRIBE filter;
    /// a deeper one is a protocol violation that closes the connection.
    pub max_topic_levels: usize,
    /// The highest QoS accepted from and granted to clients (mosquitto
    /// `max_qos`): MQTT 5 clients are told in CONNACK; a 3.x client's
    /// subscription is granted at most this, and its PUBLISH above it
    /// closes the connection, as in mosquitto.
    pub max_qos: QoS,
    /// Whether retained messages are kept (mosquitto `retain_available`).
    /// When false, MQTT 5 clients are told, and a PUBLISH with RETAIN
    /// closes the connection (MQTT 5: DISCONNECT 0x9A).
    pub retain_available: bool,
    /// Topic Aliases an MQTT 5 client may set toward midge, and the most
    /// midge sets toward a client (mosquitto `max_topic_alias`, 10; 0:
    /// none).
    pub max_topic_alias: u16,
    /// How often `$SYS/broker/...` statistics are published (zero: never).
    pub sys_interval: Duration,
    /// Keep sessions and retained messages across restarts
    /// (mosquitto `persistence`), in `persistence_location`.
    pub persistence: bool,
    /// Directory of the store (default: the working directory, as
    /// mosquitto).
    pub persistence_location: Option<std::path::PathBuf>,
    /// When stored changes reach the disk.
    pub fsync: crate::store::Fsync,
    /// Offline persistent sessions older than this are deleted (mosquitto
    /// `persistent_client_expiration`); `None` keeps them forever.
    pub session_expiry: Option<Duration>,
    /// Bytes the store may use (0: no limit). Compaction runs when it is
    /// exceeded; if the live state alone exceeds it, messages for offline
    /// sessions are dropped (counted, logged) instead of stored.
    pub persistence_max_bytes: u64,
    /// Only clients whose id starts with this may connect; others get
    /// CONNACK 2 (mosquitto `clientid_prefixes`).
    pub client_id_prefix: Option<String>,
    /// Per-listener settings given outside a listener's section: every
    /// listener starts from them.
    listener_defaults: ListenerSettings,
    /// A `listener` option was given: it replaces the default address.
    listener_set: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listeners: vec![ListenerConfig::mqtt(SocketAddr::from((
                [127, 0, 0, 1],
                1883,
            )))],
            security: Security::default(),
            max_packet_size: MAX_REMAINING_LENGTH,
            message_size_limit: 0,
            max_inflight: 1000,
            max_inflight_bytes: 0,
            upgrade_outgoing_qos: false,
            max_queued: 1000,
            queue_overflow: Overflow::DropNewest,
            queue_full: QueueFull::Block,
            stall_timeout: Duration::from_secs(5),
            max_outgoing_bytes: 1024 * 1024,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_connections: 0,
            connect_timeout: Duration::from_secs(10),
            queue_qos0: false,
            max_queued_bytes: 0,
            max_keepalive: 0,
            max_topic_levels: 200,
            max_qos: QoS::ExactlyOnce,
            retain_available: true,
            max_topic_alias: 10,
            sys_interval: Duration::from_secs(10),
            persistence: false,
            persistence_location: None,
            fsync: crate::store::Fsync::Always,
            persistence_max_bytes: 0,
            client_id_prefix: None,
            session_expiry: None,
            listener_defaults: ListenerSettings::default(),
            listener_set: false,
        }
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: '{value}' is not a valid value"))
}

/// An address to listen on: an IP address, or a host name such as
/// `localhost`, resolved once at start. A name listens on its first IPv4
/// address, or its first address if it has none (mosquitto listens on every
/// address of the name).
pub fn parse_host(key: &str, value: &str) -> Result<std::net::IpAddr, String> {
    use std::net::ToSocketAddrs;
    let value = value.trim();
    if let Ok(ip) = value.parse() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = (value, 0)
        .to_socket_addrs()
        .map_err(|e| format!("{key}: cannot resolve '{value}': {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| format!("{key}: '{value}' has no address"))
}

/// Longest duration an option takes: deadlines are `Instant + duration`,
/// which must not overflow whatever a config file says.
const MAX_SECS: u64 = 100 * 365 * 86_400;

fn seconds(n: u64) -> Duration {
    Duration::from_secs(n.min(MAX_SECS))
}

/// mosquitto's durations: a number with a unit h, d, w, m (30 days) or y
/// (365 days); midge also takes s, or plain seconds.
fn parse_duration(key: &str, value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let n: u64 = parse(key, digits)?;
    let secs = match unit {
        's' => 1,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'm' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => {
            return Err(format!(
                "{key}: unit must be s, h, d, w, m or y, not '{unit}'"
            ))
        }
    };
    if n == 0 {
        return Err(format!("{key}: must be more than 0"));
    }
    Ok(seconds(n.saturating_mul(secs)))
}

/// mosquitto's `max_connections`: -1 (any negative) for unlimited, as 0.
fn parse_max_connections(key: &str, value: &str) -> Result<usize, String> {
    let n: i64 = parse(key, value)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A listener's `protocol`: plain MQTT is all midge speaks.
fn parse_kind(key: &str, value: &str) -> Result<ListenerKind, String> {
    match value {
        "mqtt" => Ok(ListenerKind::Mqtt),
        _ => Err(format!(
            "{key} {value}: midge has only MQTT listeners (no WebSocket)"
        )),
    }
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}: '{value}' is not true or false")),
    }
}

/// What a packet holds besides one payload, at most: a CONNECT's fixed
/// header, client id, Will topic, user name and password (each up to
/// 65,535 bytes plus its length), or a PUBLISH's topic and packet id.
const PACKET_BESIDES_PAYLOAD: usize = 16 + 4 * (2 + 65_535);

/// The default `memory_limit`: 64 MiB, a budget a 512 MiB or 1 GB
/// machine (a Pi, a router) can spare beside its other work.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;

impl Config {
    /// The longest packet (Remaining Length) read: `max_packet_size`, or
    /// less with a `message_size_limit` or a `memory_limit`, so a packet
    /// that could only carry a payload over the limit, or never fit the
    /// budget, is refused from its header before its body is buffered.
    pub fn max_remaining_length(&self) -> usize {
        let max = match self.message_size_limit {
            0 => self.max_packet_size,
            n => self
                .max_packet_size
                .min(n.saturating_add(2 + PACKET_BESIDES_PAYLOAD)),
        };
        match self.memory_limit {
            0 => max,
            n => max.min(n),
        }
    }

    /// Sets one option by name from text, with mosquitto's option names
    /// where mosquitto has the option (`port`, `bind_address`,
    /// `listener PORT [ADDRESS]`, `max_connections`, `max_inflight_messages`,
    /// `max_inflight_bytes`, `upgrade_outgoing_qos`,
    /// `max_queued_messages`, `message_size_limit`, `queue_qos0_messages`,
    /// `allow_zero_length_clientid`) and midge's own names for the rest
    /// (`max_outgoing_bytes`, `connect_timeout`, `queue_full`, `memory_limit`,
    /// `queue_overflow`, `max_topic_levels`); also `max_queued_bytes`, `max_keepalive`,
    /// `max_packet_size`, `allow_anonymous`, `password_file`, `acl_file`,
    /// `check_retain_source`, `sys_interval`. The C API and config files use this.
    ///
    /// `port` and `bind_address` change the first listen address;
    /// `listener` adds one (the first `listener` replaces the default).
    /// Options mosquitto keeps per listener apply here to every listener
    /// (`use_username_as_clientid`, `protocol`) or to all of them together
    /// (`max_connections`, a total); [`Config::set_on_listener`] gives
    /// one listener its own.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        match key {
            "port" => {
                let port: u16 = parse(key, v)?;
                self.first_listener().set_port(port);
            }
            "bind_address" => {
                let ip = parse_host(key, v)?;
                self.first_listener().set_ip(ip);
            }
            "listener" => {
                let mut parts = v.split_whitespace();
                let port: u16 = parse(key, parts.next().unwrap_or(""))?;
                let ip: std::net::IpAddr = match parts.next() {
                    Some(a) => parse_host(key, a)?,
                    None => std::net::IpAddr::from([0, 0, 0, 0]),
                };
                if !self.listener_set {
                    self.listeners.clear();
                    self.listener_set = true;
                }
                self.listeners
                    .push(self.new_listener(SocketAddr::new(ip, port)));
            }
            "max_connections" => self.max_connections = parse_max_connections(key, v)?,
            "max_inflight_messages" => {
                let n: usize = parse(key, v)?;
                if n > 65_535 {
                    return Err(format!("{key}: at most 65535 (0: no maximum)"));
                }
                self.max_inflight = n;
            }
            "max_inflight_bytes" => self.max_inflight_bytes = parse(key, v)?,
            "upgrade_outgoing_qos" => self.upgrade_outgoing_qos = parse_bool(key, v)?,
            "max_queued_messages" => self.max_queued = parse(key, v)?,
            "message_size_limit" => {
                let n: usize = parse(key, v)?;
                if n > MAX_REMAINING_LENGTH {
                    return Err(format!("{key}: at most {MAX_REMAINING_LENGTH}"));
                }
                self.message_size_limit = n;
            }
            "max_outgoing_bytes" => self.max_outgoing_bytes = parse(key, v)?,
            "memory_limit" => self.memory_limit = parse(key, v)?,
            "connect_timeout" => {
                let secs: u64 = parse(key, v)?;
                self.connect_timeout = seconds(secs.max(1));
            }
            "stall_timeout" => self.stall_timeout = seconds(parse(key, v)?),
            "queue_full" => {
                self.queue_full = match v {
                    "block" => QueueFull::Block,
                    "drop" => QueueFull::Drop,
                    _ => return Err(format!("{key}: 'block' or 'drop', not '{v}'")),
                }
            }
            "queue_overflow" => {
                self.queue_overflow = match v {
                    "newest" => Overflow::DropNewest,
                    "oldest" => Overflow::DropOldest,
                    _ => return Err(format!("{key}: 'newest' or 'oldest', not '{v}'")),
                }
            }
            "queue_qos0_messages" => self.queue_qos0 = parse_bool(key, v)?,
            "max_queued_bytes" => self.max_queued_bytes = parse(key, v)?,
            "max_keepalive" => self.max_keepalive = parse(key, v)?,
            "max_topic_levels" => {
                let n: usize = parse(key, v)?;
                if n == 0 {
                    return Err(format!("{key}: at least 1"));
                }
                self.max_topic_levels = n;
            }
            "max_qos" => {
                self.max_qos = match v {
                    "0" => QoS::AtMostOnce,
                    "1" => QoS::AtLeastOnce,
                    "2" => QoS::ExactlyOnce,
                    _ => return Err(format!("{key}: 0, 1 or 2, not '{v}'")),
                }
            }
            "retain_available" => self.retain_available = parse_bool(key, v)?,
            "max_topic_alias" => self.max_topic_alias = parse(key, v)?,
            "allow_anonymous" => self.security.allow_anonymous = Some(parse_bool(key, v)?),
            "password_file" => self.security.password_file = Some(v.into()),
            "acl_file" => self.security.acl_file = Some(v.into()),
            "check_retain_source" => self.security.check_retain_source = parse_bool(key, v)?,
            "sys_interval" => self.sys_interval = seconds(parse(key, v)?),
            "persistence" => self.persistence = parse_bool(key, v)?,
            "persistence_location" => self.persistence_location = Some(v.into()),
            "persistence_max_bytes" => self.persistence_max_bytes = parse(key, v)?,
            "auto_id_prefix" => {
                if v.len() > 50 || v.contains(['+', '#', '/']) {
                    return Err(format!("{key}: at most 50 characters, no '+', '#' or '/'"));
                }
                self.security.auto_id_prefix = v.into();
            }
            "clientid_prefixes" => self.client_id_prefix = Some(v.into()),
            "use_username_as_clientid" => {
                let on = parse_bool(key, v)?;
                self.listener_defaults.use_username_as_client_id = on;
                for l in &mut self.listeners {
                    l.settings.use_username_as_client_id = on;
                }
            }
            "protocol" => {
                let kind = parse_kind(key, v)?;
                for l in &mut self.listeners {
                    l.kind = kind;
                }
            }
            "persistent_client_expiration" => self.session_expiry = Some(parse_duration(key, v)?),
            "fsync" => {
                self.fsync = match v {
                    "always" => crate::store::Fsync::Always,
                    secs => {
                        let n: u64 = parse(key, secs)?;
                        if n == 0 {
                            return Err(format!("{key}: 'always' or a number of seconds > 0"));
                        }
                        crate::store::Fsync::Every(seconds(n))
                    }
                }
            }
            "max_packet_size" => {
                // mosquitto's max_packet_size counts the whole packet.
                let n: usize = parse(key, v)?;
                self.max_packet_size = n.clamp(2, MAX_REMAINING_LENGTH + 5) - 2;
            }
            "allow_zero_length_clientid" => {
                self.security.allow_zero_length_client_id = parse_bool(key, v)?
            }
            _ => return Err(format!("unknown option '{key}'")),
        }
        Ok(())
    }

    /// Where the store lives, if persistence is on.
    pub fn persistence_dir(&self) -> Option<std::path::PathBuf> {
        self.persistence.then(|| {
            self.persistence_location
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from("."))
        })
    }

    /// Sets an option inside listener `index`'s section of a config file:
    /// the options mosquitto keeps per listener (`max_connections`,
    /// `use_username_as_clientid`, `protocol`) apply to that listener
    /// only, any other as [`Config::set`] does.
    pub fn set_on_listener(&mut self, index: usize, key: &str, value: &str) -> Result<(), String> {
        let Some(listener) = self.listeners.get_mut(index) else {
            return self.set(key, value);
        };
        let v = value.trim();
        match key {
            "max_connections" => listener.settings.max_connections = parse_max_connections(key, v)?,
            "use_username_as_clientid" => {
                listener.settings.use_username_as_client_id = parse_bool(key, v)?
            }
            "protocol" => listener.kind = parse_kind(key, v)?,
            _ => return self.set(key, value),
        }
        Ok(())
    }

    /// Replaces the listeners with MQTT listeners on `addrs` (what `-p`
    /// and `-b` do), with the settings given outside any listener section.
    pub fn listen_on(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.listeners = addrs.into_iter().map(|a| self.new_listener(a)).collect();
    }

    /// The listeners' addresses, in order.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|l| l.addr).collect()
    }

    fn new_listener(&self, addr: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            settings: self.listener_defaults.clone(),
            ..ListenerConfig::mqtt(addr)
        }
    }

    fn first_listener(&mut self) -> &mut SocketAddr {
        if self.listeners.is_empty() {
            let addr = SocketAddr::from(([127, 0, 0, 1], 1883));
            self.listeners.push(self.new_listener(addr));
        }
        &mut self.listeners[0].addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_options_and_listener_protocol() {
        let mut c = Config::default();
        c.set("auto_id_prefix", "auto-").unwrap();
        c.set("clientid_prefixes", "sensor-").unwrap();
        c.set("use_username_as_clientid", "true").unwrap();
        assert_eq!(c.security.auto_id_prefix, "auto-");
        assert_eq!(c.client_id_prefix.as_deref(), Some("sensor-"));
        assert!(c.listeners[0].settings.use_username_as_client_id);
        assert!(c.set("auto_id_prefix", "a/b").is_err());
        c.set("protocol", "mqtt").unwrap();
        let e = c.set("protocol", "websockets").unwrap_err();
        assert!(e.contains("no WebSocket"), "{e}");
    }

    #[test]
    fn message_size_limit_bounds_the_packets_read() {
        let mut c = Config {
            memory_limit: 0,
            ..Config::default()
        };
        assert_eq!(c.max_remaining_length(), MAX_REMAINING_LENGTH);
        c.set("message_size_limit", "1000").unwrap();
        assert_eq!(c.max_remaining_length(), 1000 + 2 + PACKET_BESIDES_PAYLOAD);
        c.set("max_packet_size", "502").unwrap();
        assert_eq!(c.max_remaining_length(), 500);
    }

    #[test]
    fn memory_limit_bounds_the_packets_read() {
        let mut c = Config::default();
        assert_eq!(c.max_remaining_length(), DEFAULT_MEMORY_LIMIT);
        c.set("memory_limit", "1000000").unwrap();
        assert_eq!(c.max_remaining_length(), 1_000_000);
        c.set("memory_limit", "0").unwrap();
        assert_eq!(c.max_remaining_length(), MAX_REMAINING_LENGTH);
    }

    #[test]
    fn options_by_name() {
        let mut c = Config::default();
        c.set("port", "1884").unwrap();
        c.set("bind_address", "0.0.0.0").unwrap();
        assert_eq!(c.listen_addrs(), vec!["0.0.0.0:1884".parse().unwrap()]);
        c.set("max_connections", "-1").unwrap();
        assert_eq!(c.max_connections, 0);
        c.set("max_inflight_messages", "5").unwrap();
        c.set("message_size_limit", "0").unwrap();
        assert_eq!(c.max_packet_size, MAX_REMAINING_LENGTH);
        c.set("queue_full", "drop").unwrap();
        assert_eq!(c.queue_full, QueueFull::Drop);
        c.set("listener", "1900 127.0.0.1").unwrap();
        c.set("listener", "1901").unwrap();
        assert_eq!(
            c.listen_addrs(),
            vec![
                "127.0.0.1:1900".parse().unwrap(),
                "0.0.0.0:1901".parse().unwrap()
            ]
        );
        c.set("persistent_client_expiration", "2d").unwrap();
        assert_eq!(c.session_expiry, Some(Duration::from_secs(2 * 86_400)));
        c.set("persistent_client_expiration", "90").unwrap();
        assert_eq!(c.session_expiry, Some(Duration::from_secs(90)));
        assert!(c.set("persistent_client_expiration", "3q").is_err());
        // Absurd durations are capped, never an overflowing deadline.
        c.set("connect_timeout", &u64::MAX.to_string()).unwrap();
        c.set("sys_interval", &u64::MAX.to_string()).unwrap();
        c.set("persistent_client_expiration", &format!("{}y", u64::MAX))
            .unwrap();
        let _ = std::time::Instant::now() + c.connect_timeout + c.sys_interval;
        assert!(c.set("max_inflight_messages", "65536").is_err());
        assert!(c.set("queue_full", "maybe").is_err());
        assert!(c
            .set("no_such_option", "1")
            .unwrap_err()
            .contains("unknown option"));
    }
}
