//! What the host decides and learns about clients: authentication and
//! authorization callbacks, connect/disconnect events, statistics,
//! reloading the password and ACL files, disconnecting a client.

use super::*;
use crate::host::{Access, AuthDecision, Credentials, Event};

/// `midge_credentials` in the header.
#[repr(C)]
pub struct MidgeCredentials {
    pub client_id: *const c_char,
    /// NULL without a user name.
    pub username: *const c_char,
    /// NULL without a password (a valid pointer when it is empty).
    pub password: *const c_void,
    pub password_len: usize,
    /// "address:port" of the client.
    pub address: *const c_char,
}

pub type MidgeAuthCb =
    Option<unsafe extern "C" fn(user: *mut c_void, c: *const MidgeCredentials) -> c_int>;

pub type MidgeAclCb = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        client_id: *const c_char,
        username: *const c_char,
        access: c_int,
        topic: *const c_char,
    ) -> c_int,
>;

/// `midge_event` in the header.
#[repr(C)]
pub struct MidgeEvent {
    /// 1 connected, 2 disconnected.
    pub kind: c_int,
    pub client_id: *const c_char,
    pub username: *const c_char,
    pub address: *const c_char,
    /// Why a client went away (NULL for a connection).
    pub reason: *const c_char,
}

pub type MidgeEventCb = Option<unsafe extern "C" fn(user: *mut c_void, e: *const MidgeEvent)>;

/// `midge_stats` in the header: every field a `uint64_t`.
#[repr(C)]
#[derive(Default)]
pub struct MidgeStats {
    pub clients_connected: u64,
    pub sockets: u64,
    pub connects_total: u64,
    pub sessions: u64,
    pub subscriptions: u64,
    pub retained: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub dropped_qos0: u64,
    pub dropped_queue_full: u64,
    pub publishers_paused: u64,
    pub store_bytes_written: u64,
    pub store_fsyncs: u64,
}

/// Strings handed to a callback, kept alive for the call.
struct Strings(Vec<CString>);

impl Strings {
    fn add(&mut self, s: &str) -> *const c_char {
        let c = CString::new(s.replace('\0', " ")).unwrap_or_default();
        let p = c.as_ptr(); // stays put when the CString moves
        self.0.push(c);
        p
    }

    fn opt(&mut self, s: Option<&str>) -> *const c_char {
        s.map_or(std::ptr::null(), |s| self.add(s))
    }
}

/// Decides every CONNECT: `cb` returns 0 to accept, 4 (bad user name or
/// password) or 5 (not authorized) to refuse with that CONNACK code; any
/// other value refuses with 5. 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `cb` safe to call with `user` inside `midge_poll`.
#[no_mangle]
pub unsafe extern "C" fn midge_set_auth_cb(
    b: *mut MidgeBroker,
    cb: MidgeAuthCb,
    user: *mut c_void,
) -> c_int {
    with_broker(b, -1, |i| {
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        i.broker.set_authenticator(move |c: &Credentials<'_>| {
            let user = user;
            let mut s = Strings(Vec::new());
            let creds = MidgeCredentials {
                client_id: s.add(c.client_id),
                username: s.opt(c.username),
                password: c.password.map_or(std::ptr::null(), bytes_ptr),
                password_len: c.password.map_or(0, <[u8]>::len),
                address: s.add(&c.addr.to_string()),
            };
            // SAFETY: the host promised `cb` accepts these arguments.
            match unsafe { cb(user.0, &creds) } {
                0 => AuthDecision::Accept,
                4 => AuthDecision::BadCredentials,
                _ => AuthDecision::NotAuthorized,
            }
        });
        Ok(0)
    })
}

/// Decides each publish (`access` 1) and subscribe (`access` 2) of a
/// client, after the ACL file: `cb` returns nonzero to allow. A denied
/// publish is acknowledged and dropped; a denied subscription gets SUBACK
/// 0x80. 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `cb` safe to call with `user` inside `midge_poll`.
#[no_mangle]
pub unsafe extern "C" fn midge_set_acl_cb(
    b: *mut MidgeBroker,
    cb: MidgeAclCb,
    user: *mut c_void,
) -> c_int {
    with_broker(b, -1, |i| {
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        i.broker
            .set_authorizer(move |id: &str, name: Option<&str>, access, topic: &str| {
                let user = user;
                let mut s = Strings(Vec::new());
                let (id, name, topic) = (s.add(id), s.opt(name), s.add(topic));
                let access = match access {
                    Access::Publish => 1,
                    Access::Subscribe => 2,
                };
                // SAFETY: the host promised `cb` accepts these arguments.
                unsafe { cb(user.0, id, name, access, topic) != 0 }
            });
        Ok(0)
    })
}

