"""Home Assistant's MQTT flow through the broker, with paho-mqtt 2.x at MQTT 5.

Usage: python3 paho_home_assistant.py HOST PORT DEVICES

Home Assistant (from 2027.1) connects with paho-mqtt as MQTTv5: Clean Start,
Session Expiry Interval 0, a Will on its availability topic. This plays it
and a Zigbee2MQTT-like bridge (MQTT 5 as well):

1. The bridge publishes DEVICES retained discovery configs
   (homeassistant/sensor/devN/config, QoS 1, JSON with a Content Type and a
   User Property) and its own retained availability.
2. Home Assistant connects, subscribes to homeassistant/# and
   zigbee2mqtt/#, and must receive every discovery config, retained, with
   its properties; it publishes its birth message.
3. Home Assistant sends a command to 10 devices (zigbee2mqtt/devN/set, QoS
   1, with Response Topic and Correlation Data); the bridge answers each on
   the Response Topic with the Correlation Data, and publishes the state.
4. Home Assistant's connection dies without DISCONNECT: the bridge receives
   its Will ("offline" on homeassistant/status).

Every wait is bounded. Prints "ok ..." and exits 0 on success; prints
"FAIL: ..." to stderr and exits 1 otherwise. Called by tests/interop_v5.rs.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 10.0
COMMANDS = 10


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Inbox:
    """Messages received by one client, with a wait for a condition."""

    def __init__(self):
        self.cond = threading.Condition()
        self.messages = []

    def on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def wait_for(self, what, pred):
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    fail(f"timed out waiting for {what}; got {len(self.messages)} messages")
                self.cond.wait(left)

    def on(self, topic):
        with self.cond:
            return [m for m in self.messages if m.topic == topic]


def connect(host, port, client_id, will=None):
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
    )
    if will:
        client.will_set(*will)
    inbox = Inbox()
    client.on_message = inbox.on_message
    connected = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        connected.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(host, port, keepalive=60, clean_start=True, properties=props)
    client.loop_start()
    if not connected.wait(TIMEOUT):
        fail(f"{client_id}: no CONNACK within {TIMEOUT}s")
    if result["rc"].is_failure:
        fail(f"{client_id}: connection refused: {result['rc']}")
    return client, inbox


def subscribe(client, filters):
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.subscribe([(f, SubscribeOptions(qos=q)) for f, q in filters])
    if not done.wait(TIMEOUT):
        fail(f"no SUBACK for {filters}")


def publish(client, topic, payload, qos=0, retain=False, props=None):
    info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
    if qos > 0:
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            fail(f"publish to {topic} not acknowledged")


def main():
    host, port, devices = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    bridge, bridge_inbox = connect(
        host, port, "zigbee2mqtt", ("zigbee2mqtt/bridge/state", "offline", 1, True)
    )
    for i in range(devices):
        config = {
            "name": f"Sensor {i}",
            "state_topic": f"zigbee2mqtt/dev{i}",
            "command_topic": f"zigbee2mqtt/dev{i}/set",
            "unique_id": f"dev{i}_temperature",
        }
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.UserProperty = ("origin", "zigbee2mqtt")
        publish(bridge, f"homeassistant/sensor/dev{i}/config", json.dumps(config), 1, True, props)
    publish(bridge, "zigbee2mqtt/bridge/state", "online", 1, True)
    subscribe(bridge, [("zigbee2mqtt/+/set", 1), ("homeassistant/status", 1)])

    ha, ha_inbox = connect(
        host, port, "homeassistant", ("homeassistant/status", "offline", 0, False)
    )
    subscribe(ha, [("homeassistant/#", 0), ("zigbee2mqtt/#", 0)])
    configs = lambda ms: [m for m in ms if m.topic.endswith("/config")]
    ha_inbox.wait_for(f"{devices} discovery configs", lambda ms: len(configs(ms)) >= devices)
    got = configs(ha_inbox.messages)
    if len(got) != devices or len({m.topic for m in got}) != devices:
        fail(f"{len(got)} configs for {len({m.topic for m in got})} topics, wanted {devices}")
    for m in got:
        if not m.retain:
            fail(f"{m.topic}: retained config delivered without RETAIN")
        if getattr(m.properties, "ContentType", None) != "application/json":
            fail(f"{m.topic}: Content Type lost: {m.properties}")
        if ("origin", "zigbee2mqtt") not in getattr(m.properties, "UserProperty", []):
            fail(f"{m.topic}: User Property lost: {m.properties}")
        json.loads(m.payload)
    publish(ha, "homeassistant/status", "online", 0)
    bridge_inbox.wait_for("the birth message", lambda ms: any(m.payload == b"online" for m in ms))

    # Commands with request/response properties, answered by the bridge.
    subscribe(ha, [("homeassistant/response", 0)])
    for i in range(COMMANDS):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "homeassistant/response"
        props.CorrelationData = f"req-{i}".encode()
        publish(ha, f"zigbee2mqtt/dev{i}/set", '{"state": "ON"}', 1, False, props)
    sets = lambda ms: [m for m in ms if m.topic.endswith("/set")]
    bridge_inbox.wait_for(f"{COMMANDS} commands", lambda ms: len(sets(ms)) >= COMMANDS)
    for m in sets(bridge_inbox.messages):
        response = m.properties.ResponseTopic
        corr = m.properties.CorrelationData
        reply = Properties(PacketTypes.PUBLISH)
        reply.CorrelationData = corr
        publish(bridge, response, "done", 1, False, reply)
        publish(bridge, m.topic[: -len("/set")], '{"state": "ON"}', 1)
    responses = lambda ms: [m for m in ms if m.topic == "homeassistant/response"]
    ha_inbox.wait_for(f"{COMMANDS} responses", lambda ms: len(responses(ms)) >= COMMANDS)
    corrs = sorted(m.properties.CorrelationData for m in responses(ha_inbox.messages))
    if corrs != sorted(f"req-{i}".encode() for i in range(COMMANDS)):
        fail(f"correlation data not passed on: {corrs}")

    # Home Assistant vanishes: its Will goes to the bridge.
    ha.loop_stop()
    ha.socket().close()
    bridge_inbox.wait_for(
        "Home Assistant's Will",
        lambda ms: any(m.topic == "homeassistant/status" and m.payload == b"offline" for m in ms),
    )
    bridge.disconnect()
    bridge.loop_stop()
    print(f"ok {devices} discovery configs, {COMMANDS} commands and responses, Will", flush=True)


main()
