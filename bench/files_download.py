#!/usr/bin/env python3
"""GET /files throughput: a 1 GiB file on tmpfs downloaded with curl (DESIGN.md §6, issue 8).

Usage: bench/files_download.py [path/to/envd] [path/to/reference-envd]
       (defaults: build/envd/envd, ../shared/reference/envd-go-0.6.13 beside the checkout's parent)

Rows, each the best of 5 runs, in the same run:
  loopback floor  our minimal program: sendfile → loopback TCP → read/write with 1 MiB buffers
                  (bench/loopback_copy.cpp, compiled here) into /dev/null
  cp              cp of the same file into tmpfs (context)
  envd h1         curl over HTTP/1.1 into /dev/null
  envd h2c        curl --http2-prior-knowledge into /dev/null
  envd h1 gzip    curl --compressed, one run (for scale: gzip of random bytes is CPU-bound)
  reference h1    E2B's envd 0.6.13 (it speaks HTTP/1.1 only)
Target: envd ≥ 80 % of the loopback floor, and ahead of the reference.
It runs as root (the reference envd wants it); it is not a test.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "envd", "envd")
REF = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/reference/envd-go-0.6.13"
SIZE = 1 << 30
RUNS = 5


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc):
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("daemon did not listen")


def curl_best(url, *args, runs=RUNS):
    best = None
    for _ in range(runs):
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_download}", *args, url],
                             check=True, capture_output=True, text=True).stdout.split()
        code, secs, size = int(out[0]), float(out[1]), int(out[2])
        if code != 200:
            raise RuntimeError(f"{url}: HTTP {code}")
        if "--compressed" not in args and size != SIZE:
            raise RuntimeError(f"{url}: {size} bytes, want {SIZE}")
        best = secs if best is None else min(best, secs)
    return best


def timed_best(cmd):
    best = None
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        secs = time.perf_counter() - t
        best = secs if best is None else min(best, secs)
    return best


def main():
    shm = tempfile.mkdtemp(prefix="envd-bench-files-", dir="/dev/shm")
    procs = []
    try:
        src = os.path.join(shm, "one-gib.bin")
        with open(src, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(SIZE >> 20):
                f.write(chunk)
        tool = os.path.join(shm, "loopback_copy")
        subprocess.run(["g++", "-O2", "-std=c++20", "-pthread", "-o", tool,
                        os.path.join(ROOT, "bench", "loopback_copy.cpp")], check=True)
        floor_secs = float(subprocess.run([tool, src, "/dev/null", str(RUNS)], check=True, capture_output=True,
                                          text=True).stdout.split()[0])
        cp_secs = timed_best(["cp", src, os.path.join(shm, "copy.bin")])
        os.unlink(os.path.join(shm, "copy.bin"))

        query = "/files?" + urllib.parse.urlencode({"path": src})
        port = free_port()
        ours = subprocess.Popen([BIN, "-port", str(port), "-isnotfc"], stderr=subprocess.DEVNULL)
        procs.append(ours)
        wait_port(port, ours)
        h1 = curl_best(f"http://127.0.0.1:{port}{query}")
        h2 = curl_best(f"http://127.0.0.1:{port}{query}", "--http2-prior-knowledge")
        gz = curl_best(f"http://127.0.0.1:{port}{query}", "--compressed", runs=1)  # CPU-bound: one run

        ref = None
        if os.path.exists(REF):
            rport = free_port()
            refp = subprocess.Popen([REF, "-isnotfc", "-port", str(rport)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            procs.append(refp)
            wait_port(rport, refp)
            ref = curl_best(f"http://127.0.0.1:{rport}{query}")

        gib = SIZE / (1 << 30)

        def row(name, secs, note=""):
            print(f"{name:<28} {secs * 1000:8.1f} ms  {gib / secs:6.2f} GiB/s  {floor_secs / secs * 100:5.1f} % of floor{note}")

        print(f"download of 1 GiB from tmpfs, best of {RUNS}")
        row("loopback floor (sendfile)", floor_secs)
        row("cp into tmpfs", cp_secs)
        row("envd HTTP/1.1 (curl)", h1, "   target ≥ 80 %")
        row("envd h2c (curl)", h2, "   target ≥ 80 %")
        row("envd HTTP/1.1 gzip (curl)", gz, "   CPU-bound (random data)")
        if ref is not None:
            row("reference envd HTTP/1.1", ref, f"   envd is {ref / h1:.2f}x faster")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
