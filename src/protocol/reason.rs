//! MQTT 5 reason codes (spec §2.4), which packet may carry which, and the
//! 3.x equivalents (CONNACK return codes, SUBACK 0x80).

use super::wire::Kind;
use super::{QoS, Role};

/// Every MQTT 5 reason code. 0x00 is "Success", "Normal disconnection"
/// and "Granted QoS 0" depending on the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReasonCode {
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// Every code, for lookups and tests.
pub(super) const ALL: [ReasonCode; 43] = {
    use ReasonCode::*;
    [
        Success,
        GrantedQoS1,
        GrantedQoS2,
        DisconnectWithWillMessage,
        NoMatchingSubscribers,
        NoSubscriptionExisted,
        ContinueAuthentication,
        ReAuthenticate,
        UnspecifiedError,
        MalformedPacket,
        ProtocolError,
        ImplementationSpecificError,
        UnsupportedProtocolVersion,
        ClientIdentifierNotValid,
        BadUserNameOrPassword,
        NotAuthorized,
        ServerUnavailable,
        ServerBusy,
        Banned,
        ServerShuttingDown,
        BadAuthenticationMethod,
        KeepAliveTimeout,
        SessionTakenOver,
        TopicFilterInvalid,
        TopicNameInvalid,
        PacketIdentifierInUse,
        PacketIdentifierNotFound,
        ReceiveMaximumExceeded,
        TopicAliasInvalid,
        PacketTooLarge,
        MessageRateTooHigh,
        QuotaExceeded,
        AdministrativeAction,
        PayloadFormatInvalid,
        RetainNotSupported,
        QoSNotSupported,
        UseAnotherServer,
        ServerMoved,
        SharedSubscriptionsNotSupported,
        ConnectionRateExceeded,
        MaximumConnectTime,
        SubscriptionIdentifiersNotSupported,
        WildcardSubscriptionsNotSupported,
    ]
};

impl ReasonCode {
    pub fn from_u8(v: u8) -> Option<ReasonCode> {
        ALL.iter().copied().find(|c| *c as u8 == v)
    }

    /// 0x80 and above report a failure.
    pub fn is_error(self) -> bool {
        self as u8 >= 0x80
    }

    /// The SUBACK code granting `qos`.
    pub fn granted(qos: QoS) -> ReasonCode {
        match qos {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        }
    }

