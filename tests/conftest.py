"""Fixtures and hooks shared by every test; the helpers they use live in tests/support.

Unit tests never reach anything: upstream URLs point at a closed port unless a
test asks for the sandbox. End-to-end tests use `sandbox` (one loopback cluster
for the whole session, with the demo data) and `live` (Soteria's settings
pointed at it).

Markers come from where a test lives (and what it uses), not from each file:
see `pytest_collection_modifyitems`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import time_machine

# The helpers assert as tests do; pytest rewrites their asserts only if told before they are imported.
pytest.register_assert_rewrite("tests.support")

from sandbox.config import SandboxConfig, default_cache_dir  # noqa: E402
from tests.support.cast import CLIENT_TOKEN  # noqa: E402
from tests.support.fake_cluster import NOW, FakeCluster  # noqa: E402
from tests.support.ports import CLOSED_URL, TEST_PORT_BASE  # noqa: E402
from tests.support.soteria import SoteriaServer, start_soteria, stop_soteria  # noqa: E402

TESTS = Path(__file__).resolve().parent
# Directories whose every test needs the sandbox (its cluster, the Longhorn emulator, the
# kubelet stand-in, or Soteria under gunicorn pointed at them) or real Chromium.
SANDBOX_DIRS = {"e2e", "metrics_e2e", "sandbox", "security", "browser", "reliability"}
BROWSER_DIRS = {"browser"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    """`sandbox` on every test under SANDBOX_DIRS or using the `sandbox` fixture; `browser`
    on every test under BROWSER_DIRS. `-m "not sandbox"` then starts no cluster."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        top = parts[0] if len(parts) > 1 else ""
        if top in SANDBOX_DIRS or "sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.sandbox)
        if top in BROWSER_DIRS:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _fresh_identity_cache(settings):
    """Each test's database starts empty; so must the users a process remembers mirroring.
    Request rates are off unless a test of them turns them on (and starts from zero)."""
    from django.core.cache import caches

    from soteria_site.web.authn import forget_mirrored_users

    forget_mirrored_users()
    caches["throttle"].clear()
    settings.SOTERIA_THROTTLE_MUTATIONS = settings.SOTERIA_THROTTLE_INVENTORY = None


@pytest.fixture(autouse=True)
def _isolated_upstreams(settings, tmp_path):
    from backups.clients import longhorn
    from soteria_site.core import kubernetes

    missing = tmp_path / "no-kubeconfig"
    settings.KUBECONFIG = str(missing)
    settings.IN_CLUSTER = False
    settings.SOTERIA_LONGHORN_URL = CLOSED_URL
    kubernetes.reset()
    longhorn.reset()
    yield
    kubernetes.reset()
    longhorn.reset()


@pytest.fixture(autouse=True)
def _restores_queue_runs_inline(monkeypatch):
    """Queues run synchronously in tests: a namespace restore's queued task runs as it is
    queued, in this process (a test that wants it left queued patches `_enqueue` itself)."""
    from backups import tasks
    from backups.services import restore

    monkeypatch.setattr(restore, "_enqueue", tasks.restore_planned)


@pytest.fixture
def cluster(monkeypatch) -> FakeCluster:
    """Kubernetes and Longhorn at the client seam, as an in-process fake (tests/support/fake_cluster.py)."""
    return FakeCluster().install(monkeypatch)


@pytest.fixture
def policy_secret_settings(settings, request):
    """Soteria keeps its policies in the Secret soteria/soteria-policies, and remembers none
    that an earlier test's fake Secret held (the memory is in the database cache, which a
    transactional test's flush does not empty)."""
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    settings.SOTERIA_POLICY_SECRET_NAME = "soteria-policies"
    if request.node.get_closest_marker("django_db"):
        from django.core.cache import cache

        from policies import store

        request.getfixturevalue("db")
        cache.delete(store.memory_key())


@pytest.fixture
def auth_on(settings):
    """The server side of the test client's cast (tests/support/cast.py CAST): who may do what."""
    settings.SOTERIA_AUTH_REQUIRED = True
    settings.SOTERIA_ALLOWED_GROUPS = ["admin", "maintenance"]
    settings.SOTERIA_READONLY_GROUPS = ["viewers"]
    settings.SOTERIA_BACKUP_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_RESTORE_SCOPES = {"team-ai": frozenset({"ai", "ai-restore"})}
    settings.SOTERIA_AUTH_BEARER_TOKENS = [("ci", CLIENT_TOKEN)]
    # The test client's requests come from 127.0.0.1: it plays the trusted proxy here.
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    return settings


@pytest.fixture
def frozen():
    """Time stands still at the fake cluster's NOW."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(scope="session")
def sandbox() -> SandboxConfig:
    """The loopback cluster with the demo data, started once per test session."""
    from sandbox import cluster

    cfg = SandboxConfig(state_dir=default_cache_dir() / f"sandbox-test-{TEST_PORT_BASE}", port_base=TEST_PORT_BASE,
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
    from backups.clients import longhorn
    from soteria_site.core import kubernetes

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
    return TESTS.parent


@pytest.fixture(scope="session")
def soteria_server(sandbox, tmp_path_factory) -> SoteriaServer:
    """Soteria's web process (real gunicorn, 2 workers) on the session's sandbox, auth off."""
    server = start_soteria(sandbox, tmp_path_factory.mktemp("soteria-data"))
    yield server
    stop_soteria(server)
