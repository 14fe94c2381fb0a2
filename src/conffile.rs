//! Configuration files in mosquitto.conf's format: one `key value` per line,
//! `#` comments, several `listener PORT [ADDRESS]` lines.
//!
//! Options midge implements are applied with [`Config::set`] (same names as
//! mosquitto); after a `listener` line, the options mosquitto keeps per
//! listener apply to that listener ([`Config::set_on_listener`]), until the
//! next `listener` line or the end of the file. Options that only tune
//! mosquitto's internals are accepted with a warning naming the line.
//! Anything else is an error with the line number: an ignored option could
//! silently change security.
//!
//! Anonymous clients, as in mosquitto 2: a file that defines a listener
//! (`listener`, `port` or `bind_address`) refuses them unless it says
//! `allow_anonymous true`; without one the broker stays on 127.0.0.1
//! ("local only") and the default of [`crate::config::Security`] holds.

use crate::config::{parse_bool, Config};
use std::path::{Path, PathBuf};

/// Where the binary sends its log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogDest {
    #[default]
    Stderr,
    Stdout,
    File(PathBuf),
    /// The local syslog socket ([`crate::syslog`]).
    Syslog,
}

/// Settings for the binary rather than the broker library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// Every `log_dest` line's destination, all used at once (as in
    /// mosquitto); `None` without a `log_dest` line (stderr), empty after
    /// `log_dest none`.
    pub log_dests: Option<Vec<LogDest>>,
    /// `log_facility N`: syslog facility local0..local7 instead of daemon.
    pub log_facility: Option<u8>,
    /// `log_timestamp false` turns the time stamp off.
    pub log_timestamp: Option<bool>,
    /// `log_timestamp_format`: a strftime format, in local time.
    pub log_timestamp_format: Option<String>,
    /// From `log_type` lines: the most verbose type named, or `off` for
    /// `none`. `None` when the file has no `log_type`.
    pub log_level: Option<log::LevelFilter>,
    /// The levels the `log_type` lines name, each on its own as in
    /// mosquitto (`log_type warning` alone shows no errors); `none`
    /// removes those named before it.
    pub log_types: Vec<log::Level>,
    pub pid_file: Option<PathBuf>,
    /// Warnings to log once logging is set up.
    pub warnings: Vec<String>,
    /// The file defines a listener (`listener`, `port` or `bind_address`).
    pub defines_listener: bool,
}

/// mosquitto options that tune its own internals or features midge does
/// differently; accepted with a warning.
const TUNING_ONLY: &[(&str, &str)] = &[
    ("autosave_interval", "midge does not snapshot its state"),
    ("autosave_on_changes", "midge does not snapshot its state"),
    ("persistence_file", "midge does not snapshot its state"),
    ("retry_interval", "MQTT 3.1.1 resends only on reconnect"),
    ("store_clean_interval", "no such store in midge"),
    ("set_tcp_nodelay", "midge always sets TCP_NODELAY"),
    (
        "allow_duplicate_messages",
        "midge delivers one copy per client",
    ),
    (
        "connection_messages",
        "midge always logs connections at info level",
    ),
    ("user", "run midge as the user you want (systemd User=)"),
    ("websockets_log_level", "midge has no WebSocket listener"),
];

