#!/usr/bin/env python3
"""CPU share of per-command limits (issue 13.2): a benchmark, never a timed test.

    python3 bench/cpu_share.py [--envd BIN] [--seconds N]

Starts envd on the machine's cgroup2 mount and runs busy loops through Process.Start with
`limits.cpu_millicores` (cpu.max) and, two at a time pinned to one CPU, with different
`limits.cpu_weight` (cpu.weight). Prints the CPU time each got over the wall time; judges nothing.
Where `cpu` is not delegated to <mount>/user it prints the exact reason and exits 0.
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            if tail.split(" ")[0] == "cgroup2":
                return head.split(" ")[4]
    return None


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return f"({e.strerror})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port, request):
    """Process.Start over Connect JSON; returns (stdout text, end event, error)."""
    body = json.dumps(request).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/process.Process/Start", struct.pack(">BI", 0, len(body)) + body,
                 {"Content-Type": "application/connect+json"})
    data = conn.getresponse().read()
    out, end, err = "", None, None
    off = 0
    while off + 5 <= len(data):
        flags, n = struct.unpack(">BI", data[off:off + 5])
        msg = json.loads(data[off + 5:off + 5 + n])
        off += 5 + n
        if flags & 2:
            err = msg.get("error")
            continue
        ev = msg.get("event", {})
        if "data" in ev and "stdout" in ev["data"]:
            import base64
            out += base64.b64decode(ev["data"]["stdout"]).decode()
        if "end" in ev:
            end = ev["end"]
    return out, end, err


def busy(seconds, pin=None):
    """A shell whose child spins for `seconds`; `times` prints the children's user and sys time."""
    spin = f'timeout {seconds} awk "BEGIN {{ while (1) {{}} }}"'
    if pin is not None:
        spin = f"taskset -c {pin} " + spin
    return {"cmd": "/bin/sh", "args": ["-c", f"{spin}; times"]}


def cpu_seconds(times_output):
    # `times`: shell line, then children line "0m2.990s 0m0.004s".
    lines = [l for l in times_output.strip().splitlines() if l.strip()]
    total = 0.0
    for part in lines[-1].split():
        m, s = part.rstrip("s").split("m")
        total += int(m) * 60 + float(s)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--envd", default=os.path.join(ROOT, "build", "envd", "envd"))
    ap.add_argument("--seconds", type=int, default=3)
    a = ap.parse_args()

    mount = cgroup2_mount()
    if not mount:
        print("skipped: no cgroup2 mount in /proc/self/mountinfo")
        return 0
    port = free_port()
    log = tempfile.TemporaryFile()
    envd = subprocess.Popen([a.envd, "--port", str(port), "--isnotfc", "--forward-address=", "-cgroup-root", mount],
                            stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        enabled = read(f"{mount}/user/cgroup.subtree_control").split()
        if "cpu" not in enabled:
            print(f"skipped: controller cpu is not delegated: {mount}/user/cgroup.subtree_control is "
                  f"\"{read(f'{mount}/user/cgroup.subtree_control')}\", {mount}/user/cgroup.controllers is "
                  f"\"{read(f'{mount}/user/cgroup.controllers')}\", {mount}/cgroup.controllers is "
                  f"\"{read(f'{mount}/cgroup.controllers')}\"")
            return 0
        print(f"cpu.max (cpu_millicores), {a.seconds} s busy loop: CPU seconds / wall seconds")
        for mc in (None, 1000, 500, 250, 100):
            req = {"process": busy(a.seconds)}
            if mc:
                req["limits"] = {"cpuMillicores": mc}
            out, end, err = start(port, req)
            if err:
                print(f"  {mc}: error {err}")
                continue
            share = cpu_seconds(out) / a.seconds
            print(f"  {'unlimited' if mc is None else f'{mc} millicores':>16}: {share:.3f} CPU")
        print(f"cpu.weight, two busy loops pinned to CPU 0 for {a.seconds} s: CPU seconds each")
        for wa, wb in ((100, 100), (100, 300), (50, 500)):
            results = {}

            def run(name, w):
                results[name] = start(port, {"process": busy(a.seconds, pin=0), "limits": {"cpuWeight": w}})

            ts = [threading.Thread(target=run, args=("a", wa)), threading.Thread(target=run, args=("b", wb))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if results["a"][2] or results["b"][2]:
                print(f"  {wa}:{wb}: error {results['a'][2] or results['b'][2]}")
                continue
            ca, cb = cpu_seconds(results["a"][0]), cpu_seconds(results["b"][0])
            print(f"  weights {wa}:{wb} -> {ca:.2f} s : {cb:.2f} s (ratio {cb / ca if ca else float('inf'):.2f})")
        return 0
    finally:
        envd.terminate()
        envd.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
