"""The official e2b Python SDK's `sandbox.files` (sync `Sandbox`, and `AsyncSandbox` for a subset)
against envd's filesystem half (Filesystem RPCs and /files), in debug mode (E2B_DEBUG=true,
http://localhost:49983, envd assumed 99.99.99, no token). The module holds
/tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983). Issue 8 (Tests); contract §3.2, §3.3, §5,
§6.5, §6.6.

Every case runs as `root` and as `user`: envd runs as root, creates files for the requesting user
and chowns them, so ownership is checked with os.stat on this machine (the test and envd share
it). envd does not enforce the user's permissions (nor does E2B's): there are no "permission
denied" cases. Each user works in its own directory, removed at the end."""

import asyncio
import hashlib
import io
import os
import pwd
import secrets
import shutil
import stat
from datetime import datetime

import pytest
from e2b import (
    AsyncSandbox,
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    SandboxException,
)
from e2b.sandbox.filesystem.filesystem import WriteEntry

TAG = secrets.token_hex(4)
HOME = {"root": "/root", "user": "/home/user"}
REL = f"sdk-py-files-rel-{TAG}"
WHO = ["root", "user"]


def base(who: str) -> str:
    return f"/tmp/sdk-py-files-{TAG}" if who == "root" else f"/home/user/sdk-py-files-{TAG}"


@pytest.fixture(scope="module", autouse=True)
def cleanup():
    yield
    for who in WHO:
        shutil.rmtree(base(who), ignore_errors=True)
        shutil.rmtree(f"{HOME[who]}/{REL}", ignore_errors=True)
        shutil.rmtree(f"{base(who)}-async", ignore_errors=True)


def assert_owned(path: str, who: str) -> None:
    st = os.stat(path)
    pw = pwd.getpwnam(who)
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), f"{path} owned by {st.st_uid}:{st.st_gid}, not {who}"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("who", WHO)
def test_write_and_read_formats(sbx, who):
    d = f"{base(who)}/rw/new/deeper"
    p = f"{d}/a.txt"
    text = "héllo, wörld ✓\nsecond line\n"
    info = sbx.files.write(p, text, user=who)
    assert (info.name, info.path, info.type, info.metadata) == ("a.txt", p, FileType.FILE, None)
    assert read_file(p) == text.encode()
    for q in (p, d, f"{base(who)}/rw/new"):
        assert_owned(q, who)
    assert sbx.files.read(p, user=who) == text
    assert sbx.files.read(p, format="text", user=who) == text
    b = sbx.files.read(p, format="bytes", user=who)
    assert isinstance(b, bytearray) and bytes(b) == text.encode()
    with sbx.files.read(p, format="stream", user=who) as reader:
        assert b"".join(reader) == text.encode()
    # bytes and a binary file object; an empty file
    blob = secrets.token_bytes(50_000)
    sbx.files.write(f"{d}/b.bin", blob, user=who)
    assert read_file(f"{d}/b.bin") == blob
    sbx.files.write(f"{d}/io.bin", io.BytesIO(blob), user=who)
    assert read_file(f"{d}/io.bin") == blob
    assert_owned(f"{d}/io.bin", who)
    sbx.files.write(f"{d}/empty", "", user=who)
    assert os.path.getsize(f"{d}/empty") == 0
    assert sbx.files.read(f"{d}/empty", user=who) == ""
    assert sbx.files.read(f"{d}/empty", format="bytes", user=who) == bytearray()


@pytest.mark.parametrize("who", WHO)
def test_relative_and_tilde_paths(sbx, who):
    info = sbx.files.write(f"{REL}/r.txt", "relative", user=who)
    abs_ = f"{HOME[who]}/{REL}/r.txt"
    assert info.path == abs_
    assert read_file(abs_) == b"relative"
    assert_owned(abs_, who)
    assert sbx.files.read(f"~/{REL}/r.txt", user=who) == "relative"
    assert sbx.files.get_info(f"{REL}/r.txt", user=who).path == abs_
    assert [e.path for e in sbx.files.list(REL, user=who)] == [abs_]


