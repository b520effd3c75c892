import os
import secrets

import pytest

from envd_harness import DEBUG_PORT, Envd, FakeApi, PortLock, clear_e2b_env, envd_version

clear_e2b_env()


@pytest.fixture(scope="session")
def version() -> str:
    return envd_version()


@pytest.fixture(scope="module")
def debug_envd():
    """envd on :49983 for the SDK's debug mode (E2B_DEBUG=true), under the port lock."""
    lock = PortLock()
    envd = None
    try:
        envd = Envd(port=DEBUG_PORT)
        os.environ["E2B_DEBUG"] = "true"
        yield envd
    finally:
        os.environ.pop("E2B_DEBUG", None)
        if envd is not None:
            envd.stop()
        lock.release()


@pytest.fixture(scope="module")
def normal(version):
    """envd on a free port behind the fake control plane; the SDK configured by env vars."""
    envd = Envd(port=0)
    api = None
    try:
        api = FakeApi(envd.url, version)
        os.environ["E2B_API_URL"] = api.api_url
        os.environ["E2B_API_KEY"] = "e2b_" + secrets.token_hex(20)
        os.environ["E2B_SANDBOX_URL"] = envd.url
        yield envd, api
    finally:
        clear_e2b_env()
        if api is not None:
            api.close()
        envd.stop()


@pytest.fixture(scope="module")
def sbx(debug_envd):
    """A debug-mode Sandbox on the module's envd; fails the module if envd died meanwhile."""
    from e2b import Sandbox

    yield Sandbox.create()
    assert debug_envd.running, f"envd died during the tests:\n{debug_envd.log()}"
