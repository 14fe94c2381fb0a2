//! The thread-safe handle: any thread queues a publish or a shutdown for a
//! broker, and its loop's descriptor (`midge_fd`) becomes readable so the
//! host runs `midge_poll`, which carries them out.

use super::*;
use crate::Remote;
use std::io::ErrorKind;

/// A [`Remote`] for C.
pub struct MidgeHandle(Remote);

/// A new handle on `b`, for another thread. Call it on the thread that
/// drives `b`; the handle may then be used from any thread, also after
/// `midge_free(b)` (its calls then fail). NULL on error.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_handle_new(b: *mut MidgeBroker) -> *mut MidgeHandle {
    with_broker(b, std::ptr::null_mut(), |i| {
        Ok(Box::into_raw(Box::new(MidgeHandle(i.broker.remote()))))
    })
}

/// Queues a publish (payload copied) for the broker's loop and wakes it.
/// Thread-safe. 0; -2 (`MIDGE_BUSY`): too many publishes are waiting, try
/// again later; -1 on error (also once the broker has shut down).
///
/// # Safety
/// `h` from `midge_handle_new`; `topic` NUL-terminated; `payload` readable
/// for `len` bytes (may be NULL when `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn midge_handle_publish(
    h: *const MidgeHandle,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    qos_level: c_int,
    retain: c_int,
) -> c_int {
    guard(-1, || {
        let h = h.as_ref().ok_or("handle is NULL")?;
        let topic = text(topic, "topic")?;
        let payload = super::payload(payload, len)?;
        match h.0.publish(topic, payload, qos(qos_level)?, retain != 0) {
            Ok(()) => Ok(0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                set_error(&e.to_string());
                Ok(MIDGE_BUSY)
            }
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Asks the broker to shut down: its next `midge_poll` does it and returns
/// `MIDGE_STOPPED`. Thread-safe. 0, or -1 on error.
///
/// # Safety
/// `h` from `midge_handle_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_handle_shutdown(h: *const MidgeHandle) -> c_int {
    guard(-1, || {
        h.as_ref().ok_or("handle is NULL")?.0.shutdown();
        Ok(0)
    })
}

/// Frees a handle (from any thread, once). NULL is ignored.
///
/// # Safety
/// `h` NULL or from `midge_handle_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn midge_handle_free(h: *mut MidgeHandle) {
    if !h.is_null() {
        guard((), || {
            drop(Box::from_raw(h));
            Ok(())
        })
    }
}
