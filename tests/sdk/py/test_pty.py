"""The official e2b Python SDK's `sandbox.pty` (sync `Sandbox`, and `AsyncSandbox`) against our
envd's process.Process PTYs, in debug mode (E2B_DEBUG=true, http://localhost:49983). The module
holds /tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983). Contract §4.2, §4.9, §4.11; issue 4.

The shell echoes what it is sent, so every expected answer is computed by the shell
(`$((40+2))`, `$TERM`) and cannot be mistaken for the echo of the input. A shell is killed only
once it answered (its login profile is done: see test_commands.py), and a PTY whose kill is timed
by envd runs as `user`."""

import asyncio
import re
import threading
import time

import pytest
from e2b import (
    AsyncSandbox,
    CommandExitException,
    NotFoundException,
    PtySize,
    Sandbox,
    SandboxException,
    TimeoutException,
)

UNKNOWN_PID = 99_999_999


class Terminal:
    """Drives a sync PTY handle from a thread (`handle.wait(on_pty=...)`) into a transcript."""

    def __init__(self, handle):
        self.handle = handle
        self.text = ""
        self._cond = threading.Condition()
        self._outcome: tuple = ()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_pty(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        with self._cond:
            self.text += data.decode("utf-8", "replace")
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._outcome = ("result", self.handle.wait(on_pty=self._on_pty))
        except BaseException as e:  # noqa: BLE001
            self._outcome = ("error", e)

    def mark(self) -> int:
        with self._cond:
            return len(self.text)

    def wait_since(self, mark: int, pattern: str, timeout_s: float = 10.0) -> re.Match:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                m = re.search(pattern, self.text[mark:], re.S)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {pattern!r} in the terminal; got {self.text[mark:]!r}")
                self._cond.wait(left)

    def end(self, timeout_s: float = 15.0):
        """The handle's wait() outcome: the result, or raises what it raised."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the PTY stream did not end"
        kind, value = self._outcome
        if kind == "error":
            raise value
        return value


def send(sbx, pid: int, s: str) -> None:
    sbx.pty.send_stdin(pid, s.encode())


def listed(sbx, pid: int):
    return next((p for p in sbx.commands.list() if p.pid == pid), None)


def test_create_send_input_output(sbx):
    h = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    term = Terminal(h)
    try:
        assert isinstance(h.pid, int) and h.pid > 1
        m = term.mark()
        send(sbx, h.pid, "echo hi-$((40+2))\n")
        term.wait_since(m, r"hi-42")
        m = term.mark()
        send(sbx, h.pid, 'echo "[$TERM|$LANG|$LC_ALL]"; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty-$((1+2)); echo err-$((2+2)) >&2\n')
        term.wait_since(m, r"\[xterm-256color\|C\.UTF-8\|C\.UTF-8\].*tty-3.*err-4")
        info = listed(sbx, h.pid)
        assert info is not None
        assert (info.cmd, info.args, info.envs.get("TERM")) == ("/bin/bash", ["-i", "-l"], "xterm-256color")
    finally:
        assert sbx.pty.kill(h.pid) is True
    with pytest.raises(CommandExitException):
        term.end()


def test_resize(sbx):
    h = sbx.pty.create(PtySize(rows=27, cols=91), timeout=30)
    term = Terminal(h)
    try:
        m = term.mark()
        send(sbx, h.pid, 'stty size; echo "cols=$COLUMNS"\n')
        term.wait_since(m, r"27 91.*cols=91")
        sbx.pty.resize(h.pid, PtySize(rows=45, cols=123))
        m = term.mark()
        send(sbx, h.pid, 'stty size; echo "cols=$COLUMNS"\n')
        term.wait_since(m, r"45 123.*cols=123")
    finally:
        sbx.pty.kill(h.pid)


def test_stream_input(sbx):
    """The Python SDK's pty.stream_input(): StreamInput with `pty` data, chunks in order."""
    h = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    term = Terminal(h)
    try:
        sbx.pty.stream_input(h.pid, ["echo s-$((", b"5*5", "))\n"], timeout=10)
        term.wait_since(0, r"s-25")
    finally:
        sbx.pty.kill(h.pid)


def test_kill(sbx):
    h = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    term = Terminal(h)
    send(sbx, h.pid, "echo ready-$((1+1))\n")
    term.wait_since(0, r"ready-2")
    assert listed(sbx, h.pid) is not None
    assert sbx.pty.kill(h.pid) is True
    with pytest.raises(CommandExitException) as ei:
        term.end()
    assert (ei.value.exit_code, ei.value.error) == (-1, "signal: killed")
    assert listed(sbx, h.pid) is None
    assert sbx.pty.kill(h.pid) is False
    assert h.kill() is False


def test_exit_code_typed(sbx):
    h = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    term = Terminal(h)
    send(sbx, h.pid, "exit 3\n")
    with pytest.raises(CommandExitException) as ei:
        term.end()
    assert (ei.value.exit_code, ei.value.error) == (3, "exit status 3")


def test_connect(sbx):
    h = sbx.pty.create(PtySize(rows=24, cols=80), timeout=30)
    a = Terminal(h)
    try:
        m = a.mark()
        send(sbx, h.pid, 'X=$((6*7))\necho "x=$X"\n')
        a.wait_since(m, r"x=42")

        c = sbx.pty.connect(h.pid, timeout=30)
        assert c.pid == h.pid
        b = Terminal(c)
        m = a.mark()
        send(sbx, h.pid, 'echo "again-$((X+1))"\n')
        b.wait_since(0, r"again-43")
        a.wait_since(m, r"again-43")
        assert "x=42" not in b.text, "no replay of output from before the attach"

        send(sbx, h.pid, "exit 5\n")
        with pytest.raises(CommandExitException) as ei:
            b.end()
        assert ei.value.exit_code == 5
        with pytest.raises(CommandExitException):
            a.end()
    finally:
        sbx.pty.kill(h.pid)
    with pytest.raises(NotFoundException):
        sbx.pty.connect(UNKNOWN_PID)


def test_user_cwd_close_stdin_refused_ctrl_d(sbx):
    h = sbx.pty.create(PtySize(rows=24, cols=80), user="user", cwd="/tmp", timeout=30)
    term = Terminal(h)
    send(sbx, h.pid, 'echo "[$(whoami)|$HOME|$(pwd)]"\n')
    # ... and the next prompt: readline owns the terminal again, so Ctrl-D is read as EOF (sent
    # earlier, the canonical-mode EOF can be lost when readline switches the tty to raw mode).
    term.wait_since(0, r"\[user\|/home/user\|/tmp\].*\$ ")
    with pytest.raises(SandboxException, match="cannot close stdin for PTY process"):
        sbx.commands.close_stdin(h.pid)
    sbx.pty.send_stdin(h.pid, b"\x04")  # Ctrl-D on an empty line: bash -i exits 0
    assert term.end().exit_code == 0


def test_timeout(sbx):
    h = sbx.pty.create(PtySize(rows=24, cols=80), user="user", timeout=1)
    term = Terminal(h)
    t0 = time.monotonic()
    with pytest.raises(TimeoutException):
        term.end()
    assert time.monotonic() - t0 < 30  # vs never (a shell waits for input)
    deadline = time.monotonic() + 15
    while listed(sbx, h.pid) is not None:
        assert time.monotonic() < deadline, "the PTY did not leave the list"
        time.sleep(0.05)


def test_async_pty_create_input_resize_connect_kill(debug_envd):
    async def main():
        sbx = await AsyncSandbox.create()
        text = {"a": "", "b": ""}
        changed = asyncio.Event()

        def feeder(key):
            def on_data(d: bytes) -> None:
                text[key] += d.decode("utf-8", "replace")
                changed.set()

            return on_data

        async def wait_text(key, pattern, since=0):
            async def loop():
                while not re.search(pattern, text[key][since:], re.S):
                    changed.clear()
                    await changed.wait()

            try:
                await asyncio.wait_for(loop(), 10)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {pattern!r} in terminal {key}; got {text[key][since:]!r}") from None

        h = await sbx.pty.create(PtySize(rows=24, cols=80), on_data=feeder("a"), timeout=30)
        try:
            await sbx.pty.send_stdin(h.pid, b"echo hi-$((40+2)); stty size\n")
            await wait_text("a", r"hi-42.*24 80")
            await sbx.pty.resize(h.pid, PtySize(rows=33, cols=101))
            m = len(text["a"])
            await sbx.pty.send_stdin(h.pid, b"stty size\n")
            await wait_text("a", r"33 101", m)

            c = await sbx.pty.connect(h.pid, on_data=feeder("b"), timeout=30)
            assert c.pid == h.pid
            await sbx.pty.send_stdin(h.pid, b"echo via-$((2*21))\n")
            await wait_text("b", r"via-42")
            assert "hi-42" not in text["b"]

            assert await sbx.pty.kill(h.pid) is True
            for handle in (h, c):
                with pytest.raises(CommandExitException) as ei:
                    await handle.wait()
                assert (ei.value.exit_code, ei.value.error) == (-1, "signal: killed")
            assert await sbx.pty.kill(h.pid) is False
        finally:
            await sbx.pty.kill(h.pid)

    asyncio.run(asyncio.wait_for(main(), 60))
