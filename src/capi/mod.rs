//! The C API (`include/midge.h`): the broker as an object a C program drives
//! from its own poll loop.
//!
//! Every function checks its pointers, catches panics (none may cross into
//! C), and reports failure with a return value plus a message from
//! `midge_last_error()` (per thread; cleared by every call that succeeds).
//! A `midge_broker` is used by one thread at a time: a call that finds
//! another call inside the broker (a callback calling back in, or a second
//! thread) is refused with an error saying which, rather than allowed to
//! corrupt it. Other threads use a `midge_handle` (handle.rs), the only
//! thread-safe calls.
//!
//! Split by concern: config.rs (options, config files), messages.rs
//! (publish, subscribe, flow control), hooks.rs (auth, ACL, events,
//! statistics, reload, disconnect), log.rs (log callbacks), handle.rs (the
//! thread-safe handle). This file: errors, the broker object and its loop.

mod config;
mod handle;
mod hooks;
mod log;
mod messages;
mod mqtt5;

use crate::Broker;
use std::cell::{RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use config::MidgeConfig;
pub use handle::MidgeHandle;

/// Return codes besides 0 (`MIDGE_OK`) and -1 (`MIDGE_ERROR`).
const MIDGE_BUSY: c_int = -2;
const MIDGE_PAUSED: c_int = 1;
const MIDGE_STOPPED: c_int = 1;

/// A broker and what the C API keeps beside it.
pub struct MidgeBroker {
    /// The thread inside a call on this broker ([`thread_token`]), 0 when
    /// none: a second call, from a callback or another thread, is refused
    /// instead of aliasing the broker.
    owner: AtomicUsize,
    inner: UnsafeCell<Inner>,
}

struct Inner {
    broker: Broker,
    subs: HashMap<c_long, crate::broker::HostSubscription>,
    next_sub: c_long,
    /// This broker's own log callback (see log.rs).
    log: Option<log::Sink>,
}

/// The host's opaque pointer, handed back to its callbacks. midge never
/// dereferences it; the host owns what it points to.
#[derive(Clone, Copy)]
struct UserPtr(*mut c_void);
// SAFETY: the pointer is only passed back to the host's own callbacks, on
// the thread that drives the broker (the header says so).
unsafe impl Send for UserPtr {}
unsafe impl Sync for UserPtr {}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// Its address names this thread (never 0).
    static TOKEN: u8 = const { 0 };
}

fn thread_token() -> usize {
    TOKEN.with(|t| t as *const u8 as usize)
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(c));
}

/// Runs `f`, turning an error or a panic into `fail` plus a last-error
/// text. The last error is cleared first, so a call that succeeds leaves
/// none (one that returns a code such as `MIDGE_BUSY` sets it itself).
fn guard<T>(fail: T, f: impl FnOnce() -> Result<T, String>) -> T {
    LAST_ERROR.with(|e| e.borrow_mut().take());
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

/// A NUL-terminated copy of `s` in a buffer reused from call to call (the
/// callbacks' strings, without an allocation per message).
fn c_text<'a>(buf: &'a mut Vec<u8>, s: &str) -> &'a CStr {
    buf.clear();
    buf.extend(s.bytes().filter(|&b| b != 0));
    buf.push(0);
    CStr::from_bytes_with_nul(buf).unwrap_or_default()
}

/// Bytes handed to C: never NULL, also when empty (the header promises a
/// valid pointer, so `memcpy(dst, p, 0)` is fine).
fn bytes_ptr(bytes: &[u8]) -> *const c_void {
    static EMPTY: [u8; 1] = [0];
    if bytes.is_empty() {
        EMPTY.as_ptr().cast()
    } else {
        bytes.as_ptr().cast()
    }
}

/// # Safety
/// `payload` readable for `len` bytes, or NULL with `len` 0.
unsafe fn payload<'a>(payload: *const c_void, len: usize) -> Result<&'a [u8], String> {
    match (payload.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err("payload is NULL".into()),
        (false, n) => Ok(std::slice::from_raw_parts(payload.cast(), n)),
    }
}

fn qos(q: c_int) -> Result<crate::protocol::QoS, String> {
    u8::try_from(q)
        .ok()
        .and_then(crate::protocol::QoS::from_u8)
        .ok_or_else(|| format!("qos must be 0, 1 or 2, not {q}"))
}

