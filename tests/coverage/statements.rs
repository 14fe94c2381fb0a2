//! The MQTT 3.1.1 statements the coverage table is checked against: the
//! server-side ones, those midge does not apply, and the client-only ones.

/// The 131 server-side MUST statements of MQTT 3.1.1 plus Errata 01:
/// (id, tag, summary). Tags: S server obligation, V client rule the server
/// enforces, S/V both.
pub const IDS: &[(&str, &str, &str)] = &[
    (
        "MQTT-1.5.3-1",
        "S",
        "Ill-formed UTF-8 or encoded surrogates received: close connection.",
    ),
    (
        "MQTT-1.5.3-2",
        "S",
        "String containing U+0000 received: close the connection.",
    ),
    (
        "MQTT-1.5.3-3",
        "S",
        "Keep EF BB BF (U+FEFF) as a character; never strip.",
    ),
    (
        "MQTT-2.2.2-1",
        "S",
        "Reserved fixed-header flag bits carry exactly the Table 2.2 values.",
    ),
    (
        "MQTT-2.2.2-2",
        "S",
        "Invalid fixed-header flags received: close the connection.",
    ),
    (
        "MQTT-2.3.1-1",
        "S/V",
        "SUBSCRIBE, UNSUBSCRIBE, QoS>0 PUBLISH carry non-zero packet id.",
    ),
    (
        "MQTT-2.3.1-4",
        "S",
        "Outbound QoS>0 PUBLISH: unused id, same id on resend.",
    ),
    (
        "MQTT-2.3.1-5",
        "S",
        "QoS 0 PUBLISH carries no packet identifier.",
    ),
    (
        "MQTT-2.3.1-6",
        "S",
        "PUBACK, PUBREC, PUBREL echo the PUBLISH packet identifier.",
    ),
    (
        "MQTT-2.3.1-7",
        "S",
        "SUBACK and UNSUBACK echo the request's packet identifier.",
    ),
    (
        "MQTT-3.1.0-1",
        "V",
        "First packet not CONNECT: close without any response.",
    ),
    (
        "MQTT-3.1.0-2",
        "S",
        "Second CONNECT on a connection: protocol violation, close.",
    ),
    (
        "MQTT-3.1.2-1",
        "S",
        "Unknown protocol name: never continue processing as 3.1.1.",
    ),
    (
        "MQTT-3.1.2-2",
        "S",
        "Unsupported protocol level: CONNACK 0x01, then close.",
    ),
    (
        "MQTT-3.1.2-3",
        "S",
        "CONNECT reserved connect-flag bit set: close the connection.",
    ),
    (
        "MQTT-3.1.2-4",
        "S",
        "CleanSession 0: resume or create session, keep after disconnect.",
    ),
    (
        "MQTT-3.1.2-5",
        "S",
        "Offline persistent session: store matching QoS 1 and 2 messages.",
    ),
    (
        "MQTT-3.1.2-6",
        "S",
        "CleanSession 1: discard old session, never reuse its state.",
    ),
    (
        "MQTT-3.1.2-7",
        "S",
        "Retained messages survive the end of any session (printed 3.1.2.7).",
    ),
    (
        "MQTT-3.1.2-8",
        "S",
        "Store Will; publish when connection closes without DISCONNECT.",
    ),
    (
        "MQTT-3.1.2-9",
        "V",
        "Will Flag 1 requires Will Topic and Will Message.",
    ),
    (
        "MQTT-3.1.2-10",
        "S",
        "Remove stored Will once published or on DISCONNECT.",
    ),
    (
        "MQTT-3.1.2-11",
        "V",
        "Will Flag 0: Will QoS/Retain zero, no Will fields.",
    ),
    (
        "MQTT-3.1.2-12",
        "S",
        "Will Flag 0: never publish a Will for the connection.",
    ),
    (
        "MQTT-3.1.2-13",
        "V",
        "Will Flag 0 requires Will QoS bits set to 00.",
    ),
    (
        "MQTT-3.1.2-14",
        "V",
        "Will QoS value 3 is invalid: close without CONNACK.",
    ),
    (
        "MQTT-3.1.2-15",
        "V",
        "Will Flag 0 requires the Will Retain bit 0.",
    ),
    (
        "MQTT-3.1.2-16",
        "S",
        "Will Retain 0: publish the Will as non-retained.",
    ),
    (
        "MQTT-3.1.2-17",
        "S",
        "Will Retain 1: publish the Will as a retained message.",
    ),
    (
        "MQTT-3.1.2-18",
        "V",
        "User Name Flag 0: no user name in payload.",
    ),
    (
        "MQTT-3.1.2-19",
        "V",
        "User Name Flag 1: user name must be present.",
    ),
    (
        "MQTT-3.1.2-20",
        "V",
        "Password Flag 0: no password in the payload.",
    ),
    (
        "MQTT-3.1.2-21",
        "V",
        "Password Flag 1: password must be present in payload.",
    ),
    (
        "MQTT-3.1.2-22",
        "V",
        "Password Flag set without User Name Flag: close connection.",
    ),
    (
        "MQTT-3.1.2-24",
        "S",
        "Nothing received for 1.5 times Keep Alive: disconnect client.",
    ),
    (
        "MQTT-3.1.3-1",
        "V",
        "Payload order: ClientId, Will Topic, Will Message, User, Password.",
    ),
    (
        "MQTT-3.1.3-2",
        "S",
        "ClientId is the key identifying the stored session state.",
    ),
    (
        "MQTT-3.1.3-3",
        "V",
        "ClientId must be present as the first payload field.",
    ),
    (
        "MQTT-3.1.3-4",
        "V",
        "ClientId must be a well-formed UTF-8 string.",
    ),
    (
        "MQTT-3.1.3-5",
        "S",
        "Always accept 1 to 23 byte alphanumeric ClientIds.",
    ),
    (
        "MQTT-3.1.3-6",
        "S",
        "Empty ClientId, if allowed: assign a unique ClientId.",
    ),
    (
        "MQTT-3.1.3-7",
        "V",
        "Empty ClientId requires CleanSession 1 (enforced via 3.1.3-8).",
    ),
    (
        "MQTT-3.1.3-8",
        "S",
        "Empty ClientId with CleanSession 0: CONNACK 0x02, close.",
    ),
    (
        "MQTT-3.1.3-9",
        "S",
        "Any rejected ClientId: CONNACK 0x02, then close the connection.",
    ),
    (
        "MQTT-3.1.3-10",
        "V",
        "Will Topic must be a well-formed UTF-8 string.",
    ),
    (
        "MQTT-3.1.3-11",
        "V",
        "User Name must be a well-formed UTF-8 string.",
    ),
    (
        "MQTT-3.1.4-1",
        "S",
        "Non-conforming CONNECT: close the connection without sending CONNACK.",
    ),
    (
        "MQTT-3.1.4-2",
        "S",
        "ClientId already connected: disconnect the existing client connection.",
    ),
    (
        "MQTT-3.1.4-3",
        "S",
        "Accepted CONNECT: apply the CleanSession processing of 3.1.2.4.",
    ),
    (
        "MQTT-3.1.4-4",
        "S",
        "Accepted CONNECT answered with CONNACK return code 0.",
    ),
    (
        "MQTT-3.1.4-5",
        "S",
        "Rejected CONNECT: process no further data from that client.",
    ),
    (
        "MQTT-3.2.0-1",
        "S",
        "First packet the server sends is always CONNACK.",
    ),
    (
        "MQTT-3.2.2-1",
        "S",
        "Accepted with CleanSession 1: Session Present must be 0.",
    ),
    (
        "MQTT-3.2.2-2",
        "S",
        "CleanSession 0 with stored session: Session Present is 1.",
    ),
    (
        "MQTT-3.2.2-3",
        "S",
        "CleanSession 0 without stored session: Session Present is 0.",
    ),
    (
        "MQTT-3.2.2-4",
        "S",
        "Non-zero CONNACK return code: Session Present must be 0.",
    ),
    (
        "MQTT-3.2.2-5",
        "S",
        "Non-zero CONNACK return code: close the connection afterwards.",
    ),
    (
        "MQTT-3.2.2-6",
        "S",
        "No applicable return code: close without sending any CONNACK.",
    ),
    (
        "MQTT-3.3.1-1",
        "S",
        "Re-delivered PUBLISH has DUP set to 1 (body prints 3.3.1.-1).",
    ),
    (
        "MQTT-3.3.1-2",
        "S",
        "Every QoS 0 PUBLISH has the DUP flag 0.",
    ),
    (
        "MQTT-3.3.1-3",
        "S",
        "Outgoing DUP reflects own retransmission only, never copied inbound.",
    ),
    (
        "MQTT-3.3.1-4",
        "S",
        "PUBLISH with both QoS bits set: close the connection.",
    ),
    (
        "MQTT-3.3.1-5",
        "S",
        "RETAIN 1: store message and QoS as topic's retained.",
    ),
    (
        "MQTT-3.3.1-6",
        "S",
        "New subscription receives latest retained message per matching topic.",
    ),
    (
        "MQTT-3.3.1-7",
        "S",
        "Retained QoS 0 publish discards the previous retained message.",
    ),
    (
        "MQTT-3.3.1-8",
        "S",
        "Retained message sent for a new subscription: RETAIN 1.",
    ),
    (
        "MQTT-3.3.1-9",
        "S",
        "Forwarding to an established subscription: RETAIN flag 0.",
    ),
    (
        "MQTT-3.3.1-10",
        "S",
        "Empty retained publish: deliver normally, delete topic's retained message.",
    ),
    (
        "MQTT-3.3.1-11",
        "S",
        "Never store a zero-byte payload as a retained message.",
    ),
    (
        "MQTT-3.3.1-12",
        "S",
        "RETAIN 0: neither store nor alter the existing retained message.",
    ),
    (
        "MQTT-3.3.2-1",
        "S/V",
        "Topic Name present first in variable header, UTF-8.",
    ),
    (
        "MQTT-3.3.2-2",
        "S/V",
        "Topic Name containing + or # wildcards is a violation.",
    ),
    (
        "MQTT-3.3.2-3",
        "S",
        "Outgoing Topic Name matches the subscriber's Topic Filter.",
    ),
    (
        "MQTT-3.3.4-1",
        "S",
        "Answer PUBLISH by QoS: nothing, PUBACK, or PUBREC.",
    ),
    (
        "MQTT-3.3.5-1",
        "S",
        "Overlapping subscriptions: deliver at the highest matching granted QoS.",
    ),
    (
        "MQTT-3.3.5-2",
        "S",
        "Unauthorized PUBLISH: acknowledge normally and drop, or close.",
    ),
    (
        "MQTT-3.6.1-1",
        "S",
        "PUBREL fixed-header flags other than 0010: close connection.",
    ),
    (
        "MQTT-3.8.1-1",
        "S",
        "SUBSCRIBE fixed-header flags other than 0010: close connection.",
    ),
    (
        "MQTT-3.8.3-1",
        "V",
        "SUBSCRIBE Topic Filters must be well-formed UTF-8 strings.",
    ),
    (
        "MQTT-3.8.3-2",
        "S",
        "Without wildcard support, reject every filter containing wildcards.",
    ),
    (
        "MQTT-3.8.3-3",
        "V",
        "SUBSCRIBE without any filter/QoS pair is a protocol violation.",
    ),
    (
        "MQTT-3.8.3-4",
        "S",
        "Requested QoS reserved bits or QoS 3: close (printed 3-8.3-4).",
    ),
    (
        "MQTT-3.8.4-1",
        "S",
        "Every SUBSCRIBE is answered with a SUBACK packet.",
    ),
    (
        "MQTT-3.8.4-2",
        "S",
        "SUBACK carries the SUBSCRIBE's packet identifier.",
    ),
    (
        "MQTT-3.8.4-3",
        "S",
        "Identical filter replaces subscription; resend retained; flow uninterrupted.",
    ),
    (
        "MQTT-3.8.4-4",
        "S",
        "Multi-filter SUBSCRIBE handled as a sequence, one SUBACK.",
    ),
    (
        "MQTT-3.8.4-5",
        "S",
        "One SUBACK return code per filter: granted QoS or failure.",
    ),
    (
        "MQTT-3.8.4-6",
        "S",
        "Delivered QoS is the minimum of published and granted QoS.",
    ),
    (
        "MQTT-3.9.3-1",
        "S",
        "SUBACK return codes appear in the same order as filters.",
    ),
    (
        "MQTT-3.9.3-2",
        "S",
        "SUBACK uses only return codes 0x00, 0x01, 0x02, 0x80.",
    ),
    (
        "MQTT-3.10.1-1",
        "S",
        "UNSUBSCRIBE fixed-header flags other than 0010: close connection.",
    ),
    (
        "MQTT-3.10.3-1",
        "V",
        "UNSUBSCRIBE Topic Filters must be well-formed UTF-8 strings.",
    ),
    (
        "MQTT-3.10.3-2",
        "V",
        "UNSUBSCRIBE without any Topic Filter is a protocol violation.",
    ),
    (
        "MQTT-3.10.4-1",
        "S",
        "Compare filters literally; an exact match deletes that subscription.",
    ),
    (
        "MQTT-3.10.4-2",
        "S",
        "Deleted subscription: stop adding new messages for that client.",
    ),
    (
        "MQTT-3.10.4-3",
        "S",
        "Deleted subscription: complete QoS 1 and 2 deliveries already started.",
    ),
    (
        "MQTT-3.10.4-4",
        "S",
        "Answer UNSUBSCRIBE with UNSUBACK carrying the same packet identifier.",
    ),
    (
        "MQTT-3.10.4-5",
        "S",
        "Send UNSUBACK even when no subscription was deleted.",
    ),
    (
        "MQTT-3.10.4-6",
        "S",
        "Multi-filter UNSUBSCRIBE handled as a sequence, one UNSUBACK.",
    ),
    (
        "MQTT-3.12.4-1",
        "S",
        "Answer every PINGREQ with a PINGRESP packet.",
    ),
    (
        "MQTT-3.14.1-1",
        "S",
        "DISCONNECT with non-zero reserved bits: disconnect the client.",
    ),
    (
        "MQTT-3.14.4-3",
        "S",
        "On DISCONNECT, discard the Will without publishing it.",
    ),
    (
        "MQTT-4.1.0-1",
        "S",
        "Keep session state for the whole duration of the session.",
    ),
    (
        "MQTT-4.1.0-2",
        "S",
        "A session lasts at least while its connection is open.",
    ),
    (
        "MQTT-4.3.1-1",
        "S",
        "QoS 0 sending: PUBLISH with QoS 0 and DUP 0.",
    ),
    (
        "MQTT-4.3.2-1",
        "S",
        "QoS 1 sending: fresh id, DUP 0, unacknowledged until PUBACK.",
    ),
    (
        "MQTT-4.3.2-2",
        "S",
        "QoS 1 receiving: PUBACK after ownership; reused id means new.",
    ),
    (
        "MQTT-4.3.3-1",
        "S",
        "QoS 2 sending: await PUBREC, PUBREL until PUBCOMP, never re-PUBLISH.",
    ),
    (
        "MQTT-4.3.3-2",
        "S",
        "QoS 2 receiving: PUBREC, no duplicate delivery, PUBCOMP on PUBREL.",
    ),
    (
        "MQTT-4.4.0-1",
        "S",
        "CleanSession 0 reconnect: resend unacknowledged PUBLISH and PUBREL, original ids.",
    ),
    (
        "MQTT-4.5.0-1",
        "S",
        "Owned inbound message added to every matching client's session.",
    ),
    (
        "MQTT-4.6.0-1",
        "S",
        "Resend PUBLISH packets in original send order (via 4.6.0-6).",
    ),
    (
        "MQTT-4.6.0-4",
        "S",
        "Send PUBRELs in the order PUBRECs arrived (via 4.6.0-6).",
    ),
    (
        "MQTT-4.6.0-5",
        "S",
        "Treat every topic as an Ordered Topic by default.",
    ),
    (
        "MQTT-4.6.0-6",
        "S",
        "Forward each publisher's same-topic, same-QoS messages in arrival order.",
    ),
    (
        "MQTT-4.7.1-1",
        "S/V",
        "Wildcards allowed in Topic Filters, never in Topic Names.",
    ),
    (
        "MQTT-4.7.1-2",
        "V",
        "Multi-level # alone or after slash, and always last.",
    ),
    (
        "MQTT-4.7.1-3",
        "V",
        "Single-level + wildcard must occupy an entire topic level.",
    ),
    (
        "MQTT-4.7.2-1",
        "S",
        "Filters starting with a wildcard never match $ topics.",
    ),
    (
        "MQTT-4.7.3-1",
        "V",
        "Topic Names and Topic Filters are at least one character.",
    ),
    (
        "MQTT-4.7.3-2",
        "V",
        "Topic Names and Topic Filters never contain U+0000.",
    ),
    (
        "MQTT-4.7.3-3",
        "S/V",
        "Topic Names and Filters encode to at most 65535 bytes.",
    ),
    (
        "MQTT-4.7.3-4",
        "S",
        "Match exactly: no normalisation or substitution of any characters.",
    ),
    (
        "MQTT-4.8.0-1",
        "S",
        "Protocol violation: close the connection it arrived on.",
    ),
    (
        "MQTT-4.8.0-2",
        "S",
        "Transient error on an inbound packet: close that connection.",
    ),
    (
        "MQTT-6.0.0-1",
        "S",
        "WebSocket: MQTT in binary frames; other data frames close.",
    ),
    (
        "MQTT-6.0.0-2",
        "S",
        "WebSocket: never assume packets align with frame boundaries.",
    ),
    (
        "MQTT-6.0.0-4",
        "S",
        "WebSocket: server selects and returns subprotocol name mqtt.",
    ),
    (
        "MQTT-7.0.0-1",
        "S",
        "A bridging server must also conform as an MQTT client.",
    ),
    (
        "MQTT-7.0.0-2",
        "S",
        "Interoperate without requiring any extensions outside the standard.",
    ),
    (
        "MQTT-7.1.1-1",
        "S",
        "Support an ordered, lossless, two-way byte-stream transport (TCP).",
    ),
];

/// Statements that bind only features midge does not have.
pub const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("MQTT-6.0.0-1", "no WebSocket transport"),
    ("MQTT-6.0.0-2", "no WebSocket transport"),
    ("MQTT-6.0.0-4", "no WebSocket transport"),
    ("MQTT-7.0.0-1", "no bridging"),
];

/// Client-only statements (not counted, but a test may cite them).
pub const CLIENT_ONLY: &[&str] = &[
    "MQTT-2.3.1-2",
    "MQTT-2.3.1-3",
    "MQTT-3.1.2-23",
    "MQTT-3.14.4-1",
    "MQTT-3.14.4-2",
    "MQTT-4.5.0-2",
    "MQTT-4.6.0-2",
    "MQTT-4.6.0-3",
    "MQTT-6.0.0-3",
    "MQTT-7.1.2-1",
];
