//! MQTT 5 for C hosts: a message's properties in `midge_message`,
//! publishing with properties, and enhanced authentication methods
//! implemented by the host.

use super::*;
use crate::host::{AuthRequest, AuthStep};
use crate::protocol::{Properties, PropertyValues};
use bytes::Bytes;

/// `midge_user_property` in the header.
#[repr(C)]
pub struct MidgeUserProperty {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// `midge_properties` in the header.
#[repr(C)]
pub struct MidgeProperties {
    /// -1 absent, 0 bytes, 1 UTF-8 text.
    pub payload_format: c_int,
    /// Seconds; -1 for none.
    pub message_expiry: i64,
    pub content_type: *const c_char,
    pub response_topic: *const c_char,
    pub correlation_data: *const c_void,
    pub correlation_len: usize,
    pub user_properties: *const MidgeUserProperty,
    pub user_property_count: usize,
}

/// The C view of a message's properties, rebuilt per message into buffers
/// kept by the subscription (no allocation once they are large enough).
#[derive(Default)]
pub(super) struct PropertiesView {
    strings: Vec<Vec<u8>>,
    users: Vec<MidgeUserProperty>,
    view: Option<MidgeProperties>,
}

// SAFETY: the pointers point into the view's own buffers (or are NULL);
// they are only read by the host's callback, on the thread that drives the
// broker, while the view is not changed.
unsafe impl Send for PropertiesView {}

impl PropertiesView {
    /// A pointer to the properties as C sees them; NULL when there are
    /// none. Valid until the next call.
    pub(super) fn of(&mut self, p: &Properties) -> *const MidgeProperties {
        let Some(v) = p.get() else {
            return std::ptr::null();
        };
        let n = 2 + 2 * v.user_properties.len();
        self.strings.resize_with(n, Vec::new);
        let mut strings = self.strings.iter_mut();
        let mut next = |s: Option<&str>| match (s, strings.next()) {
            (Some(s), Some(buf)) => c_text(buf, s).as_ptr(),
            _ => std::ptr::null(),
        };
        let content_type = next(v.content_type.as_deref());
        let response_topic = next(v.response_topic.as_deref());
        self.users.clear();
        for (name, value) in &v.user_properties {
            let name = next(Some(name));
            let value = next(Some(value));
            self.users.push(MidgeUserProperty { name, value });
        }
        let correlation = v.correlation_data.as_deref();
        self.view = Some(MidgeProperties {
            payload_format: v.payload_format_indicator.map_or(-1, c_int::from),
            message_expiry: v.message_expiry_interval.map_or(-1, i64::from),
            content_type,
            response_topic,
            correlation_data: correlation.map_or(std::ptr::null(), bytes_ptr),
            correlation_len: correlation.map_or(0, <[u8]>::len),
            user_properties: self.users.as_ptr(),
            user_property_count: self.users.len(),
        });
        self.view
            .as_ref()
            .map_or(std::ptr::null(), |v| v as *const _)
    }
}

/// # Safety
/// `s` NULL or NUL-terminated.
unsafe fn optional_text(s: *const c_char, what: &str) -> Result<Option<String>, String> {
    if s.is_null() {
        return Ok(None);
    }
    text(s, what).map(|s| Some(s.to_string()))
}

/// The properties a host passes in, as the broker keeps them.
///
/// # Safety
/// `p` NULL or a valid `midge_properties` whose pointers are valid as
/// documented.
unsafe fn properties_from(p: *const MidgeProperties) -> Result<Properties, String> {
    let Some(p) = p.as_ref() else {
        return Ok(Properties::NONE);
    };
    let mut v = PropertyValues {
        payload_format_indicator: match p.payload_format {
            -1 => None,
            0 => Some(false),
            1 => Some(true),
            n => return Err(format!("payload_format must be -1, 0 or 1, not {n}")),
        },
        message_expiry_interval: match p.message_expiry {
            -1 => None,
            n => Some(u32::try_from(n).map_err(|_| format!("message_expiry {n} out of range"))?),
        },
        content_type: optional_text(p.content_type, "content_type")?,
        response_topic: optional_text(p.response_topic, "response_topic")?,
        ..PropertyValues::default()
    };
    if !p.correlation_data.is_null() {
        let data = payload(p.correlation_data, p.correlation_len)?;
        v.correlation_data = Some(Bytes::copy_from_slice(data));
    }
    if p.user_property_count > 0 {
        if p.user_properties.is_null() {
            return Err("user_properties is NULL".into());
        }
        let users = std::slice::from_raw_parts(p.user_properties, p.user_property_count);
        for u in users {
            let name = text(u.name, "user property name")?.to_string();
            v.user_properties
                .push((name, text(u.value, "user property value")?.to_string()));
        }
    }
    if v.response_topic
        .as_deref()
        .is_some_and(|t| t.contains(['+', '#']))
    {
        return Err("response_topic has a wildcard".into());
    }
    Ok(Properties::from(v))
}

/// `midge_publish` with MQTT 5 properties (`props` may be NULL). Same
/// return values.
///
/// # Safety
/// As `midge_publish`; `props` NULL or valid as the header says.
#[no_mangle]
pub unsafe extern "C" fn midge_publish_props(
    b: *mut MidgeBroker,
    topic: *const c_char,
    payload_ptr: *const c_void,
    len: usize,
    qos_level: c_int,
    retain: c_int,
    props: *const MidgeProperties,
) -> c_int {
    with_broker(b, -1, |i| {
        let topic = text(topic, "topic")?;
        let data = payload(payload_ptr, len)?;
        let properties = properties_from(props)?;
        let q = qos(qos_level)?;
        let result = i
            .broker
            .publish_with_properties(topic, data, q, retain != 0, properties);
        messages::published(result)
    })
}

/// `midge_auth_request` in the header.
#[repr(C)]
pub struct MidgeAuthRequest {
    pub client_id: *const c_char,
    pub username: *const c_char,
    pub address: *const c_char,
    pub method: *const c_char,
    pub data: *const c_void,
    pub data_len: usize,
    pub step: u32,
    pub reauthentication: c_int,
}

pub type MidgeAuthMethodCb = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        r: *const MidgeAuthRequest,
        out: *mut c_void,
        out_cap: usize,
        out_len: *mut usize,
    ) -> c_int,