/// mosquitto options midge does not have, by the feature they belong to:
/// an error that says so, rather than "unknown" as if misspelt. An entry
/// ending in `_` is a prefix (`plugin_opt_NAME`).
const NOT_SUPPORTED: &[(&str, &[&str])] = &[
    (
        "TLS, not done yet: put a TLS proxy (stunnel, nginx) in front",
        &[
            "cafile",
            "capath",
            "certfile",
            "keyfile",
            "ciphers",
            "ciphers_tls1.3",
            "crlfile",
            "dhparamfile",
            "require_certificate",
            "tls_version",
            "tls_engine",
            "tls_engine_kpass_sha1",
            "tls_keyform",
            "use_identity_as_username",
            "use_subject_as_username",
            "psk_hint",
            "psk_file",
        ],
    ),
    (
        "bridges, not done yet",
        &[
            "connection",
            "address",
            "addresses",
            "topic",
            "bridge_",
            "cleansession",
            "idle_timeout",
            "keepalive_interval",
            "local_clientid",
            "local_password",
            "local_username",
            "notifications",
            "notifications_local_only",
            "notification_topic",
            "remote_clientid",
            "remote_password",
            "remote_username",
            "restart_timeout",
            "round_robin",
            "start_type",
            "threshold",
            "try_private",
        ],
    ),
    (
        "plugins: the embedding API has an authenticator and an authorizer instead",
        &[
            "plugin",
            "plugin_opt_",
            "auth_plugin",
            "auth_opt_",
            "plugin_load",
            "plugin_use",
            "global_plugin",
        ],
    ),
    (
        "WebSocket listeners, not done yet",
        &["http_dir", "websockets_headers_size"],
    ),
    (
        "listener options not done yet",
        &[
            "mount_point",
            "socket_domain",
            "bind_interface",
            "accept_protocol_versions",
        ],
    ),
];

/// The feature a mosquitto option midge lacks belongs to.
fn not_supported(key: &str) -> Option<&'static str> {
    let listed = |name: &&str| match name.ends_with('_') {
        true => key.len() > name.len() && key.starts_with(name),
        false => key == *name,
    };
    NOT_SUPPORTED
        .iter()
        .find(|(_, names)| names.iter().any(listed))
        .map(|(feature, _)| *feature)
}

fn level_of(log_type: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match log_type {
        "none" => Off,
        "error" => Error,
        "warning" => Warn,
        "notice" | "information" | "subscribe" | "unsubscribe" => Info,
        "debug" | "all" => Debug,
        "websockets" => Off,
        _ => return None,
    })
}

/// Adds the levels of one (valid) `log_type` to `types`.
fn log_types(log_type: &str, types: &mut Vec<log::Level>) {
    use log::Level::*;
    let named: &[log::Level] = match log_type {
        "none" => {
            types.clear();
            return;
        }
        "error" => &[Error],
        "warning" => &[Warn],
        "notice" | "information" | "subscribe" | "unsubscribe" => &[Info],
        "debug" => &[Debug],
        "all" => &[Error, Warn, Info, Debug],
        _ => &[],
    };
    for level in named {
        if !types.contains(level) {
            types.push(*level);
        }
    }
}

/// Applies a configuration file's text to `config`.
pub fn parse(text: &str, config: &mut Config) -> Result<ProcessSettings, String> {
    let mut out = ProcessSettings::default();
    apply(text, config, &mut out, true)?;
    if out.defines_listener && config.security.allow_anonymous.is_none() {
        // mosquitto 2: a listener from a config file requires
        // authentication unless allow_anonymous says otherwise.
        config.security.allow_anonymous = Some(false);
    }
    Ok(out)
}

/// Applies one file's text; `main` is false for files read through
/// `include_dir`, which may not include further (as in mosquitto).
fn apply(
    text: &str,
    config: &mut Config,
    out: &mut ProcessSettings,
    main: bool,
) -> Result<(), String> {
    // The listener whose section this is (mosquitto: a file starts in the
    // global section).
    let mut section: Option<usize> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        let at = |msg: String| format!("line {line_no}: {msg}");
        match key {
            "include_dir" if !main => {
                return Err(at(
                    "include_dir is only allowed in the main configuration file".into(),
                ))
            }
            "include_dir" => {
                for path in conf_files(Path::new(value)).map_err(at)? {
                    include(&path, config, out)?;
                }
            }
            _ => {
                if let Some(warning) =
                    apply_option(config, &mut section, key, value, out).map_err(at)?
                {
                    out.warnings.push(at(warning));
                }
            }
        }
    }
    Ok(())
}

