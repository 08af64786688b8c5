"""End-to-end tests: Soteria's real code against the session's sandbox cluster."""

import pytest

from sandbox import faults


@pytest.fixture(autouse=True)
def _clean_faults(request):
    yield
    if "sandbox" in request.fixturenames or "live" in request.fixturenames:
        cfg = request.getfixturevalue("sandbox")
        faults.clear(cfg)
        faults.set_op_seconds(cfg, cfg.longhorn_op_seconds)


@pytest.fixture
def policy_secret(live, settings, request):
    """A policy Secret of this test's own in the service namespace."""
    name = f"e2e-policies-{abs(hash(request.node.nodeid)) % 10 ** 8}"
    settings.SOTERIA_POLICY_SECRET_NAME = name
    return name
