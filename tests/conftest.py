"""Fixtures shared by every test.

Unit tests never reach anything: upstream URLs point at a closed port unless a
test asks for the sandbox. End-to-end tests use `sandbox` (one loopback cluster
for the whole session, with the demo data) and `live` (Soteria's settings
pointed at it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig, default_cache_dir

# A port nothing listens on (discard); unit tests that forget a fake fail fast.
CLOSED_URL = "http://127.0.0.1:9"
TEST_PORT_BASE = int(os.environ.get("SOTERIA_TEST_PORT_BASE", "27440"))


@pytest.fixture(autouse=True)
def _isolated_upstreams(settings, tmp_path):
    from backups.clients import kubernetes, longhorn

    missing = tmp_path / "no-kubeconfig"
    settings.KUBECONFIG = str(missing)
    settings.IN_CLUSTER = False
    settings.SOTERIA_LONGHORN_URL = CLOSED_URL
    kubernetes.reset()
    longhorn.reset()
    yield
    kubernetes.reset()
    longhorn.reset()


@pytest.fixture(scope="session")
def sandbox() -> SandboxConfig:
    """The loopback cluster with the demo data, started once per test session."""
    from sandbox import cluster

    cfg = SandboxConfig(state_dir=default_cache_dir() / "sandbox-test", port_base=TEST_PORT_BASE,
                        longhorn_op_seconds=0.5)
    cluster.down(cfg)  # whatever an interrupted run left behind
    try:
        cluster.up(cfg, seed=True)
    except BaseException:
        cluster.down(cfg, keep_state=True)
        raise
    yield cfg
    cluster.down(cfg)


@pytest.fixture
def live(sandbox, settings):
    """Soteria's settings pointed at the sandbox."""
    from backups.clients import kubernetes, longhorn

    settings.KUBECONFIG = str(sandbox.kubeconfig)
    settings.SOTERIA_LONGHORN_URL = sandbox.longhorn_url
    settings.SOTERIA_RESTIC_REPOSITORY = sandbox.restic_repository
    settings.SOTERIA_S3_ENDPOINT = sandbox.s3_endpoint
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    kubernetes.reset()
    longhorn.reset()
    return sandbox


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
