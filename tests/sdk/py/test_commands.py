"""The official e2b Python SDK's `sandbox.commands` (sync `Sandbox`, and `AsyncSandbox`) against
our envd's process.Process, in debug mode (E2B_DEBUG=true, http://localhost:49983, envd assumed
99.99.99). The module holds /tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983).
Contract §3, §4; issue 4 (Tests).

Each long-running command carries a distinct number (`sleep 40.1`, ...) so that leftovers are
found with `pgrep -f '^slee[p] 40.1'` (anchored: the sleep itself, not the shell that started it;
the bracket keeps pgrep's own shell from matching).

Killing a login shell: the SDK runs every command as `bash -l -c`, and a root login shell on a
developer machine may run profile code that takes a lock file (pyenv's `rehash` in ~/.bashrc).
SIGKILLing the group while the profile runs leaves that lock behind, and every later root login
shell waits 60 s for it. So a command is killed only once it printed `ready` (its profile is
done), and commands whose kill is timed by envd (timeouts) run as `user`."""

import asyncio
import subprocess
import time

import pytest
from e2b import (
    AsyncSandbox,
    CommandExitException,
    InvalidArgumentException,
    NotFoundException,
    Sandbox,
    SandboxException,
    TimeoutException,
)

from envd_harness import start_raw, wait_for

UNKNOWN_PID = 99_999_999


def user_uid() -> str:
    return subprocess.run(["id", "-u", "user"], check=True, capture_output=True, text=True).stdout.strip()


def pgrep(sbx, pattern: str) -> list[int]:
    out = sbx.commands.run(f"pgrep -f '^{pattern}' || true", timeout=10).stdout
    return [int(x) for x in out.split()]


def listed(sbx, pid: int):
    return next((p for p in sbx.commands.list() if p.pid == pid), None)


def read_until(handle, text: str) -> str:
    """Iterates a sync handle's stdout until it has produced exactly `text` (wait() continues)."""
    got = ""
    for out, _, _ in handle:
        if out is not None:
            got += out
            if len(got) >= len(text):
                break
    assert got == text
    return got


# ---------------------------------------------------------------------------------------------
# foreground


def test_run_stdout_stderr_callbacks_exit_0(sbx):
    out: list[str] = []
    err: list[str] = []
    r = sbx.commands.run(
        'echo out-1; echo err-1 >&2; printf "out-%s\\n" 2', on_stdout=out.append, on_stderr=err.append
    )
    assert r.exit_code == 0
    assert r.error is None
    assert r.stdout == "out-1\nout-2\n"
    assert r.stderr == "err-1\n"
    assert "".join(out) == "out-1\nout-2\n"
    assert "".join(err) == "err-1\n"


def test_run_one_mib_whole(sbx):
    n = 0

    def count(d: str) -> None:
        nonlocal n
        n += len(d)

    r = sbx.commands.run("head -c 1048576 /dev/zero | tr '\\0' a", on_stdout=count)
    assert n == 1 << 20
    assert r.stdout == "a" * (1 << 20)


def test_run_nonzero_exit_raises(sbx):
    with pytest.raises(CommandExitException) as ei:
        sbx.commands.run("echo partial; echo oops >&2; exit 3")
    e = ei.value
    assert e.exit_code == 3
    assert e.stdout == "partial\n"
    assert e.stderr == "oops\n"
    assert e.error == "exit status 3"


def test_run_command_not_found_is_127(sbx):
    with pytest.raises(CommandExitException) as ei:
        sbx.commands.run("no-such-command-e2b --flag")
    assert ei.value.exit_code == 127
    assert "no-such-command-e2b: command not found" in ei.value.stderr
    assert ei.value.error == "exit status 127"


def test_run_stdin_defaults_to_dev_null(sbx):
    t0 = time.monotonic()
    # A cat reading anything else would wait for the 60 s timeout (TimeoutException).
    assert sbx.commands.run('cat; echo "cat=$?"', timeout=60).stdout == "cat=0\n"
    assert time.monotonic() - t0 < 30


def test_run_envs_per_command(sbx):
    r = sbx.commands.run('echo "$FOO|$BAR|$E2B_SANDBOX|$HOME"', envs={"FOO": "foo", "BAR": "b a r=1"})
    assert r.stdout == "foo|b a r=1|false|/root\n"
    assert sbx.commands.run('echo "${FOO-unset}|${BAR-unset}"').stdout == "unset|unset\n"
    assert sbx.commands.run('echo "$HOME"', envs={"HOME": "/tmp"}).stdout == "/tmp\n"


