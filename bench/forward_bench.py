#!/usr/bin/env python3
"""Port forwarding (contract §7.5): forwarded vs direct, in the same run.

Usage: bench/forward_bench.py [path/to/envd] [--bytes N] [--rounds N]

A service listens on 127.0.0.1:<port> only; envd forwards it to 127.0.0.2:<port>
(--forward-address 127.0.0.2 --forward-ports <port>). Measured, direct (127.0.0.1) beside
forwarded (127.0.0.2):
  - throughput: the service sendfile()s N bytes (1 GiB) to a client process that recv_into()s
    1 MiB at a time; best of --rounds;
  - connection latency: connect, one byte there, one byte back, close (p50/p99 of 300);
and envd's own API while a forwarded transfer runs: process.List latency (Connect JSON over one
HTTP/1.1 keep-alive connection, from this process) idle and during the transfer, and envd's
largest event-loop lag (envdtest.Echo/Stats), with the relays on their own thread (the default)
and on envd's loop (--forward-thread=false). Only the standard library is used.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVICE = r"""
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(512)
print("ready", flush=True)
def serve(c):
    with c:
        cmd = c.recv(1)
        if cmd == b"B":
            with open(path, "rb") as f:
                off = 0
                while off < size:
                    n = os.sendfile(c.fileno(), f.fileno(), off, size - off)
                    if n <= 0:
                        break
                    off += n
        elif cmd == b"E":
            c.sendall(b"e")
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
buf = bytearray(1 << 20)
mv = memoryview(buf)
t0 = time.perf_counter()
s = socket.create_connection((host, port))
s.sendall(b"B")
total = 0
while True:
    n = s.recv_into(mv)
    if n == 0:
        break
    total += n
print(total, time.perf_counter() - t0)
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Envd:
    def __init__(self, binary, service_port, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "-port", str(self.port), "-isnotfc", "-no-cgroups", "--test-services", "--forward-address",
             "127.0.0.2", "--forward-scan-ms", "50", "--forward-ports", str(service_port), *extra],
            stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.call("/envdtest.Echo/Stats", {})
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)

    def call(self, path, body):
        self.conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data!r}")
        return json.loads(data)

    def list_ms(self):
        t0 = time.perf_counter()
        self.call("/process.Process/List", {})
        return (time.perf_counter() - t0) * 1000

    def loop_lag_ms(self, reset=False):
        r = self.call("/envdtest.Echo/Stats", {"resetLoopLag": reset})
        return int(r.get("maxLoopLagUs", 0)) / 1000

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(10)


def wait_forward(port):
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.2", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("the forward did not appear within 10 s")
            time.sleep(0.02)


def transfer(host, port):
    out = subprocess.run([sys.executable, "-c", CLIENT, host, str(port)], capture_output=True, text=True, check=True)
    n, secs = out.stdout.split()
    return int(n), float(secs)


def connect_ms(host, port, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"E")
        s.recv(1)
        out.append((time.perf_counter() - t0) * 1000)
        s.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "envd", "envd"))
    ap.add_argument("--bytes", type=int, default=1 << 30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "bulk.bin")
        with open(data, "wb") as f:
            f.truncate(args.bytes)  # sparse: served from the page cache
        port = free_port()
        service = subprocess.Popen([sys.executable, "-c", SERVICE, data, str(port)], stdout=subprocess.PIPE, text=True)
        service.stdout.readline()
        try:
            print(f"forwarded vs direct, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {args.bytes >> 20} MiB")
            for mode, extra in (("thread", ()), ("loop", ("--forward-thread=false",))):
                envd = Envd(args.binary, port, *extra)
                try:
                    wait_forward(port)
                    print("\nrelays on " + ("envd's loop (--forward-thread=false)" if mode == "loop" else "their own thread"))
                    best = {}
                    for _ in range(args.rounds):
                        for name, host in (("direct", "127.0.0.1"), ("forwarded", "127.0.0.2")):
                            n, secs = transfer(host, port)
                            assert n == args.bytes, (name, n)
                            best[name] = max(best.get(name, 0), n / secs / 2**20)
                    print(f"  throughput MiB/s (best of {args.rounds}): direct {best['direct']:.0f}, forwarded "
                          f"{best['forwarded']:.0f} ({100 * best['forwarded'] / best['direct']:.0f} %)")
                    lat = {}
                    for _ in range(3):
                        for name, host in (("direct", "127.0.0.1"), ("forwarded", "127.0.0.2")):
                            lat.setdefault(name, []).extend(connect_ms(host, port, 100))
                    print("  connect + 1-byte round trip ms: " + ", ".join(
                        f"{k} p50 {pct(v, .5):.3f} p99 {pct(v, .99):.3f}" for k, v in lat.items()))
                    idle = [envd.list_ms() for _ in range(300)]
                    envd.loop_lag_ms(reset=True)
                    client = subprocess.Popen([sys.executable, "-c", CLIENT, "127.0.0.2", str(port)],
                                              stdout=subprocess.PIPE, text=True)
                    busy = []
                    while client.poll() is None:
                        busy.append(envd.list_ms())
                    lag = envd.loop_lag_ms()
                    n, secs = client.stdout.read().split()
                    assert int(n) == args.bytes
                    print(f"  process.List ms idle: p50 {pct(idle, .5):.3f} p99 {pct(idle, .99):.3f}; during a "
                          f"forwarded {args.bytes >> 20} MiB transfer ({float(secs):.2f} s, {len(busy)} calls): "
                          f"p50 {pct(busy, .5):.3f} p99 {pct(busy, .99):.3f} max {max(busy):.3f}; "
                          f"envd loop lag max {lag:.2f} ms")
                finally:
                    envd.stop()
        finally:
            service.kill()
            service.wait()


if __name__ == "__main__":
    main()
