"""End-to-end tests: Soteria's real code against the session's sandbox cluster."""

import time

import pytest

from sandbox import faults

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _clean_faults(request):
    yield
    if "sandbox" in request.fixturenames or "live" in request.fixturenames:
        cfg = request.getfixturevalue("sandbox")
        faults.clear(cfg)
        faults.set_op_seconds(cfg, cfg.longhorn_op_seconds)


def wait_for(check, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """Poll until check() returns something truthy; return it. Fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def kube(cfg):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    return client.CoreV1Api(api)


def post(client, path, body):
    return client.post(path, body, content_type="application/json")
