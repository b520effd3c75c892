#!/usr/bin/env python3
"""Writes envd/startup.order: the text sections of the functions envd runs from exec to its first
/health answer (and its first second of idling), then those the standard mix of bench/run.py adds,
for gold's --section-ordering-file.

Why: the kernel maps 64 KiB of cached text around each code page a process faults in
(fault-around). Start-up code (static initialisers, flag parsing, the loop, the first request) was
spread over the whole 4.7 MiB of text, so 54 of its 72 blocks were resident 0.5 s after start
(3.4 MiB of RSS) although start-up runs only ~1.6 MiB of functions. Linked in this order they share
a few blocks (envd/CMakeLists.txt passes the file to gold when it is there).

    python3 bench/startup_order.py --envd PATH-TO-UNSTRIPPED-ENVD

The binary must have symbols: relink the release binary without -s (`ninja -t commands envd/envd`,
drop ` -s`, change the output name). The list is by name; names that no longer exist are ignored by
the linker, so a stale list costs only locality, never correctness. Regenerate it when start-up
changes much (the footprint row of bench/RESULTS.md says when).
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from run import standard_mix  # bench/run.py, beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "envd", "startup.order")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_names(path):
    names = set()
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"c?fn=\(\d+\) (.*)$", line.rstrip("\n"))
            if m and not m.group(1).startswith(("(", "0x")) and "'" not in m.group(1):
                names.add(m.group(1))
    return names


def executed_functions(envd):
    """Mangled names of the functions callgrind saw run: first those of start-up (to the first
    /health 204, then 1 s idle), then those the standard mix of bench/run.py adds (without Start)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        port = free_port()
        p = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
                              envd, "-isnotfc", "-port", str(port), "-no-cgroups"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 204:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or p.poll() is not None:
                p.kill()
                sys.exit("envd under callgrind did not answer /health")
            time.sleep(0.2)
        try:
            time.sleep(1)
            subprocess.run(["callgrind_control", "--dump=start", str(p.pid)], check=True, stdout=subprocess.DEVNULL)
            standard_mix(port, tmp, starts=False)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(120)
        dumps = sorted(f for f in os.listdir(tmp) if f.startswith("cg.out"))
        first = parse_names(os.path.join(tmp, dumps[1] if len(dumps) > 1 else dumps[0]))
        rest = set()
        for d in dumps:
            rest |= parse_names(os.path.join(tmp, d))
    return sorted(first), sorted(rest - first)


def sections(names):
    """Section names gcc gives those functions with -ffunction-sections: .text.<name> (their cold
    parts, .text.unlikely.*, stay out of the way); constructors and destructors live in their C2/D2 comdat's section; clones
    (.isra, .constprop, .part, .cold) in their origin's. Static initialisers are in .text.startup."""
    out = [".text.startup", ".text.startup.*"]
    seen = set(out)
    for f in names:
        variants = {f, re.sub(r"\.(isra|constprop|part|cold)\.?\d*.*$", "", f)}
        for a, b in (("C1E", "C2E"), ("D1E", "D2E"), ("D0E", "D2E"), ("C1E", "C4E"), ("D1E", "D4E")):
            if a in f:
                variants.add(f.replace(a, b, 1))
        for v in sorted(variants):
            s = ".text." + v
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envd", required=True, help="an unstripped release envd")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    first, then = executed_functions(os.path.abspath(a.envd))
    secs = sections(first)
    secs += [x for x in sections(then) if x not in set(secs)]
    names = first + then
    with open(a.out, "w") as f:
        f.write("\n".join(secs) + "\n")
    print(f"{len(names)} functions, {len(secs)} section names → {a.out}")


if __name__ == "__main__":
    main()