@pytest.mark.parametrize("who", WHO)
def test_write_files_and_streams(sbx, who):
    d = f"{base(who)}/multi/x"
    blob = secrets.token_bytes(70_000)
    infos = sbx.files.write_files(
        [
            WriteEntry(path=f"{d}/s.txt", data="string entry"),
            WriteEntry(path=f"{d}/b.bin", data=blob),
            WriteEntry(path=f"{d}/sub/dir/deep.txt", data="deep"),
        ],
        user=who,
    )
    assert [(i.name, i.path, i.type) for i in infos] == [
        ("s.txt", f"{d}/s.txt", FileType.FILE),
        ("b.bin", f"{d}/b.bin", FileType.FILE),
        ("deep.txt", f"{d}/sub/dir/deep.txt", FileType.FILE),
    ]
    assert read_file(f"{d}/s.txt") == b"string entry"
    assert read_file(f"{d}/b.bin") == blob
    assert read_file(f"{d}/sub/dir/deep.txt") == b"deep"
    for q in (f"{d}/s.txt", f"{d}/sub/dir", f"{d}/sub/dir/deep.txt"):
        assert_owned(q, who)
    # An iterable of chunks is streamed (octet-stream, no length known); an overwrite truncates.
    chunks = [secrets.token_bytes(64 * 1024) for _ in range(48)]
    whole = b"".join(chunks)
    info = sbx.files.write(f"{d}/big.bin", iter(chunks), user=who)
    assert info.path == f"{d}/big.bin"
    assert sha(read_file(f"{d}/big.bin")) == sha(whole)
    assert_owned(f"{d}/big.bin", who)
    with sbx.files.read(f"{d}/big.bin", format="stream", user=who) as reader:
        assert sha(b"".join(reader)) == sha(whole)
    sbx.files.write(f"{d}/big.bin", "short", user=who, use_octet_stream=True)
    assert read_file(f"{d}/big.bin") == b"short"
    sbx.files.write(f"{d}/big.bin", "multipart", user=who, use_octet_stream=False)
    assert read_file(f"{d}/big.bin") == b"multipart"


@pytest.mark.parametrize("who", WHO)
def test_gzip_round_trip(sbx, who):
    p = f"{base(who)}/gz/data.bin"
    data = secrets.token_bytes(100_000) + b"z" * 200_000
    sbx.files.write(p, data, user=who, gzip=True)
    assert sha(read_file(p)) == sha(data), "stored decompressed"
    assert_owned(p, who)
    assert sha(bytes(sbx.files.read(p, format="bytes", user=who, gzip=True))) == sha(data)
    with sbx.files.read(p, format="stream", user=who, gzip=True) as reader:
        assert sha(b"".join(reader)) == sha(data)
    sbx.files.write(p, iter([b"gzip ", b"stream"]), user=who, gzip=True)
    assert sbx.files.read(p, user=who, gzip=True) == "gzip stream"


@pytest.mark.parametrize("who", WHO)
def test_metadata(sbx, who):
    d = f"{base(who)}/meta"
    want = {"owner": "Team-A", "k2": "v 2 = ok"}
    info = sbx.files.write(f"{d}/m.txt", "m", user=who, metadata={"Owner": "Team-A", "k2": "v 2 = ok"})
    assert info.metadata == want, "keys lowercased, values kept"
    assert sbx.files.get_info(f"{d}/m.txt", user=who).metadata == want
    assert next(e for e in sbx.files.list(d, user=who) if e.name == "m.txt").metadata == want
    assert_owned(f"{d}/m.txt", who)
    moved = sbx.files.rename(f"{d}/m.txt", f"{d}/n.txt", user=who)
    assert moved.metadata == want, "rename keeps metadata"
    assert sbx.files.write(f"{d}/n.txt", "n", user=who, metadata={"other": "x"}).metadata == {"other": "x"}
    assert sbx.files.get_info(f"{d}/n.txt", user=who).metadata == {"other": "x"}, "an overwrite replaces the set"
    assert sbx.files.write(f"{d}/n.txt", "plain", user=who).metadata is None
    assert sbx.files.get_info(f"{d}/n.txt", user=who).metadata is None, "an overwrite without metadata clears it"
    many = sbx.files.write_files(
        [WriteEntry(path=f"{d}/p1", data="1"), WriteEntry(path=f"{d}/p2", data="2")], user=who, metadata={"batch": "b1"}
    )
    assert [i.metadata for i in many] == [{"batch": "b1"}, {"batch": "b1"}]
    with pytest.raises(InvalidArgumentException):
        sbx.files.write(f"{d}/bad", "x", user=who, metadata={"bad key": "v"})


