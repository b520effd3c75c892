"""The official e2b Python SDK's `sandbox.files.watch_dir` against our envd: the sync client's
polling watcher (CreateWatcher / GetWatcherEvents / RemoveWatcher) and the async client's
WatchDir stream, in debug mode (E2B_DEBUG=true, http://localhost:49983). The module holds
/tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983). Contract §5.7, §5.8; issue 9 (Tests)."""

import asyncio
import os
import shutil
import tempfile
import time

import pytest
from e2b import AsyncSandbox, FilesystemEventType, NotFoundException, SandboxException


def fresh_dir() -> str:
    return tempfile.mkdtemp(prefix="envd-sdk-pywatch-")


def poll_until(handle, pred, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(handle.get_new_events())
        if pred(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out; events so far: {got}")


def test_polling_watcher_events_in_order(sbx):
    d = fresh_dir()
    try:
        h = sbx.files.watch_dir(d)
        with open(os.path.join(d, "a.txt"), "w") as f:
            f.write("x")
        os.chmod(os.path.join(d, "a.txt"), 0o600)
        os.rename(os.path.join(d, "a.txt"), os.path.join(d, "b.txt"))
        os.unlink(os.path.join(d, "b.txt"))
        got = poll_until(h, lambda evs: any(e.type == FilesystemEventType.REMOVE for e in evs))
        assert [(e.type, e.name) for e in got] == [
            (FilesystemEventType.CREATE, "a.txt"),
            (FilesystemEventType.WRITE, "a.txt"),
            (FilesystemEventType.CHMOD, "a.txt"),
            (FilesystemEventType.RENAME, "a.txt"),
            (FilesystemEventType.CREATE, "b.txt"),
            (FilesystemEventType.REMOVE, "b.txt"),
        ]
        assert h.get_new_events() == []  # drained
        h.stop()
        with pytest.raises(SandboxException):
            h.get_new_events()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_polling_watcher_recursive_mkdir_p_and_include_entry(sbx):
    d = fresh_dir()
    try:
        flat = sbx.files.watch_dir(d)
        deep = sbx.files.watch_dir(d, recursive=True, include_entry=True)
        os.makedirs(os.path.join(d, "a", "b", "c"))
        with open(os.path.join(d, "a", "b", "c", "f"), "w"):
            pass
        got = poll_until(deep, lambda evs: any(e.name == "a/b/c/f" for e in evs))
        creates = sorted(e.name for e in got if e.type == FilesystemEventType.CREATE)
        assert creates == ["a", "a/b", "a/b/c", "a/b/c/f"]
        f = next(e for e in got if e.name == "a/b/c/f")
        assert f.entry is not None and f.entry.name == "f"
        flat_events = flat.get_new_events()
        assert [(e.type, e.name) for e in flat_events] == [(FilesystemEventType.CREATE, "a")]
        flat.stop()
        deep.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_polling_watcher_missing_dir(sbx):
    with pytest.raises(NotFoundException):
        sbx.files.watch_dir("/tmp/envd-sdk-pywatch-missing")


def test_async_watch_dir_stream_on_event_and_on_exit(debug_envd):
    async def run():
        d = fresh_dir()
        try:
            sandbox = await AsyncSandbox.create()
            events = []
            exits = []
            h = await sandbox.files.watch_dir(d, events.append, recursive=True, on_exit=exits.append)
            os.makedirs(os.path.join(d, "x", "y"))
            with open(os.path.join(d, "x", "y", "z"), "w"):
                pass
            deadline = time.monotonic() + 10
            while not any(e.name == "x/y/z" for e in events):
                assert time.monotonic() < deadline, f"events: {events}"
                await asyncio.sleep(0.05)
            assert sorted(e.name for e in events if e.type == FilesystemEventType.CREATE) == ["x", "x/y", "x/y/z"]
            await h.stop()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    asyncio.run(run())