/// Gives exclusive access to a broker for one call, with its log callback
/// in force.
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
        let me = thread_token();
        if let Err(holder) = b
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            return Err(if holder == me {
                "midge functions cannot be called from a midge callback on the same broker \
                 (except midge_next_timeout_ms)"
            } else {
                "the broker is in use by another thread: a midge_broker is driven by one \
                 thread at a time; other threads use a midge_handle"
            }
            .into());
        }
        // SAFETY: `owner` guarantees no other reference into `inner` exists.
        let inner = &mut *b.inner.get();
        let _log = log::Scope::enter(inner.log);
        let result = catch_unwind(AssertUnwindSafe(|| f(inner)));
        b.owner.store(0, Ordering::Release);
        match result {
            Ok(r) => r,
            Err(_) => Err("internal error in midge (caught panic)".into()),
        }
    })
}

/// The message of the last failed call on this thread ("" if the last call
/// succeeded). Valid until the next midge call on this thread.
#[no_mangle]
pub extern "C" fn midge_last_error() -> *const c_char {
    LAST_ERROR.with(|e| match &*e.borrow() {
        Some(msg) => msg.as_ptr(),
        None => c"".as_ptr(),
    })
}

/// Creates a broker and binds its listeners (`cfg` NULL: defaults). NULL on
/// error. The configuration is copied; free it when convenient.
///
/// # Safety
/// `cfg` NULL or from `midge_config_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_new(cfg: *const MidgeConfig) -> *mut MidgeBroker {
    guard(std::ptr::null_mut(), || {
        let config = cfg.as_ref().map(MidgeConfig::config).unwrap_or_default();
        let broker = Broker::new(config).map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(MidgeBroker {
            owner: AtomicUsize::new(0),
            inner: UnsafeCell::new(Inner {
                broker,
                subs: HashMap::new(),
                next_sub: 0,
                log: None,
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

/// The ports of all listeners, in configuration order: fills up to `n` of
/// `ports` and returns how many listeners there are (0 after shutdown), or
/// -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `ports` writable for `n` ints (NULL if `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn midge_listener_ports(
    b: *mut MidgeBroker,
    ports: *mut c_int,
    n: usize,
) -> c_int {
    with_broker(b, -1, |i| {
        let addrs = i.broker.local_addrs();
        if n > 0 && ports.is_null() {
            return Err("ports is NULL".into());
        }
        for (k, addr) in addrs.iter().take(n).enumerate() {
            *ports.add(k) = c_int::from(addr.port());
        }
        c_int::try_from(addrs.len()).map_err(|_| "too many listeners".into())
    })
}

/// Handles what is ready, waiting at most `timeout_ms` (0: don't wait; <0:
/// until something happens or a deadline is due). 0 on success; 1
/// (`MIDGE_STOPPED`) once the broker has shut down (a `midge_handle`
/// asked, or `midge_shutdown`): stop polling and free it; -1 on error.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_poll(b: *mut MidgeBroker, timeout_ms: c_int) -> c_int {
    with_broker(b, -1, |i| {
        if !i.broker.is_shutting_down() {
            let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
            i.broker.poll_once(timeout).map_err(|e| e.to_string())?;
        }
        if i.broker.is_shutting_down() {
            i.broker.shutdown();
            return Ok(MIDGE_STOPPED);
        }
        Ok(0)
    })
}

/// Milliseconds until `midge_poll` must be called even if `midge_fd` stays
/// quiet (keep-alive checks, deferred work: 0 means at once); -1 if there
/// is no such deadline. Inside a callback: 0 (the broker is busy; ask
/// again after `midge_poll` returns). -1 with an error for a NULL broker or
/// a call from another thread while the broker is in use.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_next_timeout_ms(b: *mut MidgeBroker) -> c_int {
    if let Some(broker) = b.as_ref() {
        if broker.owner.load(Ordering::Acquire) == thread_token() {
            LAST_ERROR.with(|e| e.borrow_mut().take());
            return 0;
        }
    }
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

/// Publishes the Wills of connected clients, closes every connection and
/// the listening sockets (new clients are refused). The broker can still
/// be freed (and must be).
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
    if broker.owner.load(Ordering::Acquire) != 0 {
        set_error("midge_free cannot be called while the broker is in use (from a callback)");
        return;
    }
    midge_shutdown(b);
    guard((), || {
        drop(Box::from_raw(b));
        Ok(())
    })
}