@pytest.mark.parametrize("who", WHO)
def test_list_depth(sbx, who):
    d = f"{base(who)}/tree"
    sbx.files.write_files(
        [
            WriteEntry(path=f"{d}/b.txt", data="bb"),
            WriteEntry(path=f"{d}/a/one.txt", data="1"),
            WriteEntry(path=f"{d}/a/deep/two.txt", data="22"),
            WriteEntry(path=f"{d}/c/three.txt", data="333"),
        ],
        user=who,
    )

    def rel(entries):
        return [e.path[len(d) + 1 :] for e in entries]

    assert rel(sbx.files.list(d, user=who)) == ["a", "b.txt", "c"]
    assert rel(sbx.files.list(d, depth=2, user=who)) == ["a", "a/deep", "a/one.txt", "b.txt", "c", "c/three.txt"]
    entries = sbx.files.list(d, depth=3, user=who)
    assert rel(entries) == ["a", "a/deep", "a/deep/two.txt", "a/one.txt", "b.txt", "c", "c/three.txt"]
    for e in entries:
        st = os.stat(e.path)
        is_dir = stat.S_ISDIR(st.st_mode)
        assert e.name == os.path.basename(e.path)
        assert e.type == (FileType.DIR if is_dir else FileType.FILE), e.path
        assert (e.owner, e.group) == (who, who), e.path
        assert e.mode == st.st_mode & 0o777, e.path
        assert e.permissions == stat.filemode(st.st_mode), e.path
        if not is_dir:
            assert e.size == st.st_size
    with pytest.raises(InvalidArgumentException):
        sbx.files.list(d, depth=0, user=who)


@pytest.mark.parametrize("who", WHO)
def test_exists_and_get_info(sbx, who):
    d = f"{base(who)}/info"
    p = f"{d}/f.txt"
    sbx.files.write(p, "12345", user=who)
    assert sbx.files.exists(p, user=who) is True
    assert sbx.files.exists(d, user=who) is True
    assert sbx.files.exists(f"{d}/missing", user=who) is False
    st = os.stat(p)
    fi = sbx.files.get_info(p, user=who)
    assert (fi.name, fi.path, fi.type, fi.size) == ("f.txt", p, FileType.FILE, 5)
    assert fi.mode == st.st_mode & 0o777
    assert fi.permissions == stat.filemode(st.st_mode)
    assert (fi.owner, fi.group) == (who, who)
    assert isinstance(fi.modified_time, datetime)
    # Microseconds (datetime), rounded by the SDK's float conversion.
    assert abs(round(fi.modified_time.timestamp() * 1_000_000) - st.st_mtime_ns / 1000) <= 1
    assert fi.symlink_target is None
    di = sbx.files.get_info(d, user=who)
    assert (di.type, di.name, di.permissions[0], di.owner) == (FileType.DIR, "info", "d", who)
    os.symlink(p, f"{d}/link")
    li = sbx.files.get_info(f"{d}/link", user=who)
    assert li.type == FileType.FILE, "a symlink reports its target's type (envd 0.6.13 sends no is_symlink)"
    assert li.path == f"{d}/link"
    assert li.symlink_target == p
    assert li.permissions[0] == "L"
    assert sbx.files.read(f"{d}/link", user=who) == "12345"


