//! Protocol violations the decoder cannot see on its own: they need the
//! connection's state or the topic rules ([`crate::topic`]). The server
//! finds them; each has the MQTT 5 reason code it is reported with.

use super::ReasonCode;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A second CONNECT on a connection [MQTT-3.1.0-2].
    SecondConnect,
    /// The first packet is not CONNECT [MQTT-3.1.0-1].
    FirstPacketNotConnect,
    /// A packet a server never receives here (an AUTH with no
    /// authentication exchange going on...), by name.
    UnexpectedPacket(&'static str),
    /// A PUBLISH's topic name is empty or has wildcards [MQTT-3.3.2-2],
    /// [MQTT-4.7.3-1].
    InvalidTopicName,
    /// The Will topic is not a valid topic name [MQTT-3.1.4-1].
    InvalidWillTopic,
    /// A topic filter breaks the wildcard rules [MQTT-4.7.1-1],
    /// [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.3-1]; kept for the log.
    InvalidTopicFilter(String),
    /// A `$share/` filter without a valid share name and filter
    /// [MQTT-4.8.2-1], [MQTT-4.8.2-2]; kept for the log.
    InvalidSharedFilter(String),
    /// No Local on a shared subscription [MQTT-3.8.3-4].
    NoLocalShared(String),
    /// A topic name (a PUBLISH's, or the Will's when `will`) with more
    /// levels than `max_topic_levels`.
    TopicTooDeep { max: usize, will: bool },
    /// A SUBSCRIBE filter with more levels than `max_topic_levels`.
    FilterTooDeep(usize),
    /// An acknowledgement of the wrong type for the message in flight
    /// under its packet id (PUBCOMP for a QoS 1 message, PUBACK for a QoS
    /// 2 one, PUBCOMP before PUBREC...): named packet and id. mosquitto
    /// closes as a protocol error too.
    WrongAck(&'static str, u16),
    /// More unacknowledged QoS 1/2 PUBLISHes than midge's Receive Maximum
    /// (MQTT 5) [MQTT-3.3.4-8].
    ReceiveMaximumExceeded(u16),
    /// A Topic Alias above midge's Topic Alias Maximum [MQTT-3.3.2-9].
    TopicAliasTooLarge(u16),
    /// An empty topic with a Topic Alias midge has no topic for, or with
    /// with no Topic Alias at all (0 here).
    UnknownTopicAlias(u16),
    /// A QoS above the Maximum QoS midge announced [MQTT-3.2.2-11].
    QosNotSupported(u8),
    /// RETAIN set although midge announced Retain Available 0
    /// [MQTT-3.2.2-14].
    RetainNotSupported,
    /// DISCONNECT sets a Session Expiry Interval after CONNECT's was 0
    /// [MQTT-3.14.2-2].
    SessionExpiryRaised,
}

impl Violation {
    /// The MQTT 5 reason code for this violation (in CONNACK for the Will
    /// topic, in DISCONNECT otherwise).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Violation::SecondConnect
            | Violation::FirstPacketNotConnect
            | Violation::UnexpectedPacket(_)
            | Violation::WrongAck(..)
            | Violation::InvalidSharedFilter(_)
            | Violation::NoLocalShared(_) => ReasonCode::ProtocolError,
            Violation::InvalidTopicName
            | Violation::InvalidWillTopic
            | Violation::TopicTooDeep { .. } => ReasonCode::TopicNameInvalid,
            Violation::InvalidTopicFilter(_) | Violation::FilterTooDeep(_) => {
                ReasonCode::TopicFilterInvalid
            }
            Violation::ReceiveMaximumExceeded(_) => ReasonCode::ReceiveMaximumExceeded,
            Violation::TopicAliasTooLarge(_) => ReasonCode::TopicAliasInvalid,
            Violation::UnknownTopicAlias(_) | Violation::SessionExpiryRaised => {
                ReasonCode::ProtocolError
            }
            Violation::QosNotSupported(_) => ReasonCode::QoSNotSupported,
            Violation::RetainNotSupported => ReasonCode::RetainNotSupported,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::SecondConnect => write!(f, "second CONNECT"),
            Violation::FirstPacketNotConnect => write!(f, "first packet is not CONNECT"),
            Violation::UnexpectedPacket(name) => write!(f, "unexpected {name}"),
            Violation::InvalidTopicName => write!(f, "invalid topic name in PUBLISH"),
            Violation::InvalidWillTopic => write!(f, "invalid Will topic"),
            Violation::InvalidTopicFilter(filter) => write!(f, "invalid topic filter {filter:?}"),
            Violation::InvalidSharedFilter(filter) => {
                write!(f, "invalid shared subscription filter {filter:?}")
            }
            Violation::NoLocalShared(filter) => {
                write!(f, "No Local on the shared subscription {filter:?}")
            }
            Violation::TopicTooDeep { max, will } => {
                let what = if *will {
                    "Will topic"
                } else {
                    "topic name in PUBLISH"
                };
                write!(f, "{what} of more than {max} levels")
            }
            Violation::FilterTooDeep(max) => {
                write!(f, "topic filter in SUBSCRIBE of more than {max} levels")
            }
            Violation::WrongAck(ack, pkid) => {
                write!(f, "{ack} does not fit the message in flight as id {pkid}")
            }
            Violation::ReceiveMaximumExceeded(max) => {
                write!(
                    f,
                    "more than {max} unacknowledged PUBLISHes (Receive Maximum)"
                )
            }
            Violation::TopicAliasTooLarge(alias) => {
                write!(f, "Topic Alias {alias} above the Topic Alias Maximum")
            }
            Violation::UnknownTopicAlias(0) => write!(f, "empty topic without a Topic Alias"),
            Violation::UnknownTopicAlias(alias) => {
                write!(f, "empty topic with unknown Topic Alias {alias}")
            }
            Violation::QosNotSupported(qos) => write!(f, "QoS {qos} above the Maximum QoS"),
            Violation::RetainNotSupported => write!(f, "RETAIN while Retain Available is 0"),
            Violation::SessionExpiryRaised => {
                write!(
                    f,
                    "DISCONNECT sets a Session Expiry Interval after 0 at CONNECT"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_has_its_reason_code_and_log_text() {
        for (v, code, text) in [
            (
                Violation::SecondConnect,
                ReasonCode::ProtocolError,
                "second CONNECT",
            ),
            (
                Violation::FirstPacketNotConnect,
                ReasonCode::ProtocolError,
                "first packet is not CONNECT",
            ),
            (
                Violation::UnexpectedPacket("AUTH"),
                ReasonCode::ProtocolError,
                "unexpected AUTH",
            ),
            (
                Violation::InvalidTopicName,
                ReasonCode::TopicNameInvalid,
                "invalid topic name in PUBLISH",
            ),
            (
                Violation::InvalidWillTopic,
                ReasonCode::TopicNameInvalid,
                "invalid Will topic",
            ),
            (
                Violation::InvalidTopicFilter("a/#/b".into()),
                ReasonCode::TopicFilterInvalid,
                "invalid topic filter \"a/#/b\"",
            ),
            (
                Violation::TopicTooDeep {
                    max: 200,
                    will: true,
                },
                ReasonCode::TopicNameInvalid,
                "Will topic of more than 200 levels",
            ),
            (
                Violation::FilterTooDeep(200),
                ReasonCode::TopicFilterInvalid,
                "topic filter in SUBSCRIBE of more than 200 levels",
            ),
            (
                Violation::WrongAck("PUBCOMP", 7),
                ReasonCode::ProtocolError,
                "PUBCOMP does not fit the message in flight as id 7",
            ),
        ] {
            assert_eq!(v.reason_code(), code);
            assert_eq!(v.to_string(), text);
        }
    }
}
