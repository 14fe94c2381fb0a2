//! The host program's calls on a [`Broker`]: publishing, subscribing,
//! hooks, the [`Remote`] handle, disconnecting a client and reloading the
//! files. Each is the engine's; what it makes the engine write (a publish's
//! deliveries, a kicked client's last bytes) goes out before it returns.

use super::*;
use crate::host::{Access, AuthDecision, AuthRequest, AuthStep, Credentials, Event, HostMessage};
use crate::protocol::{Properties, QoS};

impl Broker {
    /// Writes what the engine's host calls produced, now.
    fn flush(&mut self) {
        self.engine.flush_dirty(&mut self.streams);
        self.close_ended();
    }

    /// Publishes a message from the host program, as if a local client had
    /// sent it: retained if asked, delivered to every matching subscriber,
    /// written out before this returns.
    ///
    /// Flow control (with `queue_full block`, the default): a QoS 1/2
    /// message that fills an online subscriber's queue is still queued,
    /// but the host is then paused like a client publisher
    /// ([`Published::Paused`]): further QoS 1/2 publishes fail with
    /// [`io::ErrorKind::WouldBlock`] until the queue drains, which the
    /// ready callback ([`Broker::set_ready_callback`]) announces.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> io::Result<Published> {
        self.publish_with_properties(topic, payload, qos, retain, Properties::NONE)
    }

    /// [`Broker::publish`] with MQTT 5 properties (User Properties,
    /// Content Type, Response Topic, Correlation Data, Payload Format
    /// Indicator, Message Expiry Interval), forwarded to MQTT 5
    /// subscribers as a client's would be. A Topic Alias or Subscription
    /// Identifier among them is left out (they belong to one connection).
    pub fn publish_with_properties(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> io::Result<Published> {
        let published = self
            .engine
            .publish_with_properties(topic, payload, qos, retain, properties);
        self.flush();
        published
    }

    /// Subscribes the host program to `filter`: `callback` gets every
    /// matching message (at most `qos`), starting with matching retained
    /// messages. It runs inside the loop and must not block.
    pub fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        callback: impl FnMut(&HostMessage<'_>) + Send + 'static,
    ) -> io::Result<HostSubscription> {
        self.engine.subscribe(filter, qos, callback)
    }

    /// Ends a host subscription; false if it was already gone.
    pub fn unsubscribe(&mut self, sub: HostSubscription) -> bool {
        self.engine.unsubscribe(sub)
    }

    /// Called when clients connect and disconnect.
    pub fn set_event_callback(&mut self, callback: impl FnMut(&Event<'_>) + Send + 'static) {
        self.engine.set_event_callback(callback);
    }

    /// Decides every CONNECT (after its syntax is checked and before any
    /// takeover): accept, or refuse with CONNACK 4 or 5.
    pub fn set_authenticator(
        &mut self,
        check: impl FnMut(&Credentials<'_>) -> AuthDecision + Send + 'static,
    ) {
        self.engine.set_authenticator(check);
    }

    /// Decides each publish and subscribe of a client: (client id, user
    /// name, access, topic or filter) -> allowed.
    pub fn set_authorizer(
        &mut self,
        check: impl FnMut(&str, Option<&str>, Access, &str) -> bool + Send + 'static,
    ) {
        self.engine.set_authorizer(check);
    }

    /// Lets the host implement the enhanced authentication method `method`
    /// (an MQTT 5 client names it in CONNECT): `handler` answers each step
    /// of the exchange. It runs inside the loop and must not block.
    pub fn set_auth_method(
        &mut self,
        method: &str,
        handler: impl FnMut(&AuthRequest<'_>) -> AuthStep + Send + 'static,
    ) {
        self.engine.set_auth_method(method, handler);
    }

    /// A handle for other threads (see [`Remote`]).
    pub fn remote(&self) -> Remote {
        self.engine.remote(self.shutdown_handle())
    }

    /// True while the host's QoS 1/2 publishes are held back (see
    /// [`Broker::publish`]).
    pub fn host_paused(&self) -> bool {
        self.engine.host_paused()
    }

    /// Called (inside [`Broker::poll_once`]) when held-back host publishes
    /// may go on.
    pub fn set_ready_callback(&mut self, callback: impl FnMut() + Send + 'static) {
        self.engine.set_ready_callback(callback);
    }

    /// Closes the connection of the client with this id, as if it had gone
    /// away without DISCONNECT (its Will is published). False if no such
    /// client is connected.
    pub fn disconnect_client(&mut self, client_id: &str) -> bool {
        let found = self.engine.disconnect_client(client_id);
        self.flush();
        found
    }

    /// Reloads the password and ACL files, as SIGHUP does: connections
    /// stay, subscriptions the new ACL no longer allows are removed. On an
    /// error the previous files stay in force.
    pub fn reload_auth(&mut self) -> Result<(), String> {
        let result = self.engine.reload();
        self.flush();
        result
    }
}
