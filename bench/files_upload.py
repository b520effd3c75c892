#!/usr/bin/env python3
"""POST /files throughput: a 1 GiB file uploaded with curl into tmpfs (DESIGN.md §6, issue 8).

Usage: bench/files_upload.py [path/to/envd] [path/to/reference-envd]
       (defaults: build/envd/envd, /work/shared/reference/envd-go-0.6.13)

Rows, each the best of 5 runs, in the same run:
  loopback floor   our minimal program: sendfile → loopback TCP → read/write with 1 MiB buffers
                   into a tmpfs file (bench/loopback_copy.cpp, compiled here)
  cp               cp of the same file within tmpfs (context)
  envd h1 raw      curl -T (application/octet-stream, Content-Length) over HTTP/1.1
  envd h2c raw     the same with --http2-prior-knowledge
  envd h1 multipart  curl -F (what the SDKs send by default)
  envd h1 atomic   raw with ?atomic=true (O_TMPFILE + fsync + rename)
  reference h1 raw E2B's envd 0.6.13 (HTTP/1.1 only)
Then envd's RSS growth during one 1 GiB upload on a fresh daemon (VmHWM after − VmRSS before;
target ≤ 16 MiB). Target for throughput: ≥ 80 % of the loopback floor, ahead of the reference.
It runs as root (the reference envd wants it); it is not a test.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "envd", "envd")
REF = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/reference/envd-go-0.6.13"
SIZE = 1 << 30
RUNS = int(os.environ.get("RUNS", "5"))


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


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def curl_upload(url, src, dst, *args, multipart=False):
    if multipart:
        body = ["-F", f"file=@{src};filename={dst}"]
    else:
        body = ["-T", src, "-X", "POST", "-H", "content-type: application/octet-stream"]
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", *body, *args, url],
                         check=True, capture_output=True, text=True).stdout.split()
    if int(out[0]) != 200:
        raise RuntimeError(f"{url}: HTTP {out[0]}")
    if os.path.getsize(dst) != SIZE:
        raise RuntimeError(f"{dst}: {os.path.getsize(dst)} bytes, want {SIZE}")
    return float(out[1])


def best(fn):
    return min(fn() for _ in range(RUNS))


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main():
    work = tempfile.mkdtemp(prefix="envd-bench-upload-", dir="/dev/shm")
    try:
        src = os.path.join(work, "src.bin")
        dst = os.path.join(work, "dst.bin")
        with open(src, "wb") as f:
            for _ in range(SIZE >> 20):
                f.write(os.urandom(1 << 20))
        # The floor program is shared with bench/files_download.py.
        loop_src = os.path.join(ROOT, "bench", "loopback_copy.cpp")
        if not os.path.exists(loop_src):
            sys.exit(f"{loop_src} is missing (it comes with the GET /files bench)")
        loop_bin = os.path.join(work, "loopback_copy")
        subprocess.run(["c++", "-O2", "-std=c++20", "-pthread", "-o", loop_bin, loop_src], check=True)
        floor = float(subprocess.run([loop_bin, src, dst, str(RUNS)], check=True, capture_output=True, text=True).stdout.split()[0])
        cp = best(lambda: timed(["cp", src, dst]))

        port = free_port()
        proc = subprocess.Popen([BIN, "-port", str(port), "-isnotfc"], stderr=subprocess.DEVNULL)
        try:
            wait_port(port, proc)
            base = f"http://127.0.0.1:{port}/files?path={dst}"
            h1 = best(lambda: curl_upload(base, src, dst))
            h2 = best(lambda: curl_upload(base, src, dst, "--http2-prior-knowledge"))
            mp = best(lambda: curl_upload(f"http://127.0.0.1:{port}/files", src, dst, multipart=True))
            at = best(lambda: curl_upload(base + "&atomic=true", src, dst))
        finally:
            proc.terminate()
            proc.wait()

        ref = None
        if os.path.exists(REF):
            rport = free_port()
            rproc = subprocess.Popen([REF, "-isnotfc", "-port", str(rport)], stderr=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, cwd=work)
            try:
                wait_port(rport, rproc)
                ref = best(lambda: curl_upload(f"http://127.0.0.1:{rport}/files?path={dst}", src, dst))
            finally:
                rproc.terminate()
                rproc.wait()

        # RSS growth over one upload, on a fresh daemon (HTTP/1.1 raw, then h2c multipart).
        growth = {}
        for name, args, mpart in (("h1 raw", (), False), ("h2c multipart", ("--http2-prior-knowledge",), True)):
            port = free_port()
            proc = subprocess.Popen([BIN, "-port", str(port), "-isnotfc"], stderr=subprocess.DEVNULL)
            try:
                wait_port(port, proc)
                before = status_kib(proc.pid, "VmRSS")
                url = f"http://127.0.0.1:{port}/files" + ("" if mpart else f"?path={dst}")
                curl_upload(url, src, dst, *args, multipart=mpart)
                growth[name] = (before, status_kib(proc.pid, "VmHWM"))
            finally:
                proc.terminate()
                proc.wait()

        gib = SIZE / (1 << 30)

        def row(name, secs, note=""):
            print(f"{name:34s} {secs:7.3f} s  {gib / secs:6.2f} GiB/s  {floor / secs * 100:5.0f} % of floor{note}")

        print(f"1 GiB upload into tmpfs, best of {RUNS}")
        row("loopback floor (sendfile→read/write)", floor)
        row("cp (context)", cp)
        row("envd HTTP/1.1 raw (curl -T)", h1, "   target ≥ 80 %")
        row("envd h2c raw (curl -T)", h2, "   target ≥ 80 %")
        row("envd HTTP/1.1 multipart (curl -F)", mp)
        row("envd HTTP/1.1 raw, atomic=true", at)
        if ref is not None:
            row("reference envd 0.6.13 HTTP/1.1 raw", ref, f"   envd h1 is {ref / h1:.2f}× as fast")
        for name, (before, hwm) in growth.items():
            print(f"envd RSS during a 1 GiB upload ({name}): {before} KiB before, peak {hwm} KiB, "
                  f"growth {hwm - before} KiB (target ≤ 16384 KiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
