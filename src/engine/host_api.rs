//! The host program as a client of its own broker: publishing (with
//! properties), subscribing with a callback, and its hooks for events,
//! authentication and authorization.

use super::*;

impl Engine {
    /// The host's publish ([`crate::Broker::publish`] and
    /// [`crate::Broker::publish_with_properties`]); the caller writes the
    /// output.
    pub fn publish_with_properties(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        mut properties: Properties,
    ) -> io::Result<Published> {
        if !topic::valid_name(topic) || topic.contains('\0') || topic.len() > 65_535 {
            return Err(invalid("invalid topic name"));
        }
        if self.host.paused && qos != QoS::AtMostOnce {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a subscriber's queue is full: publish again after the ready callback",
            ));
        }
        if let Some(v) = properties.get() {
            if v.topic_alias.is_some() || !v.subscription_identifiers.is_empty() {
                let v = properties.values_mut();
                v.topic_alias = None;
                v.subscription_identifiers.clear();
            }
        }
        self.now_ms = timer::millis(self.started, Instant::now());
        let payload = bytes::Bytes::copy_from_slice(payload);
        let msg = Arc::new(self.message_of(topic.into(), payload, properties, retain));
        if retain {
            self.set_retained(&msg, qos, None);
        }
        self.stats.messages_received += 1;
        self.stats.publish_bytes_received += msg.payload.len() as u64;
        let was_paused = self.host.paused;
        self.route(&mut Routed::Shared(msg), qos, Origin::Host);
        Ok(if self.host.paused && !was_paused {
            Published::Paused
        } else {
            Published::Done
        })
    }

    /// See [`crate::Broker::subscribe`].
    pub fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        callback: impl FnMut(&HostMessage<'_>) + Send + 'static,
    ) -> io::Result<HostSubscription> {
        if !topic::valid_filter(filter) || filter.contains('\0') || filter.len() > 65_535 {
            return Err(invalid("invalid topic filter"));
        }
        let entry = self.host_subs.vacant_entry();
        let key = HostKey::new(entry.key()).ok_or_else(|| invalid("too many subscriptions"))?;
        let (_, filter) = self
            .router
            .subscribe(Destination::Host(key), filter, qos, false);
        entry.insert(HostSub {
            filter: filter.clone(),
            callback: Box::new(callback),
        });
        let mut found = Vec::new();
        self.retained.matching(&filter, &mut found);
        self.drop_revoked_retained(&mut found, |f| &f.0);
        for (msg, stored) in found {
            self.deliver_to_host(key, msg.view(), self.out_qos(stored, qos), true);
        }
        Ok(HostSubscription(key))
    }

    /// See [`crate::Broker::unsubscribe`].
    pub fn unsubscribe(&mut self, sub: HostSubscription) -> bool {
        let Some(host) = self.host_subs.try_remove(sub.0.index()) else {
            return false;
        };
        self.router
            .unsubscribe(Destination::Host(sub.0), &host.filter);
        true
    }

    /// See [`crate::Broker::set_event_callback`].
    pub fn set_event_callback(&mut self, callback: impl FnMut(&Event<'_>) + Send + 'static) {
        self.on_event = Some(Box::new(callback));
    }

    /// See [`crate::Broker::set_authenticator`].
    pub fn set_authenticator(
        &mut self,
        check: impl FnMut(&Credentials<'_>) -> AuthDecision + Send + 'static,
    ) {
        self.authenticator = Some(Box::new(check));
    }

    /// See [`crate::Broker::set_authorizer`].
    pub fn set_authorizer(
        &mut self,
        check: impl FnMut(&str, Option<&str>, Access, &str) -> bool + Send + 'static,
    ) {
        self.authorizer = Some(Box::new(check));
    }

    pub(super) fn emit(&mut self, event: Event<'_>) {
        if let Some(cb) = self.on_event.as_mut() {
            cb(&event);
        }
    }
}
