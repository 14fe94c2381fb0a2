//! Log callbacks: one for the process and one per broker. The `log` crate
//! has one logger per process; ours sends a line to the callback of the
//! broker whose call is running on this thread (set by `with_broker`), or
//! else to the process-wide one.

use super::*;
use ::log::{LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::sync::Mutex;

pub type MidgeLogCb =
    Option<unsafe extern "C" fn(user: *mut c_void, level: c_int, msg: *const c_char)>;

/// Where log lines go, and the most verbose level it wants.
#[derive(Clone, Copy)]
pub(super) struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, c_int, *const c_char),
    user: UserPtr,
    level: LevelFilter,
}

static PROCESS: Mutex<Option<Sink>> = Mutex::new(None);
/// Our logger is the process's (set once, on first use).
static INSTALLED: Mutex<bool> = Mutex::new(false);

thread_local! {
    static CURRENT: Cell<Option<Sink>> = const { Cell::new(None) };
}

/// The broker's sink in force for one call, the previous one restored
/// when dropped.
pub(super) struct Scope(Option<Sink>);

impl Scope {
    pub(super) fn enter(sink: Option<Sink>) -> Scope {
        Scope(CURRENT.with(|c| c.replace(sink)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

struct CLogger;

static LOGGER: CLogger = CLogger;

impl CLogger {
    fn sink(&self) -> Option<Sink> {
        CURRENT
            .with(Cell::get)
            .or_else(|| *PROCESS.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Log for CLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.sink().is_some_and(|s| metadata.level() <= s.level)
    }

    fn log(&self, record: &Record) {
        let Some(sink) = self.sink().filter(|s| record.level() <= s.level) else {
            return;
        };
        let Ok(msg) = CString::new(record.args().to_string().replace('\0', " ")) else {
            return;
        };
        // SAFETY: the host promised `cb` accepts these arguments.
        unsafe { (sink.cb)(sink.user.0, record.level() as c_int, msg.as_ptr()) };
    }

    fn flush(&self) {}
}

/// Makes ours the process's logger (once) and lets `level` through.
fn install(level: LevelFilter) -> Result<(), String> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        ::log::set_logger(&LOGGER).map_err(|_| "another logger is already set in this process")?;
        *installed = true;
    }
    if level > ::log::max_level() {
        ::log::set_max_level(level);
    }
    Ok(())
}

fn sink(cb: MidgeLogCb, user: *mut c_void, max_level: c_int) -> Result<Sink, String> {
    let cb = cb.ok_or("callback is NULL")?;
    let level = match max_level {
        c_int::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    install(level)?;
    Ok(Sink {
        cb,
        user: UserPtr(user),
        level,
    })
}

/// Sends log lines to `cb(user, level, message)`; levels are 1 error, 2
/// warn, 3 info, 4 debug, 5 trace, and `max_level` filters them.
/// Process-wide: lines of brokers without their own callback, and lines
/// from outside any broker call. Setting it again replaces it. 0 on
/// success, -1 on error (another Rust logger is already installed).
///
/// # Safety
/// `cb` must be callable from every thread that drives a broker.
#[no_mangle]
pub unsafe extern "C" fn midge_set_log_cb(
    cb: MidgeLogCb,
    user: *mut c_void,
    max_level: c_int,
) -> c_int {
    guard(-1, || {
        let sink = sink(cb, user, max_level)?;
        *PROCESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        Ok(0)
    })
}

/// This broker's log lines (those logged while one of its calls runs) go
/// to `cb` instead of the process-wide callback. 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `cb` safe to call with `user` inside its calls.
#[no_mangle]
pub unsafe extern "C" fn midge_set_broker_log_cb(
    b: *mut MidgeBroker,
    cb: MidgeLogCb,
    user: *mut c_void,
    max_level: c_int,
) -> c_int {
    with_broker(b, -1, |i| {
        let sink = sink(cb, user, max_level)?;
        i.log = Some(sink);
        Ok(0)
    })
}
