"""The official e2b Python SDK in debug mode (E2B_DEBUG=true): it talks straight to
http://localhost:49983, assumes envd version 99.99.99, sends no access token, and never
calls the control plane. The module holds /tmp/envd-49983.lock (ctest: RESOURCE_LOCK)."""

import httpx
import pytest
from e2b import (
    AuthenticationException,
    Sandbox,
    SandboxException,
    TemplateException,
)

from envd_harness import REF

UNKNOWN = "no-such-user-e2b"


def test_create_needs_no_api_and_is_running(debug_envd):
    sbx = Sandbox.create()
    assert sbx.sandbox_id == "debug_sandbox_id"
    assert sbx._envd_access_token is None
    assert sbx.is_running() is True
    assert Sandbox.connect("whatever-id").is_running() is True


def test_user_header(debug_envd):
    sbx = Sandbox.create()
    # No user -> no Authorization header (version >= 0.4.0): envd's default user.
    # `user` and `root` exist: whatever ListDir answers, it is not an authentication failure.
    for user in (None, "user", "root"):
        try:
            sbx.files.list("/", user=user, request_timeout=10)
        except Exception as e:  # noqa: BLE001
            assert not isinstance(e, AuthenticationException), f"user {user}: {e!r}"
            assert "unauthenticated" not in str(e) and "invalid username" not in str(e)
    with pytest.raises(AuthenticationException, match=f"invalid username: '{UNKNOWN}'"):
        sbx.files.list("/", user=UNKNOWN, request_timeout=10)
    # The same gate on a server-streaming RPC (Process.Start): the error arrives in the
    # Connect end-of-stream frame and the SDK maps it the same way.
    with pytest.raises(AuthenticationException, match=f"invalid username: '{UNKNOWN}'"):
        sbx.commands.run("true", user=UNKNOWN, timeout=10, request_timeout=10)


def test_debug_version_passes_every_gate(debug_envd):
    sbx = Sandbox.create()
    handle = None
    try:
        handle = sbx.files.watch_dir(
            "/tmp", recursive=True, include_entry=True, allow_network_mounts=True, request_timeout=10
        )
    except Exception as e:  # noqa: BLE001
        assert not isinstance(e, TemplateException), f"a version gate fired in debug mode: {e!r}"
        assert isinstance(e, SandboxException), f"expected envd's answer, got {e!r}"
    finally:
        if handle is not None:
            handle.stop()


def test_is_running_after_envd_stops(debug_envd):
    """Direct to a dead port there is no proxy to answer 502, so is_running() raises the
    connection error instead of returning False; test_normal.py covers False via the edge.
    Runs last in this module: it stops the module's envd."""
    sbx = Sandbox.create()
    assert sbx.is_running() is True
    rc = debug_envd.stop()
    assert REF or rc == 0, "envd exits 0 on SIGTERM"  # the reference dies of the signal
    # httpx.ConnectError (a TransportError), not wrapped by the SDK.
    with pytest.raises(httpx.TransportError, match="(?i)connect"):
        sbx.is_running(request_timeout=5)