def test_run_cwd(sbx):
    assert sbx.commands.run("pwd", cwd="/tmp").stdout == "/tmp\n"
    assert sbx.commands.run("pwd").stdout == "/root\n"
    assert sbx.commands.run("pwd", user="user").stdout == "/home/user\n"
    sbx.commands.run("mkdir -p e2b-rel-cwd", user="user")
    assert sbx.commands.run("pwd", user="user", cwd="e2b-rel-cwd").stdout == "/home/user/e2b-rel-cwd\n"
    assert sbx.commands.run("pwd", user="user", cwd="~/e2b-rel-cwd").stdout == "/home/user/e2b-rel-cwd\n"
    with pytest.raises(InvalidArgumentException, match="cwd '/nonexistent-e2b-cwd' does not exist"):
        sbx.commands.run("echo never", cwd="/nonexistent-e2b-cwd")
    assert not [p for p in sbx.commands.list() if "echo never" in p.args]


def test_run_user_root_vs_user(sbx):
    script = 'whoami; id -u; echo "$HOME|$USER|$LOGNAME"; f=/tmp/e2b-owner-$(id -u); rm -f $f; touch $f; stat -c %U $f'
    assert sbx.commands.run(script, user="root").stdout == "root\n0\n/root|root|root\nroot\n"
    assert sbx.commands.run(script, user="user").stdout == f"user\n{user_uid()}\n/home/user|user|user\nuser\n"
    assert sbx.commands.run("whoami").stdout == "root\n"  # envd's default user


# ---------------------------------------------------------------------------------------------
# background


def test_background_handle_and_wait(sbx):
    t0 = time.monotonic()
    h = sbx.commands.run('read x; echo "got $x"', background=True, stdin=True)
    assert time.monotonic() - t0 < 30  # vs never (the command waits for its stdin)
    assert isinstance(h.pid, int) and h.pid > 1
    h.send_stdin("go\n")
    out: list[str] = []
    r = h.wait(on_stdout=out.append)
    assert r.exit_code == 0
    assert r.stdout == "got go\n"
    assert "".join(out) == "got go\n"


def test_background_failure_raises_on_wait(sbx):
    h = sbx.commands.run("echo bad >&2; exit 7", background=True)
    with pytest.raises(CommandExitException) as ei:
        h.wait()
    assert ei.value.exit_code == 7
    assert ei.value.stderr == "bad\n"


def test_list_pid_cmd_args_envs_cwd_tag(sbx, debug_envd):
    h = sbx.commands.run("echo ready; sleep 40.1", background=True, envs={"LISTED": "yes"}, cwd="/tmp", timeout=30)
    tagged = start_raw(debug_envd.url, "/bin/sleep", ["40.2"], tag="e2b-sdk-tag")
    try:
        procs = {p.pid: p for p in sbx.commands.list()}
        mine = procs[h.pid]
        assert (mine.tag, mine.cmd, mine.args, mine.envs, mine.cwd) == (
            None,
            "/bin/bash",
            ["-l", "-c", "echo ready; sleep 40.1"],
            {"LISTED": "yes"},
            "/tmp",
        )
        t = procs[tagged]
        assert (t.tag, t.cmd, t.args, t.envs, t.cwd) == ("e2b-sdk-tag", "/bin/sleep", ["40.2"], {}, None)
    finally:
        read_until(h, "ready\n")
        assert h.kill() is True
        assert sbx.commands.kill(tagged) is True
    wait_for(lambda: listed(sbx, h.pid) is None and listed(sbx, tagged) is None, 15, what="killed processes to leave the list")


def test_connect_attach_later_output_and_retained_end(sbx):
    h = sbx.commands.run("while read l; do echo \"got $l\"; done; exit 4", background=True, stdin=True)
    h.send_stdin("one\n")
    read_until(h, "got one\n")
    h.disconnect()

    c = sbx.commands.connect(h.pid)
    assert c.pid == h.pid
    sbx.commands.send_stdin(h.pid, b"two\n")
    c.close_stdin()
    with pytest.raises(CommandExitException) as ei:
        c.wait()
    assert ei.value.exit_code == 4
    assert ei.value.stdout == "got two\n", "no replay of output from before the attach"

    # Ended moments ago: envd still serves start + the retained end (30 s).
    with pytest.raises(CommandExitException) as ei:
        sbx.commands.connect(h.pid).wait()
    assert ei.value.exit_code == 4
    assert ei.value.stdout == ""

    with pytest.raises(NotFoundException, match=f"process with pid {UNKNOWN_PID} not found"):
        sbx.commands.connect(UNKNOWN_PID)


