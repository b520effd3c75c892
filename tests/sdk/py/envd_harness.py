"""Test harness for the official e2b Python SDK against our envd.

Starts the built daemon ($ENVD_BIN) as root with -isnotfc, makes sure the test user `user`
exists, holds the machine-wide lock for port 49983 while a debug-mode daemon runs there, runs
the fake control plane (../fake_api.mjs, shared with the JS suite), and stops it all.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_API = HERE.parent / "fake_api.mjs"
DEBUG_PORT = 49983
PORT_LOCK = "/tmp/envd-49983.lock"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def clear_e2b_env() -> None:
    """Environment leaking in from the caller would silently redirect the SDK."""
    for k in list(os.environ):
        if k.startswith("E2B_"):
            del os.environ[k]


# ENVD_REF=<path> (or ENVD_REF=1 with ENVD_BIN) runs E2B's Go envd, the reference, instead of
# ours, so that the same tests prove themselves against it. It takes Go flags (`-isnotfc -port N`,
# plus `-no-cgroups` here), prints no `listening` line and has no h2c: the harness picks the free
# port itself and waits for GET /health.
_ref = os.environ.get("ENVD_REF", "")
REF = _ref if _ref not in ("", "0") else ""


def envd_bin() -> str:
    bin_ = (REF if REF and REF != "1" else os.environ.get("ENVD_BIN")) or str(HERE.parents[2] / "build/envd/envd")
    if not os.path.exists(bin_):
        raise RuntimeError(f"envd binary not found at {bin_}: build it or set ENVD_BIN")
    return bin_


def envd_version() -> str:
    """`$ENVD_BIN -version`, trimmed: what the template builder stores as envdVersion."""
    return subprocess.run(
        [envd_bin(), "-version"], check=True, capture_output=True, text=True, timeout=10
    ).stdout.strip()


def ensure_test_user() -> None:
    """The test user of E2B templates (`useradd -m -s /bin/bash user`), created once."""
    if os.geteuid() != 0:
        raise RuntimeError("the SDK harness must run as root (envd runs as root and creates users)")
    for _ in range(20):
        if subprocess.run(["id", "-u", "user"], capture_output=True).returncode == 0:
            return
        r = subprocess.run(["useradd", "-m", "-s", "/bin/bash", "user"], capture_output=True, text=True)
        if r.returncode == 0:
            return
        # 9: created concurrently by another test process; 10: /etc/passwd busy.
        if r.returncode not in (9, 10):
            raise RuntimeError(f"useradd failed ({r.returncode}): {r.stderr}")
        time.sleep(0.1)
    subprocess.run(["id", "-u", "user"], check=True, capture_output=True)


class PortLock:
    """Exclusive flock on /tmp/envd-49983.lock, bounded wait."""

    def __init__(self, timeout_s: float = 240.0):
        self._f = open(PORT_LOCK, "a")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._f.close()
                    raise TimeoutError(f"could not lock {PORT_LOCK} within {timeout_s}s")
                time.sleep(0.2)

    def release(self) -> None:
        if not self._f.closed:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()


class Envd:
    """envd as root with -isnotfc on `port` (0 = a free port, parsed from its log)."""

    def __init__(self, port: int = 0, args: tuple[str, ...] = ()):
        ensure_test_user()
        if REF:
            self._start_ref(port)
            return
        self.proc = subprocess.Popen(
            [envd_bin(), "-isnotfc", "-port", str(port), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._log: list[str] = []
        found: dict[str, int] = {}
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace")
                self._log.append(line)
                if len(self._log) > 2000:
                    del self._log[:1000]
                m = re.search(r"listening on [^\"\s]*:(\d+)", line)
                if m and "port" not in found:
                    found["port"] = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or "port" not in found:
            self.stop()
            raise RuntimeError(f"envd did not start:\n{self.log()}")
        self.port = found["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    def _start_ref(self, port: int) -> None:
        """The reference envd (ENVD_REF): our flags mapped to its own; ready once /health answers."""
        import httpx

        if port == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [envd_bin(), "-isnotfc", "-port", str(port), "-no-cgroups"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._log = []

        def pump() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                self._log.append(raw.decode("utf-8", "replace"))
                if len(self._log) > 2000:
                    del self._log[:1000]

        threading.Thread(target=pump, daemon=True).start()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"reference envd exited during startup:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"reference envd did not answer /health:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return "".join(self._log)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, bounded wait, SIGKILL; returns the exit status (negative = signal)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        return self.proc.returncode


class FakeApi:
    """The shared fake control plane (node ../fake_api.mjs); lives while its stdin is open."""

    def __init__(self, envd_url: str, version: str):
        self.proc = subprocess.Popen(
            ["node", str(FAKE_API), "--envd-url", envd_url, "--envd-version", version],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError("fake control plane did not start")
        info = json.loads(line)
        self.api_url: str = info["apiUrl"]
        self.edge_url: str = info["edgeUrl"]
        self.sandbox_id: str = info["sandboxId"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)


def wait_for(fn, timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition"):
    """Polls `fn` until it returns a truthy value (returned), or fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def start_raw(base_url: str, cmd: str, args: list[str], tag: str | None = None) -> int:
    """process.Process/Start over plain Connect JSON, for what the SDK cannot ask for (a tag).

    Returns the pid from the start event and drops the stream (the process outlives its
    client). No Connect-Timeout-Ms, so no lifetime limit: the caller kills the process."""
    import httpx

    msg: dict = {"process": {"cmd": cmd, "args": args}}
    if tag is not None:
        msg["tag"] = tag
    body = json.dumps(msg).encode()
    frame = b"\x00" + struct.pack(">I", len(body)) + body
    headers = {"content-type": "application/connect+json", "connect-protocol-version": "1"}
    with httpx.Client(timeout=10) as c:
        with c.stream("POST", f"{base_url}/process.Process/Start", content=frame, headers=headers) as r:
            if r.status_code != 200:
                raise RuntimeError(f"Start: HTTP {r.status_code} {r.read()!r}")
            buf = b""
            for chunk in r.iter_raw():
                buf += chunk
                if len(buf) >= 5 and len(buf) >= 5 + struct.unpack(">I", buf[1:5])[0]:
                    n = struct.unpack(">I", buf[1:5])[0]
                    ev = json.loads(buf[5 : 5 + n])
                    pid = ev.get("event", {}).get("start", {}).get("pid")
                    if buf[0] != 0 or not pid:
                        raise RuntimeError(f"Start: expected a start event first, got {ev}")
                    return int(pid)
    raise RuntimeError("Start: stream ended before the start event")
