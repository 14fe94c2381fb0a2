#!/usr/bin/env python3
# Usage: scripts/fill-retained.py PORT N   (needs paho-mqtt 2.x; any broker)
# Fills a broker with N retained QoS 0 messages (64-byte payloads).
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, n = int(sys.argv[1]), int(sys.argv[2])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="filler")
c.connect("127.0.0.1", port)
c.loop_start()
for i in range(n):
    c.publish(f"sensors/{i}/state", b"x" * 64, qos=0, retain=True)
    if i % 5000 == 0:
        time.sleep(0.05)
c.publish("done", b"1", qos=1).wait_for_publish(30)
c.loop_stop(); c.disconnect()
