"""The official e2b Python SDK in normal mode: the control plane is ../fake_api.mjs on
loopback (E2B_API_URL, a dummy E2B_API_KEY), and E2B_SANDBOX_URL points the SDK's envd
traffic at our envd on a free port. Sandbox.create() makes the fake POST /init {accessToken}
to envd, as the orchestrator does, so everything after runs in secure (token) mode, with the
envdVersion our binary prints for `-version`."""

import asyncio
import json
import re
import urllib.error
import urllib.request

import pytest
from packaging.version import Version

from e2b import (
    AsyncSandbox,
    AuthenticationException,
    Sandbox,
    SandboxException,
    TemplateException,
)
from envd_harness import Envd, FakeApi

UNKNOWN = "no-such-user-e2b"


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
    # The SDK's call carries X-Access-Token, passes the gate and reaches the RPC layer.
    with pytest.raises(SandboxException) as ei:
        sbx.files.list("/", request_timeout=10)
    assert "unimplemented" in str(ei.value).lower()  # swap for a success check once ListDir exists
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
        with pytest.raises(SandboxException) as ei:
            await sbx.files.list("/", request_timeout=10)
        assert "unimplemented" in str(ei.value).lower()
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
        assert envd.stop() == 0, "envd exits 0 on SIGTERM"
        assert sbx.is_running() is False
    finally:
        api.close()
        envd.stop()