    /// A 3.x CONNACK return code as a reason code (`None`: not one of 0-5).
    pub fn from_v3_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::Success,
            1 => ReasonCode::UnsupportedProtocolVersion,
            2 => ReasonCode::ClientIdentifierNotValid,
            3 => ReasonCode::ServerUnavailable,
            4 => ReasonCode::BadUserNameOrPassword,
            5 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The 3.x CONNACK return code for a CONNACK reason: exact for the six
    /// codes 3.x has; other refusals get the nearest (a ban or a refused
    /// authentication method is "not authorized", anything else "server
    /// unavailable").
    pub fn v3_connack_code(self) -> u8 {
        use ReasonCode::*;
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword => 4,
            NotAuthorized | Banned | BadAuthenticationMethod => 5,
            _ => 3,
        }
    }

    /// The byte a 3.x SUBACK carries: the granted QoS, or 0x80 for any
    /// failure [MQTT-3.9.3-2 in 3.1.1].
    pub fn v3_suback_code(self) -> u8 {
        match self {
            ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => self as u8,
            _ => 0x80,
        }
    }

    /// A 3.x SUBACK byte as a reason code.
    pub fn from_v3_suback(code: u8) -> Option<ReasonCode> {
        match code {
            0..=2 => ReasonCode::from_u8(code),
            0x80 => Some(ReasonCode::UnspecifiedError),
            _ => None,
        }
    }

    /// Whether `sender` may put this code in a packet of `kind` (spec
    /// §2.4 and each packet's reason code table). A received code outside
    /// the list is a protocol error [MQTT-3.4.2-1] ... [MQTT-3.15.2-1].
    pub(super) fn allowed(self, kind: Kind, sender: Role) -> bool {
        use ReasonCode::*;
        let c = self as u8;
        match kind {
            Kind::ConnAck => {
                matches!(c, 0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97)
                    || matches!(c, 0x99..=0x9D | 0x9F)
            }
            Kind::PubAck | Kind::PubRec => matches!(
                self,
                Success
                    | NoMatchingSubscribers
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicNameInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | PayloadFormatInvalid
            ),
            Kind::PubRel | Kind::PubComp => matches!(self, Success | PacketIdentifierNotFound),
            Kind::SubAck => {
                matches!(c, 0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97)
                    || matches!(c, 0x9E | 0xA1 | 0xA2)
            }
            Kind::UnsubAck => matches!(c, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
            Kind::Disconnect => match sender {
                Role::Client => matches!(c, 0x00 | 0x04 | 0x80..=0x83 | 0x90 | 0x93..=0x99),
                Role::Server => {
                    matches!(c, 0x00 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90)
                        || matches!(c, 0x93..=0xA2)
                }
            },
            Kind::Auth => match sender {
                Role::Client => matches!(self, Success | ContinueAuthentication | ReAuthenticate),
                Role::Server => matches!(self, Success | ContinueAuthentication),
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_byte() {
        for code in ALL {
            assert_eq!(ReasonCode::from_u8(code as u8), Some(code));
        }
        let known = (0..=255u8)
            .filter(|&b| ReasonCode::from_u8(b).is_some())
            .count();
        assert_eq!(known, ALL.len());
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xA3), None);
    }

    #[test]
    fn v3_connack_codes() {
        use ReasonCode::*;
        for (code, v3) in [
            (Success, 0),
            (UnsupportedProtocolVersion, 1),
            (ClientIdentifierNotValid, 2),
            (ServerUnavailable, 3),
            (BadUserNameOrPassword, 4),
            (NotAuthorized, 5),
        ] {
            assert_eq!(code.v3_connack_code(), v3);
            assert_eq!(ReasonCode::from_v3_connack(v3), Some(code));
        }
        assert_eq!(Banned.v3_connack_code(), 5);
        assert_eq!(ServerBusy.v3_connack_code(), 3);
        assert_eq!(ReasonCode::from_v3_connack(6), None);
    }

    #[test]
    fn v3_suback_codes() {
        assert_eq!(ReasonCode::granted(QoS::ExactlyOnce).v3_suback_code(), 2);
        assert_eq!(ReasonCode::NotAuthorized.v3_suback_code(), 0x80);
        assert_eq!(
            ReasonCode::from_v3_suback(0x80),
            Some(ReasonCode::UnspecifiedError)
        );
        assert_eq!(ReasonCode::from_v3_suback(0x87), None);
        assert_eq!(ReasonCode::from_v3_suback(3), None);
    }

    #[test]
    fn codes_per_packet_and_sender() {
        use ReasonCode::*;
        assert!(NoMatchingSubscribers.allowed(Kind::PubAck, Role::Server));
        assert!(!NoMatchingSubscribers.allowed(Kind::PubRel, Role::Client));
        assert!(PacketIdentifierNotFound.allowed(Kind::PubComp, Role::Client));
        assert!(DisconnectWithWillMessage.allowed(Kind::Disconnect, Role::Client));
        assert!(!DisconnectWithWillMessage.allowed(Kind::Disconnect, Role::Server));
        assert!(SessionTakenOver.allowed(Kind::Disconnect, Role::Server));
        assert!(!SessionTakenOver.allowed(Kind::Disconnect, Role::Client)); // [MQTT-3.14.2-1]
        assert!(ReAuthenticate.allowed(Kind::Auth, Role::Client));
        assert!(!ReAuthenticate.allowed(Kind::Auth, Role::Server));
        assert!(GrantedQoS2.allowed(Kind::SubAck, Role::Server));
        assert!(!GrantedQoS2.allowed(Kind::UnsubAck, Role::Server));
        assert!(BadAuthenticationMethod.allowed(Kind::ConnAck, Role::Server));
        assert!(!SessionTakenOver.allowed(Kind::ConnAck, Role::Server));
    }
}
