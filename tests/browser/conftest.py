"""Fixtures for the browser tests: Debian's Chromium driven by pytest-playwright
against real Soteria servers (gunicorn) on the session's sandbox cluster.

Playwright cannot download its own browser here, so the launch points at
/usr/bin/chromium. Waiting is Playwright's auto-waiting `expect`, or polling
with a deadline (`wait_until`); never a bare sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.conftest import start_soteria, stop_soteria
from tests.polling import wait_for as wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# The fixed cast (as in tests/auth/conftest.py), as the proxy would send them.
ADMIN = {"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.org",
         "X-Auth-Request-Groups": "admin"}
VIEWER = {"X-Auth-Request-User": "dave", "X-Auth-Request-Groups": "viewers"}

T = TypeVar("T")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(soteria_server) -> str:
    """Relative `page.goto("/...")` goes to the auth-off Soteria on the sandbox."""
    return soteria_server.url


@pytest.fixture(scope="session")
def auth_server(sandbox, tmp_path_factory):
    """A second Soteria on the same sandbox with proxy authentication required."""
    server = start_soteria(sandbox, tmp_path_factory.mktemp("soteria-auth-data"), SOTERIA_AUTH_REQUIRED="true",
                           SOTERIA_ALLOWED_GROUPS="admin", SOTERIA_READONLY_GROUPS="viewers",
                           # The browser's requests come from 127.0.0.1: it plays the trusted proxy.
                           SOTERIA_TRUSTED_PROXIES="127.0.0.1/32")
    yield server
    stop_soteria(server)


@pytest.fixture(scope="session")
def kube(sandbox):
    """The sandbox's Kubernetes API, to check what the console did (or did not) create."""
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(sandbox.kubeconfig)))


def pvc_exists(kube, namespace: str, name: str) -> bool:
    return any(p.metadata.name == name for p in kube.list_namespaced_persistent_volume_claim(namespace).items)



def reload_until(page, check: Callable[[], T], timeout: float = 60.0, what: str = "condition") -> T:
    """Reload the page until `check` (reading the page) is truthy, within a deadline."""
    def attempt():
        page.reload()
        return check()

    return check() or wait_until(attempt, timeout=timeout, what=what, interval=0.5)
