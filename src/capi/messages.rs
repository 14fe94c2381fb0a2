//! Publishing from the host (with flow control) and host subscriptions.

use super::mqtt5::{MidgeProperties, PropertiesView};
use super::*;
use crate::host::HostMessage;
use crate::Published;
use std::io::ErrorKind;

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

/// `midge_message` in the header.
#[repr(C)]
pub struct MidgeMessage {
    pub topic: *const c_char,
    pub payload: *const c_void,
    pub len: usize,
    pub qos: c_int,
    pub retain: c_int,
    pub client_id: *const c_char,
    /// The MQTT 5 properties, NULL when there are none.
    pub properties: *const MidgeProperties,
}

pub type MidgeMessageExCb = Option<unsafe extern "C" fn(user: *mut c_void, m: *const MidgeMessage)>;

pub type MidgeReadyCb = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// Publishes a message from the host. 0 on success; 1 (`MIDGE_PAUSED`):
/// published, but a subscriber's queue is now full; -2 (`MIDGE_BUSY`):
/// not published, QoS 1/2 publishes wait for the ready callback; -1 on
/// error.
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
        let payload = super::payload(payload, len)?;
        published(
            i.broker
                .publish(topic, payload, qos(qos_level)?, retain != 0),
        )
    })
}

/// A host publish's outcome as `midge_publish` returns it.
pub(super) fn published(result: std::io::Result<Published>) -> Result<c_int, String> {
    match result {
        Ok(Published::Done) => Ok(0),
        Ok(Published::Paused) => Ok(MIDGE_PAUSED),
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            set_error(&e.to_string());
            Ok(MIDGE_BUSY)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Calls `cb(user)` (inside `midge_poll`) when publishes refused with
/// `MIDGE_BUSY` may be tried again. 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `cb` safe to call with `user` inside `midge_poll`.
#[no_mangle]
pub unsafe extern "C" fn midge_set_ready_cb(
    b: *mut MidgeBroker,
    cb: MidgeReadyCb,
    user: *mut c_void,
) -> c_int {
    with_broker(b, -1, |i| {
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        i.broker.set_ready_callback(move || {
            let user = user;
            // SAFETY: the host promised `cb` accepts `user`.
            unsafe { cb(user.0) }
        });
        Ok(0)
    })
}

fn add_sub(
    i: &mut Inner,
    filter: &str,
    qos_level: c_int,
    callback: impl FnMut(&HostMessage<'_>) + Send + 'static,
) -> Result<c_long, String> {
    let sub = i
        .broker
        .subscribe(filter, qos(qos_level)?, callback)
        .map_err(|e| e.to_string())?;
    i.next_sub += 1;
    i.subs.insert(i.next_sub, sub);
    Ok(i.next_sub)
}

/// Calls `cb(user, topic, payload, len, qos, retain)` for every message
/// matching `filter`, starting with matching retained messages. Returns a
/// subscription id (> 0) for `midge_unsubscribe`, or -1 on error.
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
        let mut topic = Vec::new();
        add_sub(i, filter, qos_level, move |m: &HostMessage<'_>| {
            let user = user;
            let topic = c_text(&mut topic, m.topic);
            // SAFETY: the host promised `cb` accepts these arguments.
            unsafe {
                cb(
                    user.0,
                    topic.as_ptr(),
                    bytes_ptr(m.payload),
                    m.payload.len(),
                    m.qos as c_int,
                    c_int::from(m.retain),
                )
            };
        })
    })
}

/// Like `midge_subscribe_cb`, with the message as a `midge_message`, which
/// also names the publishing client.
///
/// # Safety
/// As for `midge_subscribe_cb`.
#[no_mangle]
pub unsafe extern "C" fn midge_subscribe_ex(
    b: *mut MidgeBroker,
    filter: *const c_char,
    qos_level: c_int,
    cb: MidgeMessageExCb,
    user: *mut c_void,
) -> c_long {
    with_broker(b, -1, |i| {
        let filter = text(filter, "filter")?;
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        let (mut topic, mut client) = (Vec::new(), Vec::new());
        let mut view = PropertiesView::default();
        add_sub(i, filter, qos_level, move |m: &HostMessage<'_>| {
            let user = user;
            let client_id = match m.publisher {
                Some(id) => c_text(&mut client, id).as_ptr(),
                None => std::ptr::null(),
            };
            let message = MidgeMessage {
                topic: c_text(&mut topic, m.topic).as_ptr(),
                payload: bytes_ptr(m.payload),
                len: m.payload.len(),
                qos: m.qos as c_int,
                retain: c_int::from(m.retain),
                client_id,
                properties: view.of(m.properties),
            };
            // SAFETY: the host promised `cb` accepts these arguments.
            unsafe { cb(user.0, &message) };
        })
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
