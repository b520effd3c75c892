#!/usr/bin/env python3
"""envd benchmarks, measured against this machine in the same run (DESIGN.md §6).

Usage: bench/bench.py [path/to/envd]   (default build/envd/envd)

Prints one line per measure: value, target, and the machine reference where one applies.
Only the standard library is used, so the numbers include no client framework overhead
beyond Python's own (which is reported where it matters).
"""
import http.client
import json
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


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def rss_line(pid):
    return f"{rss_kib(pid)} KiB (anonymous {rss_kib(pid, 'RssAnon')}, file {rss_kib(pid, 'RssFile')})"


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


def cold_start_ms(runs=40):
    """exec to the first /health 204. The client connects once envd logs that it listens (read from
    its stderr, as a supervisor would wait for readiness) instead of spinning on refused connects,
    which on 2 cores steals time from the daemon it measures."""
    times = []
    for _ in range(runs):
        port = free_port()
        r, w = os.pipe()
        t0 = time.perf_counter()
        pid = os.posix_spawn(BIN, [BIN, "-port", str(port), "-isnotfc"], {}, file_actions=[(os.POSIX_SPAWN_DUP2, w, 2)])
        os.close(w)
        seen = b""
        while b"listening on" not in seen:
            chunk = os.read(r, 65536)
            if not chunk:
                raise RuntimeError("envd exited before listening: " + seen.decode(errors="replace"))
            seen += chunk
        status = health(port)
        times.append((time.perf_counter() - t0) * 1000)
        assert status == 204
        os.kill(pid, 15)
        os.waitpid(pid, 0)
        os.close(r)
    times.sort()
    return times[0], times[len(times) // 2]


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


# Start of a process that prints "ready" (base64 "cmVhZHkK" in the JSON stdout event) and sleeps.
START_READY_BODY = json.dumps({"process": {"cmd": "/bin/sh", "args": ["-c", "echo ready; exec sleep 30"]}}).encode()


def concurrent_streams(port, pid, n=1000):
    """n concurrent Start streams (Connect JSON over HTTP/1.1, one connection each) of a process that
    prints a line and sleeps; returns (streams that got their start and stdout, RSS growth in KiB).
    The processes are killed by their own timeout afterwards (Connect-Timeout-Ms)."""
    body = START_READY_BODY
    req = (f"POST /process.Process/Start HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\n"
           f"Connect-Timeout-Ms: 20000\r\nContent-Length: {len(body) + 5}\r\n\r\n").encode() + envelope(body)
    before = rss_kib(pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    ok = 0
    for s in socks:
        s.settimeout(30)
        got = b""
        while b"cmVhZHkK" not in got:  # base64 of "ready\\n" in the stdout event
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        ok += b"cmVhZHkK" in got
    grown = rss_kib(pid) - before
    for s in socks:
        s.close()
    return ok, grown


def _h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_literal(name, value):
    """HPACK literal header field without indexing, new name, no Huffman (names/values < 127 bytes)."""
    return bytes([0, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def concurrent_streams_h2(port, pid, n=1000, per_connection=100):
    """As concurrent_streams, over h2c prior knowledge: `per_connection` streams share a connection."""
    body = START_READY_BODY
    headers = b"".join(_hpack_literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", "/process.Process/Start"), (":authority", "x"),
        ("content-type", "application/connect+json"), ("connect-timeout-ms", "20000")])
    before = rss_kib(pid)
    conns = []
    for first in range(0, n, per_connection):
        s = socket.create_connection(("127.0.0.1", port))
        # A large connection window: the streams' output together exceeds the default 64 KiB.
        out = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0) +
               _h2_frame(8, 0, 0, struct.pack(">I", 1 << 30)))
        count = min(per_connection, n - first)
        for i in range(count):
            sid = 1 + 2 * i
            out += _h2_frame(1, 0x4, sid, headers) + _h2_frame(0, 0x1, sid, envelope(body))
        s.sendall(out)
        conns.append((s, count))
    ok = 0
    for s, count in conns:
        s.settimeout(30)
        buf, ready = b"", set()
        while len(ready) < count:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + length], buf[9 + length:]
                if ftype == 4 and not flags & 1:
                    s.sendall(_h2_frame(4, 1, 0))  # SETTINGS ack
                elif ftype == 6 and not flags & 1:
                    s.sendall(_h2_frame(6, 1, 0, payload))  # PING ack
                elif ftype == 0 and b"cmVhZHkK" in payload:
                    ready.add(sid)
        ok += len(ready)
    grown = rss_kib(pid) - before
    for s, _ in conns:
        s.close()
    return ok, grown


