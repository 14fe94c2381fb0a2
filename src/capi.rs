//! The C API (`include/midge.h`): the broker as an object a C program drives
//! from its own poll loop.
//!
//! Every function checks its pointers, catches panics (none may cross into
//! C), and reports failure with a return value plus a message from
//! `midge_last_error()` (per thread). Callbacks run inside `midge_poll` or
//! `midge_publish`; calling back into the same broker from a callback is
//! refused with an error rather than allowed to corrupt it.

use crate::host::HostMessage;
use crate::protocol::QoS;
use crate::{Broker, Config};
use std::cell::{RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Options, set by name with `midge_config_set`.
pub struct MidgeConfig(Config);

/// A broker and the host subscriptions made through the C API.
pub struct MidgeBroker {
    /// Set while a call is inside the broker: a callback that calls back in
    /// is refused instead of aliasing the broker.
    busy: AtomicBool,
    inner: UnsafeCell<Inner>,
}

struct Inner {
    broker: Broker,
    subs: HashMap<c_long, crate::broker::HostSubscription>,
    next_sub: c_long,
}

pub type MidgeMessageCb = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        topic: *const c_char,
        payload: *const c_void,
        len: usize,
        qos: c_int,
        retain: c_int,
    ),
>;

pub type MidgeLogCb =
    Option<unsafe extern "C" fn(user: *mut c_void, level: c_int, msg: *const c_char)>;

/// The host's opaque pointer, handed back to its callbacks. The broker is
/// single-threaded; the host owns what the pointer points to.
#[derive(Clone, Copy)]
struct UserPtr(*mut c_void);
// SAFETY: the pointer is only passed back to the host's own callback, on the
// thread that drives the broker; midge never dereferences it.
unsafe impl Send for UserPtr {}
unsafe impl Sync for UserPtr {}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, turning an error or a panic into `fail` plus a last-error text.
fn guard<T>(fail: T, f: impl FnOnce() -> Result<T, String>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => {
            set_error(&msg);
            fail
        }
        Err(_) => {
            set_error("internal error in midge (caught panic)");
            fail
        }
    }
}

/// # Safety
/// `s` must be NULL or a NUL-terminated string.
unsafe fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, String> {
    if s.is_null() {
        return Err(format!("{what} is NULL"));
    }
    CStr::from_ptr(s)
        .to_str()
        .map_err(|_| format!("{what} is not UTF-8"))
}

fn qos(q: c_int) -> Result<QoS, String> {
    u8::try_from(q)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("qos must be 0, 1 or 2, not {q}"))
}

/// Gives exclusive access to a broker for one call.
///
/// # Safety
/// `b` must be NULL or a pointer from `midge_new` not yet freed.
unsafe fn with_broker<T>(
    b: *mut MidgeBroker,
    fail: T,
    f: impl FnOnce(&mut Inner) -> Result<T, String>,
) -> T {
    guard(fail, || {
        let Some(b) = b.as_ref() else {
            return Err("broker is NULL".into());
        };
        if b.busy.swap(true, Ordering::Acquire) {
            return Err("midge functions cannot be called from a midge callback".into());
        }
        // SAFETY: `busy` guarantees no other reference into `inner` exists.
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut *b.inner.get())));
        b.busy.store(false, Ordering::Release);
        match result {
            Ok(r) => r,
            Err(_) => Err("internal error in midge (caught panic)".into()),
        }
    })
}

/// The message of the last failed call on this thread ("" if none). Valid
/// until the next midge call on this thread.
#[no_mangle]
pub extern "C" fn midge_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// New options with the defaults (127.0.0.1:1883).
#[no_mangle]
pub extern "C" fn midge_config_new() -> *mut MidgeConfig {
    guard(std::ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(MidgeConfig(Config::default()))))
    })
}

/// Sets an option by its config-file name, e.g. ("port", "1883"). 0 on
/// success, -1 on error.
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
        cfg.0.set(text(key, "key")?, text(value, "value")?)?;
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

/// Creates a broker and binds its listeners (`cfg` NULL: defaults). NULL on
/// error. The configuration is copied; free it when convenient.
///
/// # Safety
/// `cfg` NULL or from `midge_config_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_new(cfg: *const MidgeConfig) -> *mut MidgeBroker {
    guard(std::ptr::null_mut(), || {
        let config = cfg.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        let broker = Broker::new(config).map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(MidgeBroker {
            busy: AtomicBool::new(false),
            inner: UnsafeCell::new(Inner {
                broker,
                subs: HashMap::new(),
                next_sub: 0,
            }),
        })))
    })
}

/// The descriptor to watch for readability in the host's poll set; when
/// readable, call `midge_poll(b, 0)`. -1 on error.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_fd(b: *mut MidgeBroker) -> c_int {
    with_broker(b, -1, |i| Ok(i.broker.as_raw_fd()))
}

/// The TCP port of the first listener (useful with port 0). -1 on error.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_local_port(b: *mut MidgeBroker) -> c_int {
    with_broker(b, -1, |i| {
        let addr = i.broker.local_addr().map_err(|e| e.to_string())?;
        Ok(c_int::from(addr.port()))
    })
}