@pytest.mark.parametrize("who", WHO)
def test_make_dir(sbx, who):
    d = f"{base(who)}/mk/a/b/c"
    assert sbx.files.make_dir(d, user=who) is True
    assert os.path.isdir(d)
    for q in (d, f"{base(who)}/mk/a/b", f"{base(who)}/mk/a", f"{base(who)}/mk"):
        assert_owned(q, who)
    assert sbx.files.make_dir(d, user=who) is False
    sbx.files.write(f"{base(who)}/mk/file", "x", user=who)
    with pytest.raises(InvalidArgumentException):
        sbx.files.make_dir(f"{base(who)}/mk/file", user=who)


@pytest.mark.parametrize("who", WHO)
def test_rename_and_remove(sbx, who):
    d = f"{base(who)}/mv"
    sbx.files.write(f"{d}/src.txt", "moving", user=who)
    info = sbx.files.rename(f"{d}/src.txt", f"{d}/dst.txt", user=who)
    assert (info.name, info.path, info.type, info.size) == ("dst.txt", f"{d}/dst.txt", FileType.FILE, 6)
    assert sbx.files.exists(f"{d}/src.txt", user=who) is False
    assert sbx.files.read(f"{d}/dst.txt", user=who) == "moving"
    assert_owned(f"{d}/dst.txt", who)
    moved = sbx.files.rename(f"{d}/dst.txt", f"{d}/new/parent/dst.txt", user=who)
    assert moved.path == f"{d}/new/parent/dst.txt"
    sbx.files.write(f"{d}/tree/x/y.txt", "y", user=who)
    assert sbx.files.rename(f"{d}/tree", f"{d}/tree2", user=who).type == FileType.DIR
    assert read_file(f"{d}/tree2/x/y.txt") == b"y"
    sbx.files.remove(f"{d}/new/parent/dst.txt", user=who)
    assert not os.path.exists(f"{d}/new/parent/dst.txt")
    sbx.files.remove(f"{d}/tree2", user=who)
    assert not os.path.exists(f"{d}/tree2")
    sbx.files.remove(f"{d}/never-existed", user=who)
    assert sbx.files.exists(f"{d}/tree2", user=who) is False


@pytest.mark.parametrize("who", WHO)
def test_error_types(sbx, who):
    d = f"{base(who)}/err"
    sbx.files.write(f"{d}/file.txt", "keep", user=who)
    sbx.files.make_dir(f"{d}/dir", user=who)
    missing = f"{d}/missing.txt"
    for what, fn in [
        ("read", lambda: sbx.files.read(missing, user=who)),
        ("read bytes", lambda: sbx.files.read(missing, format="bytes", user=who)),
        ("read stream", lambda: sbx.files.read(missing, format="stream", user=who)),
        ("get_info", lambda: sbx.files.get_info(missing, user=who)),
        ("list", lambda: sbx.files.list(missing, user=who)),
        ("rename", lambda: sbx.files.rename(missing, f"{d}/other", user=who)),
    ]:
        with pytest.raises(FileNotFoundException) as ei:
            fn()
        assert missing in str(ei.value), f"{what}: {ei.value}"
    for what, fn in [
        ("read a directory", lambda: sbx.files.read(f"{d}/dir", user=who)),
        ("write onto a directory", lambda: sbx.files.write(f"{d}/dir", "x", user=who)),
        ("list a file", lambda: sbx.files.list(f"{d}/file.txt", user=who)),
        ("make_dir over a file", lambda: sbx.files.make_dir(f"{d}/file.txt", user=who)),
    ]:
        with pytest.raises(InvalidArgumentException):
            fn()
    with pytest.raises(SandboxException):
        sbx.files.write(f"{d}/file.txt/below", "x", user=who)
    assert read_file(f"{d}/file.txt") == b"keep"