def test_kill_whole_group_then_false(sbx):
    h = sbx.commands.run("sleep 40.3 & sleep 40.4", background=True)
    wait_for(lambda: len(pgrep(sbx, "slee[p] 40.3")) == 1, what="the background child")
    assert listed(sbx, h.pid) is not None
    assert h.kill() is True
    with pytest.raises(CommandExitException) as ei:
        h.wait()
    assert ei.value.exit_code == -1
    assert ei.value.error == "signal: killed"
    assert listed(sbx, h.pid) is None
    wait_for(lambda: pgrep(sbx, "slee[p] 40.[34]") == [], 15, what="the group to be gone")
    assert sbx.commands.kill(h.pid) is False
    assert sbx.commands.kill(UNKNOWN_PID) is False


def test_send_stdin_close_stdin(sbx):
    h = sbx.commands.run('cat; echo "eof after cat"', background=True, stdin=True)
    h.send_stdin("hello\n")
    read_until(h, "hello\n")
    sbx.commands.send_stdin(h.pid, "wörld\n".encode())
    h.send_stdin("no newline")
    h.close_stdin()
    r = h.wait()
    # wait() continues the same stream: the result holds everything since start.
    assert r.stdout == "hello\nwörld\nno newlineeof after cat\n"
    with pytest.raises(NotFoundException):
        sbx.commands.send_stdin(h.pid, "late\n")


def test_stream_input_sync(sbx):
    """The Python SDK (unlike JS) has stream_input(): process.Process/StreamInput, a client stream."""
    h = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.stream_input(h.pid, ["one\n", b"two\n", "thr", "ee\n"], timeout=10)
    sbx.commands.stream_input(h.pid, iter(["four\n"]), timeout=10)
    h.close_stdin()
    assert h.wait().stdout == "one\ntwo\nthree\nfour\n"
    with pytest.raises(NotFoundException, match=f"process with pid {UNKNOWN_PID} not found"):
        sbx.commands.stream_input(UNKNOWN_PID, ["x"], timeout=10)


def test_send_stdin_without_stdin_refused(sbx):
    h = sbx.commands.run("echo ready; sleep 40.5", background=True)
    try:
        with pytest.raises(SandboxException, match="stdin not enabled or closed"):
            h.send_stdin("x\n")
        h.close_stdin()  # no-op
        assert listed(sbx, h.pid) is not None
    finally:
        read_until(h, "ready\n")
        assert h.kill() is True


# ---------------------------------------------------------------------------------------------
# timeouts and background children


def test_timeout_kills_the_command(sbx):
    t0 = time.monotonic()
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 40.6 & sleep 40.7", user="user", timeout=1)
    took = time.monotonic() - t0
    assert 0.9 <= took < 30, took  # vs the 40 s sleeps
    wait_for(
        lambda: not [p for p in sbx.commands.list() if "sleep 40.6 & sleep 40.7" in p.args],
        15,
        what="the timed-out command to leave the list",
    )
    wait_for(lambda: pgrep(sbx, "slee[p] 40.[67]") == [], 15, what="its group to be gone")


def test_timeout_background_wait_raises(sbx):
    h = sbx.commands.run("sleep 40.8", user="user", background=True, timeout=1)
    with pytest.raises(TimeoutException):
        h.wait()
    wait_for(lambda: listed(sbx, h.pid) is None, 15, what="the pid to leave the list")
    assert sbx.commands.kill(h.pid) is False


def test_connect_timeout_bounds_only_the_attach(sbx):
    h = sbx.commands.run("echo ready; sleep 41.3", background=True, timeout=30)
    try:
        read_until(h, "ready\n")
        c = sbx.commands.connect(h.pid, timeout=1)
        with pytest.raises(TimeoutException):
            c.wait()
        assert listed(sbx, h.pid) is not None, "the command outlives the attach timeout"
    finally:
        assert h.kill() is True
    with pytest.raises(CommandExitException) as ei:
        h.wait()
    assert ei.value.exit_code == -1


def test_background_child_does_not_hold_the_end(sbx):
    t0 = time.monotonic()
    r = sbx.commands.run("sleep 40.9 & echo started", timeout=60)
    took = time.monotonic() - t0
    assert r.stdout == "started\n"
    assert took < 20, f"end waited for the background child: {took:.1f}s"  # vs its 40.9 s
    assert len(pgrep(sbx, "slee[p] 40.9")) == 1, "the background child still runs"
    sbx.commands.run('pkill -f "slee[p] 40.9" || true')


