"""/readyz is public and anonymous: it says which dependency failed, never URLs, versions,
upstream messages or where the policy Secret is. Those go to Soteria's log, once per
change of state. Real gunicorn, auth required, on the sandbox."""

import base64
import socket

import pytest

from tests.support.cast import POD, SECURE_ENV
from tests.support.http import call
from tests.support.polling import wait_for
from tests.support.soteria import start_soteria, stop_soteria

BROKEN_SECRET = "readyz-probe-policies"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def broken_server(sandbox, tmp_path_factory):
    """One worker (one process to count log lines of) whose Longhorn URL answers nothing and
    whose policy Secret holds no valid JSON; Kubernetes works."""
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(sandbox.kubeconfig)))
    core.create_namespaced_secret("soteria", {"metadata": {"name": BROKEN_SECRET},
                                              "data": {"policies.json": base64.b64encode(b"{broken").decode()}})
    longhorn_url = f"http://127.0.0.1:{_closed_port()}"
    server = start_soteria(sandbox, tmp_path_factory.mktemp("readyz-data"), workers=1,
                           **{**SECURE_ENV, "SOTERIA_LONGHORN_URL": longhorn_url,
                              "SOTERIA_POLICY_SECRET_NAME": BROKEN_SECRET})
    server.longhorn_url = longhorn_url
    yield server
    stop_soteria(server)
    core.delete_namespaced_secret(BROKEN_SECRET, "soteria")


def _log(server) -> str:
    return (server.data_dir / "gunicorn.log").read_text(errors="replace")


def test_a_ready_soteria_says_ready_and_nothing_else(secure_server):
    reply = call(secure_server.url, "GET", "/readyz", peer=POD)
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["status"] == "ready" and "failed" not in body
    assert body["checks"] == {"kubernetes": {"ok": True}, "longhorn": {"ok": True}}
    assert set(body["policies"]) <= {"ok", "error"}
    assert "v1.20" not in reply.text and "127.0.0.1" not in reply.text and "detail" not in reply.text


def test_a_failing_dependency_is_named_without_its_details(broken_server):
    reply = call(broken_server.url, "GET", "/readyz", peer=POD)
    assert reply.status == 503
    body = reply.json()
    assert body["failed"] == ["longhorn"]
    assert body["checks"] == {"kubernetes": {"ok": True}, "longhorn": {"ok": False, "error": "longhorn_unavailable"}}
    assert body["policies"] == {"ok": False, "error": "policy_store_unreadable"}
    port = broken_server.longhorn_url.rsplit(":", 1)[1]
    for secret in (port, "127.0.0.1", "refused", "v1.20", BROKEN_SECRET, "Secret", "soteria/", "detail"):
        assert secret not in reply.text, f"/readyz shows {secret!r}"


def test_the_details_are_logged_once_per_state_not_at_every_probe(broken_server):
    for _ in range(4):
        assert call(broken_server.url, "GET", "/readyz", peer=POD).status == 503
    wait_for(lambda: "readiness: policies failed" in _log(broken_server), what="the readiness failures logged")
    lines = _log(broken_server).splitlines()
    longhorn = [line for line in lines if "readiness: longhorn failed" in line]
    policies = [line for line in lines if "readiness: policies failed" in line]
    assert len(longhorn) == 1 and broken_server.longhorn_url in longhorn[0], longhorn
    assert len(policies) == 1 and f"soteria/{BROKEN_SECRET}" in policies[0], policies