@pytest.mark.parametrize("who", WHO)
def test_odd_names(sbx, who):
    d = f"{base(who)}/names"
    names = ["a b.txt", 'q"uote.txt', "plus+sign", "100%", "x&y=z", "ünï cødé ✓.txt", "it's"]
    for n in names:
        info = sbx.files.write(f"{d}/{n}", f"content of {n}", user=who)
        assert (info.name, info.path) == (n, f"{d}/{n}")
        assert sbx.files.read(f"{d}/{n}", user=who) == f"content of {n}"
    assert sorted(os.listdir(d)) == sorted(names)
    assert sorted(e.name for e in sbx.files.list(d, user=who)) == sorted(names)
    # Multipart (several files): httpx sends `"` in a part's filename as %22 and envd keeps it.
    multi = sbx.files.write_files([WriteEntry(path=f"{d}/m\"1", data="1"), WriteEntry(path=f"{d}/m 2", data="2")], user=who)
    assert [i.name for i in multi] == ["m%221", "m 2"]


@pytest.mark.parametrize("who", WHO)
def test_async_sdk(debug_envd, who):
    """AsyncSandbox: its own httpx/connect clients, same behaviour."""
    d = f"{base(who)}-async"

    async def main():
        sbx = await AsyncSandbox.create()
        info = await sbx.files.write(f"{d}/a/b.txt", "async ✓", user=who)
        assert info.path == f"{d}/a/b.txt"
        assert_owned(f"{d}/a/b.txt", who)
        assert_owned(f"{d}/a", who)
        assert await sbx.files.read(f"{d}/a/b.txt", user=who) == "async ✓"
        assert bytes(await sbx.files.read(f"{d}/a/b.txt", format="bytes", user=who)) == "async ✓".encode()
        reader = await sbx.files.read(f"{d}/a/b.txt", format="stream", user=who)
        assert b"".join([c async for c in reader]) == "async ✓".encode()

        async def chunks():
            for i in range(8):
                yield bytes([i]) * 10_000

        await sbx.files.write(f"{d}/s.bin", chunks(), user=who, gzip=True)
        assert read_file(f"{d}/s.bin") == b"".join(bytes([i]) * 10_000 for i in range(8))
        many = await sbx.files.write_files(
            [WriteEntry(path=f"{d}/m1", data="1"), WriteEntry(path=f"{d}/m2", data=b"2")], user=who, metadata={"k": "v"}
        )
        assert [i.metadata for i in many] == [{"k": "v"}, {"k": "v"}]
        assert [e.name for e in await sbx.files.list(d, depth=2, user=who)] == ["a", "b.txt", "m1", "m2", "s.bin"]
        assert await sbx.files.exists(f"{d}/m1", user=who) is True
        assert (await sbx.files.get_info(f"{d}/m1", user=who)).owner == who
        assert await sbx.files.make_dir(f"{d}/new/dir", user=who) is True
        assert await sbx.files.make_dir(f"{d}/new/dir", user=who) is False
        assert (await sbx.files.rename(f"{d}/m1", f"{d}/new/dir/m1", user=who)).metadata == {"k": "v"}
        await sbx.files.remove(f"{d}/new", user=who)
        assert await sbx.files.exists(f"{d}/new", user=who) is False
        with pytest.raises(FileNotFoundException):
            await sbx.files.read(f"{d}/missing", user=who)
        with pytest.raises(FileNotFoundException):
            await sbx.files.get_info(f"{d}/missing", user=who)
        with pytest.raises(InvalidArgumentException):
            await sbx.files.list(f"{d}/m2", user=who)
        # Parallel writes into one new directory (parents created by racing requests).
        res = await asyncio.gather(*(sbx.files.write(f"{d}/par/x/f{i}", str(i), user=who) for i in range(16)))
        assert len(res) == 16
        assert sorted(os.listdir(f"{d}/par/x")) == sorted(f"f{i}" for i in range(16))
        assert_owned(f"{d}/par/x", who)

    asyncio.run(asyncio.wait_for(main(), 60))