/// Applies one option other than `include_dir` (as a line of a file does,
/// in listener section `section`, which a `listener` line starts). A
/// warning for an option that is accepted but does nothing comes back as
/// `Some`; errors and warnings do not name a line.
pub fn apply_option(
    config: &mut Config,
    section: &mut Option<usize>,
    key: &str,
    value: &str,
    out: &mut ProcessSettings,
) -> Result<Option<String>, String> {
    if let Some(feature) = not_supported(key) {
        return Err(format!(
            "unknown option '{key}': mosquitto option not supported by midge ({feature})"
        ));
    }
    if value.is_empty() {
        // A file name left out would otherwise be an error about "" later,
        // with no line to look at.
        return Err(format!("{key} needs a value"));
    }
    if let Some((_, why)) = TUNING_ONLY.iter().find(|(k, _)| *k == key) {
        return Ok(Some(format!("'{key}' ignored: {why}")));
    }
    match key {
        "log_dest" => return log_dest(value, out),
        "log_facility" => {
            out.log_facility = match value.parse::<u8>() {
                Ok(n) if n <= 7 => Some(n),
                _ => {
                    return Err(format!(
                        "log_facility: 0 to 7 (local0 to local7), not '{value}'"
                    ))
                }
            }
        }
        "log_timestamp" => out.log_timestamp = Some(parse_bool(key, value)?),
        "log_timestamp_format" => {
            crate::logging::check_stamp(value)?;
            out.log_timestamp_format = Some(value.into());
        }
        "log_type" => {
            let level = level_of(value).ok_or_else(|| format!("unknown log_type '{value}'"))?;
            out.log_level = Some(out.log_level.map_or(level, |l| l.max(level)));
            log_types(value, &mut out.log_types);
        }
        "pid_file" => out.pid_file = Some(value.into()),
        "per_listener_settings" => {
            if parse_bool(key, value)? {
                return Err(
                    "not supported yet: per_listener_settings true: midge's security \
                     settings are global, so one listener's password_file or \
                     allow_anonymous would apply to every listener"
                        .into(),
                );
            }
        }
        "listener" => {
            config.set(key, value)?;
            out.defines_listener = true;
            *section = config.listeners.len().checked_sub(1);
        }
        "port" | "bind_address" => {
            config.set(key, value)?;
            out.defines_listener = true;
        }
        _ => match *section {
            Some(i) => config.set_on_listener(i, key, value)?,
            None => config.set(key, value)?,
        },
    }
    Ok(None)
}

/// One `log_dest` line: adds a destination (the first line replaces the
/// default, stderr), or with `none` removes all so far, as in mosquitto.
/// A destination midge lacks is a warning.
fn log_dest(value: &str, out: &mut ProcessSettings) -> Result<Option<String>, String> {
    let mut parts = value.splitn(2, char::is_whitespace);
    let dest = match (parts.next(), parts.next().map(str::trim)) {
        (Some("none"), None) => {
            out.log_dests = Some(Vec::new());
            return Ok(None);
        }
        (Some("stderr"), None) => LogDest::Stderr,
        (Some("stdout"), None) => LogDest::Stdout,
        (Some("file"), Some(path)) if !path.is_empty() => LogDest::File(path.into()),
        (Some("syslog"), None) => LogDest::Syslog,
        (Some("topic") | Some("dlt"), _) => {
            return Ok(Some(format!(
                "log_dest {value}: mosquitto option not supported by midge (a log \
                 destination midge lacks); ignored"
            )))
        }
        _ => return Err(format!("log_dest: cannot use '{value}'")),
    };
    let dests = out.log_dests.get_or_insert_with(Vec::new);
    if !dests.contains(&dest) {
        dests.push(dest);
    }
    Ok(None)
}

/// Applies a file found by `include_dir`; its errors and warnings name it.
fn include(path: &Path, config: &mut Config, out: &mut ProcessSettings) -> Result<(), String> {
    let named = |e: String| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| named(e.to_string()))?;
    let before = out.warnings.len();
    apply(&text, config, out, false).map_err(named)?;
    for w in &mut out.warnings[before..] {
        *w = named(std::mem::take(w));
    }
    Ok(())
}

