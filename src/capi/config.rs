//! Options: set one by one by their config-file names, or read from a
//! mosquitto-format file; both as the config file does (listener sections,
//! options accepted with a warning).

use super::{guard, text};
use crate::conffile::{self, ProcessSettings};
use crate::Config;
use log::warn;
use std::ffi::{c_char, c_int};
use std::path::Path;

/// Options being gathered for `midge_new`.
pub struct MidgeConfig {
    config: Config,
    /// The listener section `midge_config_set` is in (after "listener").
    section: Option<usize>,
}

impl MidgeConfig {
    pub(super) fn config(&self) -> Config {
        self.config.clone()
    }
}

/// New options with the defaults (127.0.0.1:1883).
#[no_mangle]
pub extern "C" fn midge_config_new() -> *mut MidgeConfig {
    guard(std::ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(MidgeConfig {
            config: Config::default(),
            section: None,
        })))
    })
}

/// Sets an option by its config-file name, e.g. ("port", "1883"): any
/// option of the config file. After a "listener" option, the per-listener
/// options (max_connections, use_username_as_clientid, protocol) apply to
/// that listener, as in the file. 0 on success, -1 on error.
///
/// # Safety
/// `cfg` from `midge_config_new`; `key` and `value` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn midge_config_set(
    cfg: *mut MidgeConfig,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    guard(-1, || {
        let cfg = cfg.as_mut().ok_or("config is NULL")?;
        let (key, value) = (text(key, "key")?, text(value, "value")?);
        // What only the binary uses (log_dest, pid_file) is accepted and
        // not used: the host owns logging.
        let mut process = ProcessSettings::default();
        let c = &mut *cfg;
        let warning =
            conffile::apply_option(&mut c.config, &mut c.section, key, value, &mut process)?;
        if let Some(w) = warning {
            warn!("{w}");
        }
        Ok(0)
    })
}

/// Reads a mosquitto-format config file (include_dir too) into `cfg`, with
/// the file's rules: a file that defines a listener refuses anonymous
/// clients unless it says `allow_anonymous true`. Options set afterwards
/// are global again. 0 on success, -1 on error (naming file and line).
///
/// # Safety
/// `cfg` from `midge_config_new`; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn midge_config_load(cfg: *mut MidgeConfig, path: *const c_char) -> c_int {
    guard(-1, || {
        let cfg = cfg.as_mut().ok_or("config is NULL")?;
        let path = text(path, "path")?;
        // All or nothing: a file that fails halfway changes nothing.
        let mut config = cfg.config.clone();
        let settings = conffile::load(Path::new(path), &mut config)?;
        for w in &settings.warnings {
            warn!("{path}: {w}");
        }
        cfg.config = config;
        cfg.section = None;
        Ok(0)
    })
}

/// # Safety
/// `cfg` NULL or from `midge_config_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn midge_config_free(cfg: *mut MidgeConfig) {
    if !cfg.is_null() {
        guard((), || {
            drop(Box::from_raw(cfg));
            Ok(())
        })
    }
}
