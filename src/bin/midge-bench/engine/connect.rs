//! Getting a client ready: CONNECT (credentials, session, MQTT 5
//! properties), the broker's CONNACK (refusals in words; an MQTT 5
//! broker's limits applied), SUBSCRIBE and SUBACK, and the connect
//! timeout.

use super::*;
use midge::protocol::{
    self, ConnAck, Connect, Packet, Properties, PropertyValues, QoS, ReasonCode, SubAck, Subscribe,
    SubscriptionOptions,
};

impl Bench {
    /// The client id of a client.
    pub(super) fn client_name(&self, role: Role) -> String {
        let (id, tag, i) = match role {
            Role::Pub(p) => (&self.pubs[p as usize].client_id, 'p', p),
            Role::Sub(s) => (&self.subs[s as usize].client_id, 's', s),
        };
        match id {
            Some(id) => id.clone(),
            None => format!("{}{tag}{}", self.s.client_prefix, i + 1),
        }
    }

    pub(super) fn encode_connect(&self, role: Role, out: &mut BytesMut) -> Result<(), String> {
        let clean = match role {
            Role::Pub(p) => self.pubs[p as usize].clean,
            Role::Sub(s) => self.subs[s as usize].clean,
        };
        let mut properties = Properties::NONE;
        if self.s.level == ProtocolLevel::V5 && !clean {
            properties = PropertyValues {
                session_expiry_interval: Some(self.s.session_expiry),
                ..PropertyValues::default()
            }
            .into();
        }
        let connect = Packet::Connect(Box::new(Connect {
            level: Some(self.s.level),
            clean_session: clean,
            keep_alive: self.s.keep_alive,
            client_id: self.client_name(role),
            will: None,
            username: self.s.username.clone(),
            password: self.s.password.clone().map(Into::into),
            properties,
        }));
        protocol::encode(&connect, self.s.level, out)
            .map_err(|e| format!("cannot encode CONNECT: {e}"))
    }

