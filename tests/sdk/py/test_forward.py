"""Port forwarding (contract §7.5) through the official e2b Python SDK in debug mode: a
`python3 -m http.server --bind 127.0.0.1 <port>` started with `sandbox.commands` becomes
reachable on the external address and goes away once killed. The external address is 127.0.0.2
(on the loopback interface) and --forward-ports limits forwarding to this module's port; scans
every 50 ms, every wait has a 10 s deadline. Holds /tmp/envd-49983.lock."""
import os
import re
import socket
import urllib.request

import pytest

from envd_harness import DEBUG_PORT, Envd, PortLock, wait_for

EXTERNAL = "127.0.0.2"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def probe(host: str, port: int) -> str:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return type(e).__name__


@pytest.fixture(scope="module")
def forwarding():
    port = free_port()
    lock = PortLock()
    envd = None
    try:
        envd = Envd(
            port=DEBUG_PORT,
            args=("-no-cgroups", "--forward-address", EXTERNAL, "--forward-scan-ms", "50", "--forward-ports", str(port)),
        )
        os.environ["E2B_DEBUG"] = "true"
        from e2b import Sandbox

        yield envd, Sandbox.create(), port
        assert envd.running, f"envd died during the tests:\n{envd.log()}"
    finally:
        os.environ.pop("E2B_DEBUG", None)
        if envd is not None:
            envd.stop()
        lock.release()


def test_loopback_http_server_is_forwarded_then_gone_after_kill(forwarding):
    envd, sbx, port = forwarding
    d = f"/tmp/envd-sdk-py-forward-{os.getpid()}"
    sbx.files.write(f"{d}/index.txt", "served through the forward\n")
    assert probe(EXTERNAL, port) == "refused"
    h = sbx.commands.run(f"exec python3 -m http.server --bind 127.0.0.1 {port}", background=True, cwd=d)
    killed = False
    try:

        def fetch():
            try:
                with urllib.request.urlopen(f"http://{EXTERNAL}:{port}/index.txt", timeout=2) as r:
                    return r.status == 200 and r.read().decode()
            except OSError:
                return False

        assert wait_for(fetch, 10, 0.025, f"GET http://{EXTERNAL}:{port}/index.txt") == "served through the forward\n"
        assert re.search(rf"forwarding 127\.0\.0\.2:{port} to 127\.0\.0\.1:{port}", envd.log())
        assert h.kill() is True
        killed = True
        wait_for(lambda: probe(EXTERNAL, port) == "refused", 10, 0.025, "the forward to close after the kill")
    finally:
        if not killed:
            h.kill()
        sbx.files.remove(d)
