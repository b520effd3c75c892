"""The official e2b Python SDK in normal mode: the control plane is ../fake_api.mjs on
loopback (E2B_API_URL, a dummy E2B_API_KEY), and E2B_SANDBOX_URL points the SDK's envd
traffic at our envd on a free port. Sandbox.create() makes the fake POST /init {accessToken}
to envd, as the orchestrator does, so everything after runs in secure (token) mode, with the
envdVersion our binary prints for `-version`."""

import asyncio
import json
import os
import pwd
import re
import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import httpx

import pytest
from packaging.version import Version

from e2b import (
    AsyncSandbox,
    AuthenticationException,
    FileNotFoundException,
    FilesystemEventType,
    Sandbox,
    SandboxException,
    TemplateException,
)
from envd_harness import REF, Envd, FakeApi

UNKNOWN = "no-such-user-e2b"
TAG = secrets.token_hex(4)
DIRS = {"root": f"/tmp/sdk-py-normal-{TAG}", "user": f"/home/user/sdk-py-normal-{TAG}"}


@pytest.fixture(scope="module", autouse=True)
def cleanup():
    yield
    for d in DIRS.values():
        shutil.rmtree(d, ignore_errors=True)


def uid_of(who: str) -> int:
    return pwd.getpwnam(who).pw_uid


