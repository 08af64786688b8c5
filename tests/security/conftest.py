"""Soteria under real gunicorn on the session's sandbox with SOTERIA_AUTH_REQUIRED=true.

`secure_server` trusts one proxy address (PROXY); a request from any other loopback
address (POD) plays an ordinary pod of the cluster. `default_server` runs with the
shipped defaults: auth required, no trusted proxy configured. PROXY, POD and SECURE_ENV
are in tests/support/cast.py.
"""

import pytest

from tests.support.cast import SECURE_ENV
from tests.support.soteria import start_soteria, stop_soteria


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