# ---------------------------------------------------------------------------------------------
# AsyncSandbox


def test_async_run_callbacks_exit_envs_user(debug_envd):
    async def main():
        sbx = await AsyncSandbox.create()
        out: list[str] = []
        err: list[str] = []

        async def on_err(d: str) -> None:  # callbacks may be coroutines
            err.append(d)

        r = await sbx.commands.run(
            'echo "o-$A"; echo e-1 >&2', envs={"A": "x"}, on_stdout=out.append, on_stderr=on_err
        )
        assert (r.exit_code, r.stdout, r.stderr) == (0, "o-x\n", "e-1\n")
        assert ("".join(out), "".join(err)) == ("o-x\n", "e-1\n")

        with pytest.raises(CommandExitException) as ei:
            await sbx.commands.run("echo nope >&2; exit 9")
        assert (ei.value.exit_code, ei.value.stderr, ei.value.error) == (9, "nope\n", "exit status 9")

        u = await sbx.commands.run('echo "$(whoami)|$HOME|$(pwd)"', user="user")
        assert u.stdout == "user|/home/user|/home/user\n"
        with pytest.raises(InvalidArgumentException, match="does not exist"):
            await sbx.commands.run("true", cwd="/nonexistent-e2b-cwd")
        with pytest.raises(TimeoutException):
            await sbx.commands.run("sleep 41.1", user="user", timeout=1)
        # The client's own timeout may fire just before envd's Start deadline kills the process.
        for _ in range(100):
            if not [p for p in await sbx.commands.list() if "sleep 41.1" in p.args]:
                break
            await asyncio.sleep(0.05)
        assert not [p for p in await sbx.commands.list() if "sleep 41.1" in p.args]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_async_background_stdin_connect_list_kill(debug_envd):
    async def main():
        sbx = await AsyncSandbox.create()
        first: list[str] = []
        h = await sbx.commands.run(
            'while read l; do echo "got $l"; done; exit 4', background=True, stdin=True, on_stdout=first.append
        )
        procs = {p.pid: p for p in await sbx.commands.list()}
        assert procs[h.pid].args == ["-l", "-c", 'while read l; do echo "got $l"; done; exit 4']

        await h.send_stdin("one\n")
        for _ in range(500):
            if "".join(first) == "got one\n":
                break
            await asyncio.sleep(0.02)
        assert "".join(first) == "got one\n"
        await h.disconnect()

        second: list[str] = []
        c = await sbx.commands.connect(h.pid, on_stdout=second.append)
        await sbx.commands.send_stdin(h.pid, "two\n")
        await c.close_stdin()
        with pytest.raises(CommandExitException) as ei:
            await c.wait()
        assert ei.value.exit_code == 4
        assert ("".join(second), ei.value.stdout, "".join(first)) == ("got two\n", "got two\n", "got one\n")

        ready = asyncio.Event()
        k = await sbx.commands.run("echo ready; sleep 41.2", background=True, on_stdout=lambda d: ready.set())
        await asyncio.wait_for(ready.wait(), 10)
        assert await k.kill() is True
        with pytest.raises(CommandExitException) as ei:
            await k.wait()
        assert (ei.value.exit_code, ei.value.error) == (-1, "signal: killed")
        assert await sbx.commands.kill(k.pid) is False
        assert not [p for p in await sbx.commands.list() if p.pid == k.pid]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_async_stream_input_handle_is_incremental(debug_envd):
    """AsyncSandbox.commands.stream_input(pid) keeps one StreamInput open: what is sent reaches
    the process before the stream is closed."""

    async def main():
        sbx = await AsyncSandbox.create()
        out: list[str] = []
        h = await sbx.commands.run("cat", background=True, stdin=True, on_stdout=out.append)
        inp = sbx.commands.stream_input(h.pid, timeout=20)
        await inp.send("a\n")
        for _ in range(500):
            if "".join(out) == "a\n":
                break
            await asyncio.sleep(0.02)
        assert "".join(out) == "a\n", "input is delivered while the stream is still open"
        await inp.send(b"b\n")
        await inp.close()
        await sbx.commands.close_stdin(h.pid)
        r = await h.wait()
        assert r.stdout == "a\nb\n"

        bad = sbx.commands.stream_input(UNKNOWN_PID, timeout=10)
        await bad.send("x")
        with pytest.raises(NotFoundException):
            await bad.close()

    asyncio.run(asyncio.wait_for(main(), 60))