def raw(url: str, path: str, headers=None, body: bytes | None = b'{"path":"/"}'):
    """(status, body) of a plain HTTP call, bounded."""
    req = urllib.request.Request(
        url + path,
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_create_through_fake_api(normal, version):
    envd, api = normal
    sbx = Sandbox.create(request_timeout=15)
    assert sbx.sandbox_id == api.sandbox_id
    assert re.fullmatch(r"[0-9a-f]{48}", sbx._envd_access_token or "")
    assert sbx._envd_version == Version(version)
    assert sbx.is_running() is True


def test_token_path(normal):
    envd, _ = normal
    sbx = Sandbox.create(request_timeout=15)
    # The SDK's call carries X-Access-Token, passes the gate and is answered.
    assert any(e.path == "/tmp" for e in sbx.files.list("/", request_timeout=10))
    # Without the header, or with a wrong token: 401 with envd's plain JSON error.
    for headers in ({}, {"X-Access-Token": "wrong" + sbx._envd_access_token}):
        status, body = raw(envd.url, "/filesystem.Filesystem/ListDir", headers)
        assert status == 401, headers
        err = json.loads(body)
        assert err["code"] == 401
        assert "unauthorized access, please provide a valid access token" in err["message"]
    # With the token the raw call reaches the RPC layer; /health stays open.
    status, _ = raw(envd.url, "/filesystem.Filesystem/ListDir", {"X-Access-Token": sbx._envd_access_token})
    assert status != 401
    assert raw(envd.url, "/health", body=None)[0] == 204


def test_async_sdk_token_and_user(normal, version):
    """AsyncSandbox has its own transports (httpx async, async connect client)."""

    async def main():
        sbx = await AsyncSandbox.create(request_timeout=15)
        assert sbx._envd_version == Version(version)
        assert await sbx.is_running() is True
        assert any(e.path == "/tmp" for e in await sbx.files.list("/", request_timeout=10))
        with pytest.raises(AuthenticationException, match=f"invalid username: '{UNKNOWN}'"):
            await sbx.files.list("/", user=UNKNOWN, request_timeout=10)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_connect_and_tokenless_client(normal):
    envd, api = normal
    created = Sandbox.create(request_timeout=15)
    sbx = Sandbox.connect(created.sandbox_id, request_timeout=15)
    assert sbx._envd_access_token == created._envd_access_token
    # A debug-mode SDK sends no token: pointed at this secure envd, every RPC is refused.
    tokenless = Sandbox.connect("x", debug=True, sandbox_url=envd.url)
    with pytest.raises(AuthenticationException):
        tokenless.files.list("/", request_timeout=10)
    assert tokenless.is_running() is True  # /health is exempt


def test_user_header_secure_mode(normal):
    sbx = Sandbox.create(request_timeout=15)
    try:
        sbx.files.list("/", user="user", request_timeout=10)
    except Exception as e:  # noqa: BLE001
        assert not isinstance(e, AuthenticationException), repr(e)
    with pytest.raises(AuthenticationException, match=f"invalid username: '{UNKNOWN}'"):
        sbx.files.list("/", user=UNKNOWN, request_timeout=10)


@pytest.mark.parametrize(
    "gate,opts,msg",
    [
        ("0.1.4", {"recursive": True}, "recursive watching"),
        ("0.6.3", {"include_entry": True}, "include entry info"),
        ("0.6.4", {"allow_network_mounts": True}, "network mounts"),
    ],
)
def test_version_gates_follow_our_version(normal, version, gate, opts, msg):
    """What our -version claims decides whether the SDK refuses client-side
    (TemplateException) or sends the call to envd."""
    assert Version(version) >= Version("0.4.0"), "below 0.4.0 the SDK sends user 'user' when none is given"
    sbx = Sandbox.create(request_timeout=15)
    handle = None
    try:
        handle = sbx.files.watch_dir("/tmp", request_timeout=10, **opts)
        assert Version(version) >= Version(gate)
    except Exception as e:  # noqa: BLE001
        if Version(version) < Version(gate):
            assert isinstance(e, TemplateException), repr(e)
            assert msg in str(e)
        else:
            assert not isinstance(e, TemplateException), f"gate {gate} fired at {version}: {e!r}"
            assert isinstance(e, SandboxException), f"expected envd's answer, got {e!r}"
    finally:
        if handle is not None:
            handle.stop()


def test_include_entry_and_allow_network_mounts_through_the_gates(normal, version):
    """Both gates (0.6.3, 0.6.4) open from our -version on: the SDK sends include_entry and
    allow_network_mounts (sync client: the polling watcher) and envd honours them."""
    assert Version(version) >= Version("0.6.4"), f"-version {version} is below 0.6.4"
    sbx = Sandbox.create(request_timeout=15)
    d = f"{DIRS['root']}/watch-gates"
    os.makedirs(d, exist_ok=True)
    with_entry = sbx.files.watch_dir(d, include_entry=True, allow_network_mounts=True, request_timeout=10)
    plain = sbx.files.watch_dir(d, allow_network_mounts=True, request_timeout=10)
    try:
        sbx.files.write(f"{d}/seen.txt", "entry", request_timeout=10)
        got, got_plain = [], []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got.extend(with_entry.get_new_events())
            got_plain.extend(plain.get_new_events())
            if any(e.name == "seen.txt" for e in got) and any(e.name == "seen.txt" for e in got_plain):
                break
            time.sleep(0.05)
        create = next(e for e in got if e.type == FilesystemEventType.CREATE and e.name == "seen.txt")
        assert create.entry is not None
        assert create.entry.name == "seen.txt"
        assert create.entry.path == f"{d}/seen.txt"
        plain_create = next(e for e in got_plain if e.type == FilesystemEventType.CREATE and e.name == "seen.txt")
        assert plain_create.entry is None, "no entry unless asked"
    finally:
        with_entry.stop()
        plain.stop()


def test_old_envd_version_refused_at_create(version):
    """An envdVersion below 0.1.0 makes the SDK kill the sandbox and raise."""
    envd = Envd(port=0)  # a fresh envd: the fake inits it with a new token
    api = FakeApi(envd.url, "0.0.9")
    try:
        with pytest.raises(TemplateException, match="update the template"):
            Sandbox.create(api_url=api.api_url, api_key="e2b_" + "0" * 40, sandbox_url=envd.url, request_timeout=15)
    finally:
        api.close()
        envd.stop()


def test_is_running_false_once_stopped(version):
    """True through the fake edge while envd runs; False (edge 502) once it is stopped."""
    envd = Envd(port=0)
    api = FakeApi(envd.url, version)
    try:
        opts = dict(api_url=api.api_url, api_key="e2b_" + "0" * 40, sandbox_url=api.edge_url, request_timeout=15)
        sbx = Sandbox.create(**opts)
        assert sbx.is_running() is True
        rc = envd.stop()
        assert REF or rc == 0, "envd exits 0 on SIGTERM"  # the reference dies of the signal
        assert sbx.is_running() is False
    finally:
        api.close()
        envd.stop()


@pytest.mark.parametrize("who", ["root", "user"])
def test_files_through_the_control_plane(normal, version, who):
    """Token set and our real version: write/read/list, gzip and the metadata gate (0.6.2)."""
    sbx = Sandbox.create(request_timeout=15)
    d = f"{DIRS[who]}/rw"
    info = sbx.files.write(f"{d}/a.txt", "through the fake ✓", user=who)
    assert info.path == f"{d}/a.txt"
    assert os.stat(f"{d}/a.txt").st_uid == uid_of(who)
    assert os.stat(d).st_uid == uid_of(who)
    assert sbx.files.read(f"{d}/a.txt", user=who) == "through the fake ✓"
    assert bytes(sbx.files.read(f"{d}/a.txt", format="bytes", user=who)) == "through the fake ✓".encode()
    # gzip implies octet-stream from 0.5.7 on (the SDK falls back to multipart below): same file.
    sbx.files.write(f"{d}/gz.txt", b"gzip body", user=who, gzip=True)
    assert sbx.files.read(f"{d}/gz.txt", user=who, gzip=True) == "gzip body"
    sbx.files.write_files([{"path": f"{d}/m1", "data": "1"}, {"path": f"{d}/sub/m2", "data": b"2"}], user=who)
    assert [(e.name, e.owner) for e in sbx.files.list(d, depth=2, user=who)] == [
        ("a.txt", who),
        ("gz.txt", who),
        ("m1", who),
        ("sub", who),
        ("m2", who),
    ]
    with pytest.raises(FileNotFoundException):
        sbx.files.read(f"{d}/missing", user=who)
    if Version(version) >= Version("0.6.2"):
        assert sbx.files.write(f"{d}/meta", "m", user=who, metadata={"k": "v"}).metadata == {"k": "v"}
        assert sbx.files.get_info(f"{d}/meta", user=who).metadata == {"k": "v"}
    else:
        with pytest.raises(TemplateException):
            sbx.files.write(f"{d}/meta", "m", user=who, metadata={"k": "v"})


@pytest.mark.parametrize("who", ["root", "user"])
def test_signed_urls(normal, who):
    """upload_url/download_url with a token: signed, fetched with plain httpx, odd paths."""
    sbx = Sandbox.create(request_timeout=15)
    d = f"{DIRS[who]}/signed"
    names = ["plain.txt", "a b.txt", "plus+sign.txt", "100% sure.txt", "x&y=z.txt", "ünï cødé ✓.txt", 'q"uote.txt']
    with httpx.Client(timeout=10) as http:

        def upload(url, body, filename="upload.bin"):
            return http.post(url, files={"file": (filename, body)})

        for i, n in enumerate(names):
            p = f"{d}/{n}"
            body = f"signed content {i} for {who}"
            kw = {"user": who, "use_signature_expiration": 120} if i % 2 else {"user": who}
            up = sbx.upload_url(p, **kw)
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(up).query)
            assert q["path"] == [p] and q["username"] == [who]
            assert q["signature"][0].startswith("v1_")
            assert ("signature_expiration" in q) == bool(i % 2)
            r = upload(up, body.encode())
            assert r.status_code == 200, f"{p}: {r.text}"
            assert r.json()[0]["path"] == p
            with open(p, encoding="utf-8") as f:
                assert f.read() == body
            assert os.stat(p).st_uid == uid_of(who)
            down = sbx.download_url(p, **kw)
            g = http.get(down)
            assert g.status_code == 200, f"{p}: {g.text}"
            assert g.text == body
            assert upload(down, b"nope").status_code == 401, "download URL used for upload"
            assert http.get(up).status_code == 401, "upload URL used for download"

        p = f"{d}/plain.txt"
        down = httpx.URL(sbx.download_url(p, user=who))
        other = "user" if who == "root" else "root"
        sig = down.params["signature"]
        for bad in (
            down.copy_set_param("path", f"{d}/a b.txt"),
            down.copy_set_param("username", other),
            down.copy_remove_param("signature"),
            down.copy_set_param("signature", sig[:-2] + "xx"),
        ):
            assert http.get(bad).status_code == 401, str(bad)
        assert http.get(sbx.download_url(p, user=who, use_signature_expiration=-60)).status_code == 401, "expired"
        # The token header is the alternative to a signature.
        r = http.get(down.copy_remove_param("signature"), headers={"X-Access-Token": sbx._envd_access_token})
        assert r.status_code == 200 and r.text == f"signed content 0 for {who}"
        # No path in the URL: the target is the multipart part's filename (signed over path "").
        no_path = sbx.upload_url("", user=who)
        assert "path" not in urllib.parse.parse_qs(urllib.parse.urlsplit(no_path).query)
        r = upload(no_path, b"named by the part", f"{d}/from-part.txt")
        assert r.status_code == 200, r.text
        with open(f"{d}/from-part.txt", encoding="utf-8") as f:
            assert f.read() == "named by the part"
        assert os.stat(f"{d}/from-part.txt").st_uid == uid_of(who)
