"""Through real gunicorn: identity headers with underscores never count; dashes do."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SOTERIA_DATA_DIR=str(data), SOTERIA_AUTH_REQUIRED="true", SOTERIA_ALLOWED_GROUPS="admin",
               SOTERIA_TRUSTED_PROXIES="127.0.0.1/32",
               SOTERIA_LISTEN_ADDR=f"127.0.0.1:{port}", SOTERIA_WEB_WORKERS="1",
               SOTERIA_LONGHORN_URL="http://127.0.0.1:9", KUBECONFIG=str(data / "none"))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "soteria_site/gunicorn.conf.py",
                             "soteria_site.wsgi"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def _whoami(port, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", "/v1/whoami")
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def test_underscore_spelled_identity_headers_are_not_accepted(server):
    status, body = _whoami(server, {"X_Auth_Request_User": "alice", "X_Auth_Request_Groups": "admin"})
    assert status == 401 and body["error"] == "not_authenticated"


def test_dash_spelled_headers_from_the_proxy_are(server):
    status, body = _whoami(server, {"X-Auth-Request-User": "alice", "X-Auth-Request-Groups": "admin"})
    assert status == 200 and body["user"] == "alice" and body["auth"] == "header"


def test_an_underscore_header_cannot_override_the_proxys(server):
    status, body = _whoami(server, {"X-Auth-Request-User": "alice", "X-Auth-Request-Groups": "guests",
                                    "X_Auth_Request_Groups": "admin"})
    assert status == 200 and body["groups"] == ["guests"] and body["permissions"] == []
