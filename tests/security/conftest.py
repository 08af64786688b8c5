"""Soteria under real gunicorn on the session's sandbox with SOTERIA_AUTH_REQUIRED=true.

`secure_server` trusts one proxy address (PROXY); a request from any other loopback
address (POD) plays an ordinary pod of the cluster. `default_server` runs with the
shipped defaults: auth required, no trusted proxy configured.
"""

import pytest

from tests.conftest import start_soteria, stop_soteria
from tests.support.cast import TOKEN, TOKEN_NAME

PROXY = "127.0.0.2"  # the trusted proxy in front of Soteria
POD = "127.0.0.1"    # any other pod that can reach Soteria's port

SECURE_ENV = {
    "SOTERIA_AUTH_REQUIRED": "true",
    "SOTERIA_TRUSTED_PROXIES": f"{PROXY}/32",
    "SOTERIA_ALLOWED_GROUPS": "admin",
    "SOTERIA_READONLY_GROUPS": "viewers",
    "SOTERIA_BACKUP_SCOPES": "team-ai=ai",
    "SOTERIA_RESTORE_SCOPES": "team-ai=ai",
    "SOTERIA_AUTH_BEARER_TOKENS": f"{TOKEN_NAME}:{TOKEN}",
    "SOTERIA_ALLOWED_HOSTS": "127.0.0.1,localhost",
}


@pytest.fixture(scope="session")
def secure_server(sandbox, tmp_path_factory):
    server = start_soteria(sandbox, tmp_path_factory.mktemp("secure-data"), **SECURE_ENV)
    yield server
    stop_soteria(server)


@pytest.fixture(scope="session")
def default_server(sandbox, tmp_path_factory):
    env = {k: v for k, v in SECURE_ENV.items() if k != "SOTERIA_TRUSTED_PROXIES"}
    server = start_soteria(sandbox, tmp_path_factory.mktemp("default-data"), **env)
    yield server
    stop_soteria(server)
