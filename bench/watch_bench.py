#!/usr/bin/env python3
"""Directory watching, measured in one run beside the reference envd and `inotifywait -m`
(Debian inotify-tools): events per second delivered to a client for a burst of file creations,
and the time to arm a recursive watch on a tree of 10,000 directories (request → `start`, or
inotifywait's "Watches established.").

    python3 bench/watch_bench.py [--envd build/envd/envd] [--reference ../shared/reference/envd-go-0.6.13]
                                 [--files 20000] [--dirs 10000]

Every client is a real one: curl streaming a Connect WatchDir (JSON over HTTP/1.1), counting
EVENT_TYPE_CREATE as it arrives. Bounded: each wait gives up after 120 s.
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(cmd, port):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return p
        except OSError:
            time.sleep(0.02)
    p.kill()
    raise RuntimeError(f"{cmd[0]} did not listen on {port}")


def watch_stream(port, path, recursive, out_path):
    body = json.dumps({"path": path, "recursive": recursive}).encode()
    env = b"\x00" + struct.pack(">I", len(body)) + body
    body_file = out_path + ".req"
    with open(body_file, "wb") as f:
        f.write(env)
    return subprocess.Popen(
        ["curl", "-sN", "--http1.1", "-X", "POST", f"http://127.0.0.1:{port}/filesystem.Filesystem/WatchDir",
         "-H", "content-type: application/connect+json", "--data-binary", "@" + body_file, "-o", out_path])


def wait_count(out_path, needle, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(out_path, "rb") as f:
                if f.read().count(needle) >= n:
                    return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"timed out waiting for {n} x {needle!r} in {out_path}")


def create_files(d, n):
    for i in range(n):
        os.close(os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_WRONLY, 0o644))


def make_tree(root, n):
    side = max(1, int(n ** 0.5))
    made = 0
    for i in range(side):
        for j in range(side):
            if made >= n:
                return
            os.makedirs(os.path.join(root, f"a{i}", f"b{j}"), exist_ok=True)
            made += 1


def bench_envd(name, cmd_for_port, files, dirs, work):
    port = free_port()
    proc = start_daemon(cmd_for_port(port), port)
    try:
        d = tempfile.mkdtemp(dir=work)
        out = os.path.join(work, f"{name}.burst")
        c = watch_stream(port, d, False, out)
        wait_count(out, b'"start"', 1)
        t0 = time.monotonic()
        create_files(d, files)
        tc = time.monotonic()
        t1 = wait_count(out, b"EVENT_TYPE_CREATE", files)
        if os.environ.get("WATCH_BENCH_DEBUG"):
            print(f"{name}: creating took {tc - t0:.2f} s, delivery done {t1 - t0:.2f} s after the first")
        c.kill()
        c.wait()
        burst = files / (t1 - t0)

        tree = tempfile.mkdtemp(dir=work)
        make_tree(tree, dirs)
        out = os.path.join(work, f"{name}.arm")
        t0 = time.monotonic()
        c = watch_stream(port, tree, True, out)
        t1 = wait_count(out, b'"start"', 1)
        c.kill()
        c.wait()
        return burst, (t1 - t0) * 1000
    finally:
        proc.terminate()
        proc.wait()


def bench_inotifywait(files, dirs, work):
    if not shutil.which("inotifywait"):
        return None, None
    d = tempfile.mkdtemp(dir=work)
    out = os.path.join(work, "inotifywait.burst")
    with open(out, "wb") as f, open(out + ".err", "wb") as e:
        c = subprocess.Popen(["inotifywait", "-m", "-e", "create", d], stdout=f, stderr=e)
    wait_count(out + ".err", b"Watches established", 1)
    t0 = time.monotonic()
    create_files(d, files)
    t1 = wait_count(out, b"CREATE", files)
    c.kill()
    c.wait()
    rate = files / (t1 - t0)
    tree = tempfile.mkdtemp(dir=work)
    make_tree(tree, dirs)
    out = os.path.join(work, "inotifywait.arm")
    t0 = time.monotonic()
    with open(out, "wb") as f, open(out + ".err", "wb") as e:
        c = subprocess.Popen(["inotifywait", "-m", "-r", tree], stdout=f, stderr=e)
    t2 = wait_count(out + ".err", b"Watches established", 1)
    c.kill()
    c.wait()
    return rate, (t2 - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--envd", default=os.path.join(HERE, "..", "build", "envd", "envd"))
    ap.add_argument("--reference", default=os.path.join(HERE, "..", "..", "shared", "reference", "envd-go-0.6.13")
                    if os.path.isdir(os.path.join(HERE, "..", "..", "shared")) else "/work/shared/reference/envd-go-0.6.13")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--dirs", type=int, default=10000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="envd-watch-bench-")
    rows = []
    try:
        rows.append(("envd (ours)",) + bench_envd(
            "ours", lambda p: [a.envd, "-port", str(p), "-isnotfc", "-no-cgroups", "--log-level", "error"], a.files, a.dirs, work))
        if os.path.exists(a.reference):
            rows.append(("reference envd",) + bench_envd(
                "ref", lambda p: [a.reference, "-port", str(p), "-isnotfc"], a.files, a.dirs, work))
        rows.append(("inotifywait -m",) + bench_inotifywait(a.files, a.dirs, work))
        # The machine's own limit for the burst: the same creations with nobody watching.
        d = tempfile.mkdtemp(dir=work)
        t0 = time.monotonic()
        create_files(d, a.files)
        rows.append(("(no watcher)", a.files / (time.monotonic() - t0), None))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'watcher':<16} {'creates/s (' + str(a.files) + ')':>20} {'arm ' + str(a.dirs) + ' dirs (ms)':>22}")
    for name, rate, arm in rows:
        r = f"{rate:,.0f}" if rate else "n/a"
        m = f"{arm:,.0f}" if arm else "n/a"
        print(f"{name:<16} {r:>20} {m:>22}")


if __name__ == "__main__":
    main()