/// Handles what is ready, waiting at most `timeout_ms` (0: don't wait; <0:
/// until something happens or a deadline is due). 0 on success, -1 on error.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_poll(b: *mut MidgeBroker, timeout_ms: c_int) -> c_int {
    with_broker(b, -1, |i| {
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        i.broker.poll_once(timeout).map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Milliseconds until the broker has timed work (keep-alive checks), to
/// bound the host's poll timeout; -1 if none (only the fd matters).
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_next_timeout_ms(b: *mut MidgeBroker) -> c_int {
    with_broker(b, -1, |i| {
        Ok(match i.broker.next_deadline() {
            None => -1,
            Some(at) => {
                let ms = at
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000);
                c_int::try_from(ms).unwrap_or(c_int::MAX)
            }
        })
    })
}

/// Publishes a message from the host. 0 on success, -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `topic` NUL-terminated; `payload` readable for
/// `len` bytes (may be NULL when `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn midge_publish(
    b: *mut MidgeBroker,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    qos_level: c_int,
    retain: c_int,
) -> c_int {
    with_broker(b, -1, |i| {
        let topic = text(topic, "topic")?;
        let payload: &[u8] = match (payload.is_null(), len) {
            (_, 0) => &[],
            (true, _) => return Err("payload is NULL".into()),
            (false, n) => std::slice::from_raw_parts(payload.cast(), n),
        };
        i.broker
            .publish(topic, payload, qos(qos_level)?, retain != 0)
            .map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Calls `cb(user, topic, payload, len, qos, retain)` for every message
/// matching `filter`, starting with matching retained messages. The
/// pointers are valid only during the call. Returns a subscription id (> 0)
/// for `midge_unsubscribe`, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `filter` NUL-terminated; `cb` safe to call with
/// `user` from inside `midge_poll`/`midge_publish`/`midge_subscribe_cb`.
#[no_mangle]
pub unsafe extern "C" fn midge_subscribe_cb(
    b: *mut MidgeBroker,
    filter: *const c_char,
    qos_level: c_int,
    cb: MidgeMessageCb,
    user: *mut c_void,
) -> c_long {
    with_broker(b, -1, |i| {
        let filter = text(filter, "filter")?;
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        let sub = i
            .broker
            .subscribe(filter, qos(qos_level)?, move |m: &HostMessage<'_>| {
                let user = user;
                let Ok(topic) = CString::new(m.topic) else {
                    return;
                };
                // SAFETY: the host promised `cb` accepts these arguments.
                unsafe {
                    cb(
                        user.0,
                        topic.as_ptr(),
                        m.payload.as_ptr().cast(),
                        m.payload.len(),
                        m.qos as c_int,
                        c_int::from(m.retain),
                    )
                };
            })
            .map_err(|e| e.to_string())?;
        i.next_sub += 1;
        i.subs.insert(i.next_sub, sub);
        Ok(i.next_sub)
    })
}

/// Ends a subscription made with `midge_subscribe_cb`. 0, or -1 if unknown.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_unsubscribe(b: *mut MidgeBroker, id: c_long) -> c_int {
    with_broker(b, -1, |i| {
        let sub = i.subs.remove(&id).ok_or("unknown subscription id")?;
        i.broker.unsubscribe(sub);
        Ok(0)
    })
}

struct CLogger {
    cb: unsafe extern "C" fn(*mut c_void, c_int, *const c_char),
    user: UserPtr,
}

impl log::Log for CLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(msg) = CString::new(record.args().to_string().replace('\0', " ")) else {
            return;
        };
        // SAFETY: the host promised `cb` accepts these arguments.
        unsafe { (self.cb)(self.user.0, record.level() as c_int, msg.as_ptr()) };
    }

    fn flush(&self) {}
}

/// Sends the broker's log lines to `cb(user, level, message)`; levels are
/// 1 error, 2 warn, 3 info, 4 debug, 5 trace, and `max_level` filters them.
/// Process-wide; can be set once. 0 on success, -1 on error.
///
/// # Safety
/// `cb` must be callable from the thread that drives any broker.
#[no_mangle]
pub unsafe extern "C" fn midge_set_log_cb(
    cb: MidgeLogCb,
    user: *mut c_void,
    max_level: c_int,
) -> c_int {
    guard(-1, || {
        let cb = cb.ok_or("callback is NULL")?;
        let level = match max_level {
            i32::MIN..=0 => log::LevelFilter::Off,
            1 => log::LevelFilter::Error,
            2 => log::LevelFilter::Warn,
            3 => log::LevelFilter::Info,
            4 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        };
        log::set_boxed_logger(Box::new(CLogger {
            cb,
            user: UserPtr(user),
        }))
        .map_err(|_| "a logger is already set")?;
        log::set_max_level(level);
        Ok(0)
    })
}

/// Publishes the Wills of connected clients, closes every connection and
/// stops listening. The broker can still be freed (and must be).
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_shutdown(b: *mut MidgeBroker) {
    with_broker(b, (), |i| {
        i.broker.shutdown();
        Ok(())
    })
}

/// Frees a broker (shutting it down first if needed). NULL is ignored.
///
/// # Safety
/// `b` NULL or from `midge_new`, not used afterwards, not called from a
/// callback.
#[no_mangle]
pub unsafe extern "C" fn midge_free(b: *mut MidgeBroker) {
    let Some(broker) = b.as_ref() else {
        return;
    };
    if broker.busy.load(Ordering::Acquire) {
        set_error("midge_free cannot be called from a midge callback");
        return;
    }
    midge_shutdown(b);
    guard((), || {
        drop(Box::from_raw(b));
        Ok(())
    })
}