def loop_lag_ms(port, reset=True):
    """envd's own worst event-loop lag (--test-services Stats: a 10 ms timer's worst lateness) since
    the last reset, in ms; resets it."""
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/envdtest.Echo/Stats", body=json.dumps({"resetLoopLag": reset}),
              headers={"Content-Type": "application/json"})
    r = json.loads(c.getresponse().read() or b"{}")
    c.close()
    return int(r.get("maxLoopLagUs", 0)) / 1000


def health_during_starts(port, pid, n=1000):
    """Largest /health round trip (one keep-alive HTTP/1.1 connection, polled back to back) while n
    Start streams arrive at once on one h2c connection; returns (streams served, max ms, polls,
    seconds until all n said ready, envd's worst loop lag in ms)."""
    import threading
    stop, worst, polls = threading.Event(), [0.0], [0]

    def poll():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            t = time.perf_counter()
            c.request("GET", "/health")
            c.getresponse().read()
            worst[0] = max(worst[0], (time.perf_counter() - t) * 1000)
            polls[0] += 1
        c.close()

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.2)
    loop_lag_ms(port)
    t0 = time.perf_counter()
    try:
        ok, _ = concurrent_streams_h2(port, pid, n, per_connection=n)
    finally:
        stop.set()
        th.join()
    return ok, worst[0], polls[0], time.perf_counter() - t0, loop_lag_ms(port)


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
    best, median = cold_start_ms()
    print(f"exec to first /health 204: best {best:.2f} ms, median {median:.2f} ms (target <= 5 ms)")

    port = free_port()
    # A short trim interval so the idle measure needs no long sleep; the default is 10 s.
    p = start(port, "--test-services", "--trim-interval-ms", "300")
    wait_healthy(port)
    print(f"RSS right after the first /health 204: {rss_line(p.pid)}")
    time.sleep(1.0)
    print(f"idle RSS after start (one trim tick later): {rss_line(p.pid)} (target <= 2048 KiB)")
    print(f"unary Connect JSON Echo, one HTTP/1.1 keep-alive connection: {unary_rps(port):.0f} req/s")
    for size in (64 * 1024, 1024 * 1024):
        count = max(16, (256 << 20) // size)
        bps = stream_throughput(port, size, count)
        print(f"server stream, {size // 1024} KiB messages, Connect binary over HTTP/1.1: {bps / 1e9:.2f} GB/s")
    print(f"RSS after the runs: {rss_line(p.pid)}")
    time.sleep(1.0)
    print(f"idle RSS after the runs (one trim tick later): {rss_line(p.pid)}")
    p.terminate()
    p.wait()

    # Memory per stream, each transport on a fresh daemon (freed heap of an earlier run would hide
    # growth). The processes end by their own Connect-Timeout-Ms; the daemon is stopped first.
    n = 1000
    for name, measure in (("HTTP/1.1, a connection each", concurrent_streams),
                          ("h2c, 100 per connection", concurrent_streams_h2)):
        port = free_port()
        p = start(port, "--no-cgroups")
        wait_healthy(port)
        ok, grown = measure(port, p.pid, n)
        print(f"{n} concurrent Start streams ({name}): {ok} served, "
              f"RSS growth {grown} KiB = {grown / n:.1f} KiB per stream (target <= 16 KiB)")
        p.terminate()
        p.wait()

    port = free_port()
    # All 1000 streams at once on one connection: above the default of 250 concurrent h2 streams.
    p = start(port, "--no-cgroups", "--test-services", "--h2-max-concurrent-streams", str(n))
    wait_healthy(port)
    ok, worst, polls, secs, lag = health_during_starts(port, p.pid, n)
    print(f"/health while {n} Starts arrive on one h2c connection: max {worst:.1f} ms over {polls} polls "
          f"({ok} streams served in {secs:.1f} s; envd's own worst loop lag {lag:.1f} ms)")
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()
