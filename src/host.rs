//! What a host program that embeds the broker can plug in: callbacks for
//! messages it subscribed to, connection events, and authentication and
//! authorization hooks. The broker calls them from inside its loop, on the
//! thread that drives it; they must not block. They are `Send` so that a
//! broker can be moved to the thread that runs it.

use crate::protocol::{Properties, QoS};
use std::net::SocketAddr;

/// A message delivered to a host subscription.
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
    /// The message's MQTT 5 properties as its publisher sent them (User
    /// Properties, Content Type, Response Topic, Correlation Data, Payload
    /// Format Indicator, Message Expiry Interval as received); empty for
    /// messages from 3.x clients.
    pub properties: &'a Properties,
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

/// One step of an MQTT 5 enhanced authentication exchange (AUTH packets)
/// for a method the host implements ([`crate::Broker::set_auth_method`]).
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The CONNECT's client id (may be empty: one is assigned later).
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub addr: SocketAddr,
    pub method: &'a str,
    /// The client's Authentication Data, if it sent any.
    pub data: Option<&'a [u8]>,
    /// 0 for the CONNECT (or the AUTH that starts a re-authentication),
    /// then 1, 2, ... for each AUTH the client answers with.
    pub step: u32,
    /// A re-authentication of a connected client.
    pub reauthentication: bool,
}

/// The host's answer to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Authenticated: CONNACK (or, for a re-authentication, AUTH Success)
    /// carries this Authentication Data, if any. The user name and
    /// password checks of the CONNECT are not made then.
    Accept(Option<Vec<u8>>),
    /// Send this data in AUTH (Continue Authentication) and call again
    /// with the client's answer.
    Continue(Vec<u8>),
    /// Refused: CONNACK 0x87 (a re-authentication: DISCONNECT 0x87).
    Refuse,
}

pub type AuthMethodHandler = Box<dyn FnMut(&AuthRequest<'_>) -> AuthStep + Send>;