/// The `*.conf` files of an `include_dir` directory in mosquitto's order
/// (its `scmp_p`): letters compared without case, and where they differ
/// only in case the capital first: `00.conf`, `A.conf`, `a.conf`, `b.conf`.
fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("include_dir {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    let name = |p: &PathBuf| p.file_name().map(|n| n.as_encoded_bytes().to_vec());
    files.sort_by_key(|p| MosquittoOrder(name(p).unwrap_or_default()));
    Ok(files)
}

/// A file name compared as mosquitto sorts include files.
#[derive(PartialEq, Eq)]
struct MosquittoOrder(Vec<u8>);

impl Ord for MosquittoOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for (x, y) in self.0.iter().zip(&other.0) {
            let upper = x.to_ascii_uppercase().cmp(&y.to_ascii_uppercase());
            let order = upper.then(x.cmp(y));
            if order.is_ne() {
                return order;
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for MosquittoOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Reads and applies a configuration file.
pub fn load(path: &Path, config: &mut Config) -> Result<ProcessSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text, config).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_pi_config() {
        let text = "\
# midge on a Pi
max_connections 500
listener 1883 0.0.0.0
listener 8883
max_inflight_messages 10
max_queued_messages 200
message_size_limit 1048576
autosave_interval 1800
log_dest file /var/log/midge.log
log_type error
log_type warning
sys_interval 30
";
        let mut c = Config::default();
        let p = parse(text, &mut c).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(
            (c.max_connections, c.max_inflight, c.max_queued),
            (500, 10, 200)
        );
        assert_eq!(c.message_size_limit, 1_048_576);
        let file = LogDest::File("/var/log/midge.log".into());
        assert_eq!(p.log_dests, Some(vec![file]));
        assert_eq!(p.log_level, Some(log::LevelFilter::Warn));
        assert_eq!(p.log_types, [log::Level::Error, log::Level::Warn]);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].starts_with("line 8: 'autosave_interval' ignored"));
    }

    #[test]
    fn include_dir_reads_its_conf_files_in_order_and_names_them_in_errors() {
        let dir = std::env::temp_dir().join(format!("midge-conf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        // mosquitto's order is a.conf, B.conf, b.conf (byte order would put
        // B.conf first); the last one wins.
        write("a.conf", "max_connections 20\nautosave_interval 5\n");
        write("b.conf", "max_connections 30\n");
        write("B.conf", "max_connections 10\nmax_queued_messages 7\n");
        let names: Vec<String> = conf_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.conf", "B.conf", "b.conf"]);
        write("notes.txt", "this is not a config file\n");
        let main = format!("max_connections 5\ninclude_dir {}\n", dir.display());
        let mut c = Config::default();
        let p = parse(&main, &mut c).unwrap();
        assert_eq!((c.max_connections, c.max_queued), (30, 7));
        let a = dir.join("a.conf").display().to_string();
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].starts_with(&format!("{a}: line 2:")),
            "{:?}",
            p.warnings
        );

        write("b.conf", "max_connections 30\nbogus_option 1\n");
        let e = parse(&main, &mut c).unwrap_err();
        let b = dir.join("b.conf").display().to_string();
        assert!(
            e.starts_with(&format!("{b}: line 2: unknown option")),
            "{e}"
        );

        write("b.conf", "include_dir /etc\n");
        let e = parse(&main, &mut c).unwrap_err();
        assert!(e.contains("only allowed in the main"), "{e}");

        let e = parse("include_dir /nonexistent/midge\n", &mut c).unwrap_err();
        assert!(
            e.starts_with("line 1: include_dir /nonexistent/midge:"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn per_listener_options_belong_to_the_listener_section_they_are_in() {
        let text = "\
use_username_as_clientid true
max_connections 100
listener 1883
max_connections 5
listener 1884 127.0.0.1
use_username_as_clientid false
protocol mqtt
";
        let mut c = Config::default();
        let p = parse(text, &mut c).unwrap();
        assert!(p.defines_listener);
        assert_eq!(c.max_connections, 100);
        let own: Vec<(usize, bool)> = c
            .listeners
            .iter()
            .map(|l| {
                (
                    l.settings.max_connections,
                    l.settings.use_username_as_client_id,
                )
            })
            .collect();
        assert_eq!(own, [(5, true), (0, false)]);
        // A listener in the file: anonymous clients need allow_anonymous.
        assert_eq!(c.security.allow_anonymous, Some(false));
        let mut c = Config::default();
        parse("sys_interval 5\n", &mut c).unwrap();
        assert_eq!(c.security.allow_anonymous, None);
        let e = parse("listener 1883\nprotocol websockets\n", &mut c).unwrap_err();
        assert!(e.starts_with("line 2: protocol websockets"), "{e}");
    }

    /// The example the README installs as a service keeps serving the LAN
    /// (its listener, no password file) with anonymous access said aloud.
    #[test]
    fn the_shipped_pi_config_still_lets_its_lan_clients_in() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/midge-pi.conf");
        let mut c = Config::default();
        let p = load(Path::new(path), &mut c).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(c.listen_addrs(), ["0.0.0.0:1883".parse().unwrap()]);
        assert_eq!(c.security.allow_anonymous, Some(true));
        assert_eq!(c.security.password_file, None);
    }

    #[test]
    fn include_order_is_mosquittos() {
        let mut names = [
            "b.conf", "a.conf", "01.conf", "A.conf", "00.conf", "ab.conf",
        ];
        names.sort_by_key(|n| MosquittoOrder(n.as_bytes().to_vec()));
        let want = [
            "00.conf", "01.conf", "A.conf", "a.conf", "ab.conf", "b.conf",
        ];
        assert_eq!(names, want);
    }

    #[test]
    fn log_destinations() {
        let mut c = Config::default();
        let p = parse("log_dest syslog\n", &mut c).unwrap();
        let syslog = Some(vec![LogDest::Syslog]);
        assert_eq!((p.log_dests, p.warnings.len()), (syslog, 0));
        let p = parse("log_dest topic\n", &mut c).unwrap();
        assert_eq!(p.log_dests, None, "stderr");
        assert!(p.warnings[0].contains("not supported"), "{:?}", p.warnings);
        assert!(parse("log_dest syslog extra\n", &mut c).is_err());
    }

    #[test]
    fn mosquitto_options_midge_lacks_say_so_and_empty_values_name_their_line() {
        let mut c = Config::default();
        for (line, feature) in [
            ("bridge_cafile /x", "bridges"),
            ("plugin_opt_db x", "plugins"),
            ("keyfile /k.pem", "TLS"),
            ("mount_point a/", "listener options"),
        ] {
            let e = parse(&format!("{line}\n"), &mut c).unwrap_err();
            let key = line.split(' ').next().unwrap();
            let want = format!("line 1: unknown option '{key}': mosquitto option not supported");
            assert!(e.starts_with(&want) && e.contains(feature), "{e}");
        }
        let e = parse("bridge_ x\n", &mut c).unwrap_err();
        assert_eq!(e, "line 1: unknown option 'bridge_'", "a prefix alone");
        let e = parse("# acl\n\nacl_file\n", &mut c).unwrap_err();
        assert_eq!(e, "line 3: acl_file needs a value");
    }

    #[test]
    fn unknown_options_are_errors_with_the_line() {
        let mut c = Config::default();
        let e = parse("port 1883\n\ncertfile /etc/x.pem\n", &mut c).unwrap_err();
        assert!(e.starts_with("line 3: unknown option 'certfile'"), "{e}");
        let e = parse("max_inflight_messages lots\n", &mut c).unwrap_err();
        assert!(e.starts_with("line 1: max_inflight_messages"), "{e}");
    }
}
