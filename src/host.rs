//! What a host program that embeds the broker can plug in: callbacks for
//! messages it subscribed to, connection events, and authentication and
//! authorization hooks. The broker calls them from inside its loop, on the
//! thread that drives it; they must not block. They are `Send` so that a
//! broker can be moved to the thread that runs it.

use crate::protocol::QoS;
use std::net::SocketAddr;

/// A message delivered to a host subscription. (Its MQTT 5 properties,
/// such as user properties, response topic and correlation data, are not
/// passed to the host yet.)
#[derive(Debug, Clone, Copy)]
pub struct HostMessage<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    /// True for a retained message sent because the subscription is new.
    pub retain: bool,
    /// The client id of the client whose PUBLISH this is; `None` for the
    /// host's own publishes, Wills and retained copies (whose publisher is
    /// not kept).
    pub publisher: Option<&'a str>,
}

/// Called for each message matching a host subscription.
pub type MessageCallback = Box<dyn FnMut(&HostMessage<'_>) + Send>;

/// A subscription of the host program: where its messages go, and the
/// filter it holds in the router (to remove it again).
pub(crate) struct HostSub {
    pub filter: std::sync::Arc<str>,
    pub callback: MessageCallback,
}

/// Something that happened to a client.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A CONNECT was accepted.
    Connected {
        client_id: &'a str,
        addr: SocketAddr,
        username: Option<&'a str>,
    },
    /// A connected client went away; `reason` is what the log says.
    Disconnected {
        client_id: &'a str,
        addr: SocketAddr,
        username: Option<&'a str>,
        reason: &'a str,
    },
}

pub type EventCallback = Box<dyn FnMut(&Event<'_>) + Send>;

/// What a client presented in its CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub addr: SocketAddr,
}

/// The answer to a CONNECT, sent as its CONNACK return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    Accept,
    /// CONNACK 4: bad user name or password.
    BadCredentials,
    /// CONNACK 5: not authorized.
    NotAuthorized,
}

pub type Authenticator = Box<dyn FnMut(&Credentials<'_>) -> AuthDecision + Send>;

/// What a client asks to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Publish to a topic name (a denied publish is acknowledged and dropped
    /// [MQTT-3.3.5-2]; a denied Will is not published).
    Publish,
    /// Subscribe with a topic filter (a denied one gets SUBACK 0x80).
    Subscribe,
}

/// (client id, user name, access, topic or filter) -> allowed?
pub type Authorizer = Box<dyn FnMut(&str, Option<&str>, Access, &str) -> bool + Send>;