    pub(super) fn on_connack(&mut self, key: usize, ack: ConnAck) -> Result<(), String> {
        if self.clients[key].state != CState::WaitConnack {
            return Err("unexpected CONNACK".into());
        }
        if ack.code != ReasonCode::Success {
            return Err(self.refusal(&ack));
        }
        let role = self.clients[key].role;
        if let Some(p) = ack.properties.get() {
            self.apply_limits(key, role, p)?;
        }
        match role {
            Role::Pub(_) => {
                self.clients[key].state = CState::Ready;
                self.on_ready(role);
            }
            Role::Sub(s) => {
                let sub = &self.subs[s as usize];
                let options =
                    SubscriptionOptions::qos(QoS::from_u8(sub.qos).unwrap_or(QoS::AtMostOnce));
                let c = &mut self.clients[key];
                let mut packets = 0;
                for (i, chunk) in sub.filters.chunks(FILTERS_PER_SUBSCRIBE).enumerate() {
                    let subscribe = Packet::Subscribe(Subscribe {
                        pkid: i as u16 + 1,
                        filters: chunk.iter().map(|f| (f.clone(), options)).collect(),
                        properties: Properties::NONE,
                    });
                    protocol::encode(&subscribe, self.s.level, &mut c.wbuf)
                        .map_err(|e| format!("cannot encode SUBSCRIBE: {e}"))?;
                    packets += 1;
                }
                c.state = CState::WaitSuback(packets);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
        }
        Ok(())
    }

    /// A refused CONNACK, in words, with the code as sent.
    fn refusal(&self, ack: &ConnAck) -> String {
        let code = if self.s.level == ProtocolLevel::V5 {
            format!("reason code 0x{:02X}", ack.code as u8)
        } else {
            format!("return code {}", ack.code.v3_connack_code())
        };
        let mut s = format!(
            "the broker refused the connection: CONNACK {code} ({})",
            reason_text(ack.code)
        );
        if let Some(text) = ack
            .properties
            .get()
            .and_then(|p| p.reason_string.as_deref())
        {
            s.push_str(&format!(": \"{text}\""));
        }
        if ack.code == ReasonCode::BadUserNameOrPassword || ack.code == ReasonCode::NotAuthorized {
            s.push_str(if self.s.username.is_none() {
                " -- try --username and --password"
            } else {
                " -- check --username and --password"
            });
        }
        s
    }

    /// What an MQTT 5 broker's CONNACK properties ask of this client.
    fn apply_limits(&mut self, key: usize, role: Role, p: &PropertyValues) -> Result<(), String> {
        if let Some(k) = p.server_keep_alive {
            self.clients[key].keep_alive = k;
        }
        let max_qos = p.maximum_qos.map_or(2, |q| q as u8);
        match role {
            Role::Pub(i) => {
                let publ = &mut self.pubs[i as usize];
                if let Some(m) = p.receive_maximum {
                    publ.inflight = publ.inflight.min(m as usize).max(1);
                }
                for &st in &publ.streams {
                    let st = &self.streams[st as usize];
                    if st.qos > max_qos {
                        return Err(format!("the broker allows QoS {max_qos} at most; this stream publishes at QoS {}", st.qos));
                    }
                    if st.retain && p.retain_available == Some(false) {
                        return Err(
                            "the broker does not support retained messages (Retain Available 0)"
                                .into(),
                        );
                    }
                    let size = protocol::publish_len(
                        self.s.level,
                        &st.topic,
                        st.size.1,
                        &Properties::NONE,
                        QoS::from_u8(st.qos).unwrap_or(QoS::AtMostOnce),
                    );
                    if let Some(max) = p.maximum_packet_size.filter(|&m| size > m as usize) {
                        return Err(format!("the broker accepts packets up to {max} bytes; a PUBLISH here is {size}"));
                    }
                }
            }
            Role::Sub(s) => {
                let qos = self.subs[s as usize].qos;
                if qos > max_qos {
                    return Err(format!(
                        "the broker allows QoS {max_qos} at most; this subscriber asks for {qos}"
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_suback(&mut self, key: usize, ack: SubAck) -> Result<(), String> {
        let (role, state) = (self.clients[key].role, self.clients[key].state);
        let CState::WaitSuback(left) = state else {
            return Err("unexpected SUBACK".into());
        };
        let Role::Sub(s) = role else {
            return Err("a publisher received a SUBACK".into());
        };
        let sub = &self.subs[s as usize];
        let first = (ack.pkid as usize).saturating_sub(1) * FILTERS_PER_SUBSCRIBE;
        for (j, &code) in ack.codes.iter().enumerate() {
            let filter = sub.filters.get(first + j).map_or("?", String::as_str);
            if code.is_error() {
                return Err(format!(
                    "the broker refused the subscription to '{filter}' (SUBACK 0x{:02X}: {})",
                    code as u8,
                    reason_text(code)
                ));
            }
            if (code as u8) < sub.qos {
                return Err(format!(
                    "the broker granted QoS {} for '{filter}', below the requested {}",
                    code as u8, sub.qos
                ));
            }
        }
        if left <= 1 {
            self.clients[key].state = CState::Ready;
            self.on_ready(role);
        } else {
            self.clients[key].state = CState::WaitSuback(left - 1);
        }
        Ok(())
    }

    /// Clients still connecting after `--connect-timeout` end the run.
    pub(super) fn check_connect_timeouts(&mut self, now: Instant) {
        let limit = self.s.connect_timeout;
        let late = self.clients.iter().find(|(_, c)| {
            c.state != CState::Ready && now.saturating_duration_since(c.started) >= limit
        });
        let Some((key, c)) = late else {
            return;
        };
        let why = match c.state {
            CState::Connecting => format!(
                "no TCP connection to {} within {:?} (a firewall, or a wrong address?)",
                self.s.addr, limit
            ),
            CState::WaitConnack => format!("connected, but no CONNACK within {limit:?}"),
            _ => format!("connected, but no SUBACK within {limit:?}"),
        };
        self.lost_client(key, &why);
    }
}

/// A reason code in words: `BadUserNameOrPassword` -> "bad user name or
/// password".
pub fn reason_text(code: ReasonCode) -> String {
    let name = format!("{code:?}");
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out.replace("qo s", "QoS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_read_as_words() {
        assert_eq!(
            reason_text(ReasonCode::BadUserNameOrPassword),
            "bad user name or password"
        );
        assert_eq!(
            reason_text(ReasonCode::QoSNotSupported),
            "QoS not supported"
        );
    }
}
