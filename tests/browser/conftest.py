"""Fixtures for the browser tests: Debian's Chromium driven by pytest-playwright
against real Soteria servers (gunicorn) on the session's sandbox cluster.
Helpers are in tests/support/browser.py.
"""

from __future__ import annotations

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.soteria import start_soteria, stop_soteria


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
