#!/usr/bin/env python3
"""A stand-in for systemd's notification socket (tests/e2e/notify.test.mjs): binds an AF_UNIX
datagram socket at argv[1] (a path, or an abstract name starting with '@'), prints
{"bound": true} once bound, then one JSON line per datagram received:
{"msg": "<payload>", "pid": <sender pid from SCM_CREDENTIALS>}. Node has no unix datagram
sockets, hence this helper. Exits when stdin closes (the test ends) or on SIGTERM."""
import json
import os
import select
import socket
import struct
import sys

name = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind("\0" + name[1:] if name.startswith("@") else name)
print(json.dumps({"bound": True}), flush=True)
try:
    while True:
        ready, _, _ = select.select([sock, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
            break
        if sock in ready:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            print(json.dumps({"msg": data.decode("utf-8", "replace"), "pid": pid}), flush=True)
finally:
    if not name.startswith("@"):
        try:
            os.unlink(name)
        except OSError:
            pass
