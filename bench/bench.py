#!/usr/bin/env python3
"""envd benchmarks, measured against this machine in the same run (DESIGN.md §6).

Usage: bench/bench.py [path/to/envd]   (default build/envd/envd)

Prints one line per measure: value, target, and the machine reference where one applies.
Only the standard library is used, so the numbers include no client framework overhead
beyond Python's own (which is reported where it matters).
"""
import http.client
import os
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "envd", "envd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def start(port, *extra):
    return subprocess.Popen([BIN, "-port", str(port), "-isnotfc", *extra], stderr=subprocess.DEVNULL)


def health(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    c.request("GET", "/health")
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def wait_healthy(port):
    """Polls /health until it answers 204 (connection refused until envd listens)."""
    while True:
        try:
            if health(port) == 204:
                return
        except OSError:
            pass


def cold_start_ms(runs=20):
    best, total = 1e9, 0.0
    for _ in range(runs):
        port = free_port()
        t0 = time.perf_counter()
        p = start(port)
        wait_healthy(port)
        dt = (time.perf_counter() - t0) * 1000
        best, total = min(best, dt), total + dt
        p.terminate()
        p.wait()
    return best, total / runs


def envelope(payload, flags=0):
    return struct.pack(">BI", flags, len(payload)) + payload


def stream_throughput(port, payload_size, count):
    """Server-streaming Ticks over Connect binary proto (HTTP/1.1); bytes of payload per second."""
    # TicksRequest{count=1 (field 1), payload_size=3 (field 3)}: varint fields in binary protobuf
    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            out += bytes([b | (0x80 if n else 0)])
            if not n:
                return out
    req = b"\x08" + varint(count) + b"\x18" + varint(payload_size)
    c = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.perf_counter()
    c.request("POST", "/envdtest.Echo/Ticks", body=envelope(req),
              headers={"Content-Type": "application/connect+proto"})
    r = c.getresponse()
    n = 0
    while True:
        chunk = r.read1(1 << 20)
        if not chunk:
            break
        n += len(chunk)
    dt = time.perf_counter() - t0
    c.close()
    return n / dt


def unary_rps(port, seconds=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c.request("POST", "/envdtest.Echo/Echo", body=b'{"text":"x"}', headers={"Content-Type": "application/json"})
        c.getresponse().read()
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    print(f"binary: {BIN} ({os.path.getsize(BIN) / 1e6:.1f} MB)")
    best, mean = cold_start_ms()
    print(f"exec to first /health 204: best {best:.2f} ms, mean {mean:.2f} ms (target <= 5 ms; includes Python's polling)")

    port = free_port()
    p = start(port, "--test-services")
    wait_healthy(port)
    time.sleep(0.5)
    print(f"idle RSS after start: {rss_kib(p.pid)} KiB (target <= 2048 KiB)")
    print(f"unary Connect JSON Echo, one HTTP/1.1 keep-alive connection: {unary_rps(port):.0f} req/s")
    for size in (64 * 1024, 1024 * 1024):
        count = max(16, (256 << 20) // size)
        bps = stream_throughput(port, size, count)
        print(f"server stream, {size // 1024} KiB messages, Connect binary over HTTP/1.1: {bps / 1e9:.2f} GB/s")
    print(f"RSS after the runs: {rss_kib(p.pid)} KiB")
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()