>;

/// The largest Authentication Data a callback may write (a binary
/// property's limit).
const AUTH_DATA_MAX: usize = 65_535;

/// Lets the host implement the enhanced authentication method `method`:
/// `cb` answers each step of an MQTT 5 AUTH exchange. 0, or -1 on error.
///
/// # Safety
/// `b` from `midge_new`; `method` NUL-terminated; `cb` safe to call with
/// `user` inside `midge_poll`.
#[no_mangle]
pub unsafe extern "C" fn midge_set_auth_method(
    b: *mut MidgeBroker,
    method: *const c_char,
    cb: MidgeAuthMethodCb,
    user: *mut c_void,
) -> c_int {
    with_broker(b, -1, |i| {
        let method = text(method, "method")?;
        let cb = cb.ok_or("callback is NULL")?;
        let user = UserPtr(user);
        let mut strings: [Vec<u8>; 4] = Default::default();
        let mut out = vec![0u8; AUTH_DATA_MAX];
        i.broker
            .set_auth_method(method, move |r: &AuthRequest<'_>| {
                let user = user;
                let [id, name, addr, meth] = &mut strings;
                let address = r.addr.to_string();
                let request = MidgeAuthRequest {
                    client_id: c_text(id, r.client_id).as_ptr(),
                    username: r
                        .username
                        .map_or(std::ptr::null(), |u| c_text(name, u).as_ptr()),
                    address: c_text(addr, &address).as_ptr(),
                    method: c_text(meth, r.method).as_ptr(),
                    data: r.data.map_or(std::ptr::null(), bytes_ptr),
                    data_len: r.data.map_or(0, <[u8]>::len),
                    step: r.step,
                    reauthentication: c_int::from(r.reauthentication),
                };
                let mut len = 0usize;
                // SAFETY: the host promised `cb` accepts these arguments; `out`
                // is writable for its whole length.
                let verdict = unsafe {
                    cb(
                        user.0,
                        &request,
                        out.as_mut_ptr().cast(),
                        out.len(),
                        &mut len,
                    )
                };
                let data = out.get(..len.min(AUTH_DATA_MAX)).map(<[u8]>::to_vec);
                match verdict {
                    0 => AuthStep::Accept(data.filter(|d| !d.is_empty())),
                    1 => AuthStep::Continue(data.unwrap_or_default()),
                    _ => AuthStep::Refuse,
                }
            });
        Ok(0)
    })
}
