"""Fixtures shared by every test.

Unit tests never reach anything: upstream URLs point at a closed port unless a
test asks for the sandbox. End-to-end tests use `sandbox` (one loopback cluster
for the whole session, with the demo data) and `live` (Soteria's settings
pointed at it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig, default_cache_dir

# A port nothing listens on (discard); unit tests that forget a fake fail fast.
CLOSED_URL = "http://127.0.0.1:9"
TEST_PORT_BASE = int(os.environ.get("SOTERIA_TEST_PORT_BASE", "27440"))
ROOT = Path(__file__).resolve().parent.parent


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
    return Path(__file__).resolve().parent.parent


@dataclass
class SoteriaServer:
    url: str
    data_dir: Path
    env: dict
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_soteria(sandbox: SandboxConfig, data_dir: Path, workers: int = 2, **extra_env) -> SoteriaServer:
    """Real gunicorn (web) on a loopback port, pointed at the sandbox, with its own data dir."""
    from sandbox import cluster

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(cluster.exports(sandbox))
    # Many tests share one server and its per-identity request rates: off unless asked for.
    env.update(SOTERIA_THROTTLE_MUTATIONS="off", SOTERIA_THROTTLE_INVENTORY="off")
    env.update(SOTERIA_DATA_DIR=str(data_dir), SOTERIA_LISTEN_ADDR=f"127.0.0.1:{port}",
               SOTERIA_WEB_WORKERS=str(workers), SOTERIA_SECURE_COOKIES="false", DJANGO_SETTINGS_MODULE="soteria_site.settings")
    env.update({k: str(v) for k, v in extra_env.items()})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run([sys.executable, "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True, timeout=120)
    log = open(data_dir / "gunicorn.log", "ab")
    process = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "soteria_site/gunicorn.conf.py",
                                "soteria_site.wsgi"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "gunicorn.log").read_text()[-3000:]) from None
            time.sleep(0.2)
    return SoteriaServer(url=url, data_dir=data_dir, env=env, process=process)


def stop_soteria(server: SoteriaServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def soteria_server(sandbox, tmp_path_factory) -> SoteriaServer:
    """Soteria's web process (real gunicorn, 2 workers) on the session's sandbox, auth off."""
    server = start_soteria(sandbox, tmp_path_factory.mktemp("soteria-data"))
    yield server
    stop_soteria(server)