/// Calls `cb(user, event)` when a client's CONNECT is accepted and when a
/// connected client goes away. 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `cb` safe to call with `user` inside `midge_poll`,
/// `midge_disconnect_client` and `midge_shutdown`.
#[no_mangle]
pub unsafe extern "C" fn midge_set_event_cb(
    b: *mut MidgeBroker,
    cb: MidgeEventCb,
    user: *mut c_void,
) -> c_int {
    with_broker(b, -1, |i| {
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        i.broker.set_event_callback(move |e: &Event<'_>| {
            let user = user;
            let mut s = Strings(Vec::new());
            let event = match e {
                Event::Connected {
                    client_id,
                    addr,
                    username,
                } => MidgeEvent {
                    kind: 1,
                    client_id: s.add(client_id),
                    username: s.opt(*username),
                    address: s.add(&addr.to_string()),
                    reason: std::ptr::null(),
                },
                Event::Disconnected {
                    client_id,
                    addr,
                    username,
                    reason,
                } => MidgeEvent {
                    kind: 2,
                    client_id: s.add(client_id),
                    username: s.opt(*username),
                    address: s.add(&addr.to_string()),
                    reason: s.add(reason),
                },
            };
            // SAFETY: the host promised `cb` accepts these arguments.
            unsafe { cb(user.0, &event) };
        });
        Ok(0)
    })
}

/// Copies the broker's counters into `out`: the first `size` bytes of a
/// `midge_stats` (pass `sizeof *out`, so a program built against an older
/// header keeps working). 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `out` writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn midge_get_stats(
    b: *mut MidgeBroker,
    out: *mut c_void,
    size: usize,
) -> c_int {
    with_broker(b, -1, |i| {
        if out.is_null() {
            return Err("out is NULL".into());
        }
        let s = i.broker.stats();
        let n = |v: usize| v as u64;
        let stats = MidgeStats {
            clients_connected: n(s.clients_connected),
            sockets: n(s.sockets),
            connects_total: s.connects_total,
            sessions: n(s.sessions),
            subscriptions: n(s.subscriptions),
            retained: n(s.retained),
            messages_received: s.messages_received,
            messages_sent: s.messages_sent,
            bytes_received: s.bytes_received,
            bytes_sent: s.bytes_sent,
            dropped_qos0: s.dropped_qos0,
            dropped_queue_full: s.dropped_queue_full,
            publishers_paused: s.publishers_paused,
            store_bytes_written: s.store_bytes_written,
            store_fsyncs: s.store_fsyncs,
        };
        let len = size.min(std::mem::size_of::<MidgeStats>());
        std::ptr::copy_nonoverlapping((&stats as *const MidgeStats).cast::<u8>(), out.cast(), len);
        Ok(0)
    })
}

/// Reloads the password and ACL files, as SIGHUP does for the binary. On
/// error (-1) the previous files stay in force.
///
/// # Safety
/// `b` from `midge_new`.
#[no_mangle]
pub unsafe extern "C" fn midge_reload(b: *mut MidgeBroker) -> c_int {
    with_broker(b, -1, |i| {
        i.broker.reload_auth()?;
        Ok(0)
    })
}

/// Closes the connection of the client with this id (its Will is
/// published). 0, or -1 if no such client is connected.
///
/// # Safety
/// `b` from `midge_new`; `client_id` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn midge_disconnect_client(
    b: *mut MidgeBroker,
    client_id: *const c_char,
) -> c_int {
    with_broker(b, -1, |i| {
        let id = text(client_id, "client_id")?;
        if !i.broker.disconnect_client(id) {
            return Err(format!("no connected client '{id}'"));
        }
        Ok(0)
    })
}
