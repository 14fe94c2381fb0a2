#!/usr/bin/env python3
# Usage: scripts/make-store.py N_RETAINED N_SESSIONS DIR/midge.log
# then: midge --persistence DIR   (the log line says how long restoring took)
# Writes a midge store with N retained messages and S sessions (one
# subscription and 10 queued QoS 1 messages each), for restart timing.
import struct, sys, zlib
n_ret, n_sess, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def s(x): b = x.encode(); return struct.pack('<H', len(b)) + b
def frame(body): return struct.pack('<II', len(body), zlib.crc32(body)) + body
with open(path, 'wb') as f:
    for i in range(n_ret):
        f.write(frame(b'\x01' + s(f'sensors/{i}/state') + b'\x01' + struct.pack('<I', 64) + b'x' * 64))
    for i in range(n_sess):
        c = f'device-{i}'
        f.write(frame(b'\x02' + s(c)))
        f.write(frame(b'\x04' + s(c) + s(f'cmd/{i}/#') + b'\x01'))
        for q in range(1, 11):
            f.write(frame(b'\x06' + s(c) + struct.pack('<Q', q) + b'\x01' + s(f'cmd/{i}/x') + struct.pack('<I', 64) + b'y' * 64))
