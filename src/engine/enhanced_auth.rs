//! MQTT 5 enhanced authentication (§4.12): a CONNECT with an
//! Authentication Method the host implements ([`crate::Broker::set_auth_method`])
//! starts an exchange of AUTH packets, step by step through the host's
//! handler, before the CONNECT is accepted; a connected client may
//! re-authenticate the same way. A method nobody implements gets CONNACK
//! 0x8C [MQTT-4.12.0-1]; AUTH outside an exchange, or naming another
//! method, is a protocol error.

use super::*;
use crate::host::{AuthMethodHandler, AuthRequest, AuthStep};
use bytes::Bytes;

/// AUTH round trips one exchange may take: a hostile client cannot keep
/// the handler busy for ever (before CONNACK the connect timeout also
/// applies).
const MAX_ROUNDS: u32 = 16;

/// What an accepted exchange puts into CONNACK.
#[derive(Debug)]
pub(super) struct Authenticated {
    pub method: String,
    pub data: Option<Bytes>,
}

/// The exchange of one connection, kept while it is connected so that it
/// can re-authenticate with the same method.
#[derive(Debug)]
pub(super) struct Exchange {
    method: String,
    step: u32,
    /// The CONNECT waiting for the exchange to end; `None` once connected.
    pending: Option<Box<protocol::Connect>>,
    /// A re-authentication is under way.
    reauth: bool,
}

impl Engine {
    /// See [`crate::Broker::set_auth_method`].
    pub fn set_auth_method(
        &mut self,
        method: &str,
        handler: impl FnMut(&AuthRequest<'_>) -> AuthStep + Send + 'static,
    ) {
        let handler: AuthMethodHandler = Box::new(handler);
        self.auth_methods.insert(method.to_string(), handler);
    }

    /// A CONNECT with an Authentication Method: the exchange's first step.
    pub(super) fn start_auth(
        &mut self,
        key: ConnKey,
        c: protocol::Connect,
        method: String,
    ) -> Result<(), Reason> {
        if !self.auth_methods.contains_key(&method) {
            // [MQTT-4.12.0-1]
            let why = format!("authentication method {method:?} not supported");
            return self.refuse(key, ReasonCode::BadAuthenticationMethod, &c.client_id, &why);
        }
        let data = c
            .properties
            .get()
            .and_then(|p| p.authentication_data.clone());
        let exchange = Exchange {
            method,
            step: 0,
            pending: Some(Box::new(c)),
            reauth: false,
        };
        self.auth_exchanges.insert(key, exchange);
        self.auth_step(key, data.as_deref())
    }

    /// An AUTH from the client: the next step of its exchange, or the start
    /// of a re-authentication.
    pub(super) fn on_auth(
        &mut self,
        key: ConnKey,
        a: protocol::ReasonAndProperties,
    ) -> Result<(), Reason> {
        let unexpected = Reason::ProtocolError(Violation::UnexpectedPacket("AUTH"));
        let Some(ex) = self.auth_exchanges.get_mut(&key) else {
            return Err(unexpected); // no exchange [MQTT-4.12.0-7]
        };
        let props = a.properties.get();
        if props.and_then(|p| p.authentication_method.as_deref()) != Some(ex.method.as_str()) {
            return Err(unexpected); // another method [MQTT-4.12.0-5]
        }
        match a.reason {
            ReasonCode::ContinueAuthentication if ex.pending.is_some() || ex.reauth => {
                ex.step += 1;
            }
            ReasonCode::ReAuthenticate if ex.pending.is_none() && !ex.reauth => {
                ex.reauth = true;
                ex.step = 0;
            }
            _ => return Err(unexpected), // [MQTT-4.12.0-3], [MQTT-4.12.1-1]
        }
        if ex.step > MAX_ROUNDS {
            return self.auth_refused(key, "too many authentication rounds");
        }
        let data = props.and_then(|p| p.authentication_data.clone());
        self.auth_step(key, data.as_deref())
    }

    /// Asks the host's handler about the current step and acts on the
    /// answer.
    fn auth_step(&mut self, key: ConnKey, data: Option<&[u8]>) -> Result<(), Reason> {
        let (Some(ex), Some(conn)) = (self.auth_exchanges.get(&key), self.conns.get(key)) else {
            return Ok(());
        };
        let session = conn.session().and_then(|sid| self.sessions.get(sid));
        let (client_id, username) = match (&ex.pending, session) {
            (Some(c), _) => (c.client_id.clone(), c.username.clone()),
            (None, Some(s)) => (
                s.client_id.to_string(),
                s.username.as_deref().map(str::to_string),
            ),
            (None, None) => (String::new(), None),
        };
        let request = AuthRequest {
            client_id: &client_id,
            username: username.as_deref(),
            addr: conn.addr,
            method: &ex.method,
            data,
            step: ex.step,
            reauthentication: ex.reauth,
        };
        let Some(handler) = self.auth_methods.get_mut(&ex.method) else {
            return self.auth_refused(key, "authentication method removed");
        };
        match handler(&request) {
            AuthStep::Continue(data) => {
                self.send_auth(key, ReasonCode::ContinueAuthentication, Some(data));
                Ok(())
            }
            AuthStep::Accept(data) => self.auth_accepted(key, data),
            AuthStep::Refuse => {
                self.auth_refused(key, "refused by the host's authentication method")
            }
        }
    }

    /// The exchange succeeded: the waiting CONNECT goes on, or a
    /// re-authentication ends with AUTH Success.
    fn auth_accepted(&mut self, key: ConnKey, data: Option<Vec<u8>>) -> Result<(), Reason> {
        let Some(ex) = self.auth_exchanges.get_mut(&key) else {
            return Ok(());
        };
        ex.reauth = false;
        let method = ex.method.clone();
        let Some(connect) = ex.pending.take() else {
            self.send_auth(key, ReasonCode::Success, data);
            return Ok(());
        };
        let auth = Authenticated {
            method,
            data: data.map(Bytes::from),
        };
        self.accept_connect(key, *connect, ProtocolLevel::V5, Some(auth))
    }

    /// The exchange failed: CONNACK 0x87 before the CONNECT is accepted,
    /// DISCONNECT 0x87 for a re-authentication.
    fn auth_refused(&mut self, key: ConnKey, why: &str) -> Result<(), Reason> {
        let Some(ex) = self.auth_exchanges.remove(&key) else {
            return Ok(());
        };
        match ex.pending {
            Some(c) => self.refuse(key, ReasonCode::NotAuthorized, &c.client_id, why),
            None => Err(Reason::AuthFailed),
        }
    }

    /// AUTH to the client, with the exchange's method.
    fn send_auth(&mut self, key: ConnKey, reason: ReasonCode, data: Option<Vec<u8>>) {
        let Some(ex) = self.auth_exchanges.get(&key) else {
            return;
        };
        let props = PropertyValues {
            authentication_method: Some(ex.method.clone()),
            authentication_data: data.map(Bytes::from),
            ..PropertyValues::default()
        };
        let packet = Packet::Auth(protocol::ReasonAndProperties {
            reason,
            properties: props.into(),
        });
        // At version 5 whatever `reply` would pick: before CONNACK the
        // connection has no level yet.
        self.reply(key, |out, _| {
            if protocol::encode(&packet, ProtocolLevel::V5, out).is_err() {
                debug!("AUTH not encodable (authentication data over 65,535 bytes?)");
            }
        });
    }
}
