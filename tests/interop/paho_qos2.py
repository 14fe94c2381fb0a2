"""QoS 2 publish/subscribe through the broker with paho-mqtt 2.x.

Usage: python3 paho_qos2.py HOST PORT {311|31}

Connects a subscriber and a publisher with the given protocol version
(311: MQTT 3.1.1 "MQTT" level 4; 31: MQTT 3.1 "MQIsdp" level 3), subscribes
at QoS 2, publishes N messages at QoS 2 and then an end marker, and checks
that all of them arrive once, in order, at QoS 2, with topic and payload
intact. Every wait is bounded. Prints "ok ..." and exits 0 on success; prints "FAIL: ..." to
stderr and exits 1 otherwise. Called by tests/interop.rs.
"""

import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 5.0
N = 20


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def connect(host, port, protocol, client_id):
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=protocol,
        reconnect_on_failure=False,
    )
    connected = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        result["session_present"] = flags.session_present
        connected.set()

    client.on_connect = on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    if not connected.wait(TIMEOUT):
        fail(f"{client_id}: no CONNACK within {TIMEOUT}s")
    if result["rc"].is_failure:
        fail(f"{client_id}: connection refused: {result['rc']}")
    if result["session_present"]:
        fail(f"{client_id}: Session Present 1 on a clean session")
    return client


def payload(i):
    # Text prefix plus every byte value, to catch any mangling.
    return f"{i}:".encode() + bytes(range(256))


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("311", "31"):
        fail("usage: paho_qos2.py HOST PORT {311|31}")
    host, port, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    protocol = {"311": mqtt.MQTTv311, "31": mqtt.MQTTv31}[version]
    topic = f"interop/paho/v{version}/qos2"

    sub = connect(host, port, protocol, f"paho-sub-{version}")
    subscribed = threading.Event()
    granted = []
    received = []
    all_received = threading.Event()
    lock = threading.Lock()

    def on_subscribe(client, userdata, mid, reason_code_list, properties):
        granted.extend(rc.value for rc in reason_code_list)
        subscribed.set()

    def on_message(client, userdata, msg):
        with lock:
            received.append((msg.topic, bytes(msg.payload), msg.qos, msg.retain))
            if msg.payload == b"end":
                all_received.set()

    sub.on_subscribe = on_subscribe
    sub.on_message = on_message
    sub.subscribe(topic, qos=2)
    if not subscribed.wait(TIMEOUT):
        fail("no SUBACK")
    if granted != [2]:
        fail(f"SUBACK granted {granted}, expected [2]")

    pub = connect(host, port, protocol, f"paho-pub-{version}")
    # N messages, then an end marker: anything duplicated or lost shows up
    # before the marker.
    for i, body in enumerate([payload(i) for i in range(N)] + [b"end"]):
        info = pub.publish(topic, body, qos=2)
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            fail(f"publish {i}: QoS 2 exchange not complete within {TIMEOUT}s")

    if not all_received.wait(TIMEOUT):
        fail(f"end marker not received; got {len(received)} messages")
    with lock:
        got = list(received)
    want = [(topic, payload(i), 2, False) for i in range(N)]
    want.append((topic, b"end", 2, False))
    if got != want:
        fail(f"received {got[:3]}..., expected {want[:3]}...")

    pub.disconnect()
    sub.disconnect()
    pub.loop_stop()
    sub.loop_stop()
    print(f"ok {N} messages at QoS 2 over MQTT v{version}", flush=True)


if __name__ == "__main__":
    main()
