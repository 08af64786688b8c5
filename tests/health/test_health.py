"""/healthz and /readyz: public, quick, and honest about what is down (the details in the log only)."""

import logging

import pytest

from backups.clients import longhorn
from soteria_site import health
from soteria_site.core import kubernetes
from soteria_site.core.errors import UpstreamTimeout, UpstreamUnavailable


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test starts like a new process: no dependency state seen yet."""
    monkeypatch.setattr(health, "_states", {}, raising=False)


def _readiness_log(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "soteria_site.health"]


def test_healthz_answers_without_touching_upstreams(client, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("healthz must not call upstream")

    monkeypatch.setattr(kubernetes, "server_version", boom)
    monkeypatch.setattr(longhorn, "ping", boom)
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_200_when_kubernetes_and_longhorn_answer(client, monkeypatch):
    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")
    monkeypatch.setattr(longhorn, "ping", lambda timeout=None: None)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"kubernetes": {"ok": True}, "longhorn": {"ok": True}}
    assert response.json()["status"] == "ready"


def test_readyz_is_503_naming_what_failed(client, monkeypatch):
    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")

    def down(timeout=None):
        raise UpstreamUnavailable("longhorn", "Longhorn manager at http://lh is unreachable: connection refused")

    monkeypatch.setattr(longhorn, "ping", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["longhorn"]
    assert body["checks"] == {"kubernetes": {"ok": True}, "longhorn": {"ok": False, "error": "longhorn_unavailable"}}
    assert "http://lh" not in response.content.decode() and "refused" not in response.content.decode()


def test_readyz_probes_restic_not_longhorn_with_the_restic_driver(client, monkeypatch, settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"

    def slow(timeout=None):
        raise UpstreamTimeout("kubernetes", "Kubernetes API did not answer version in time")

    monkeypatch.setattr(kubernetes, "server_version", slow)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()["checks"]) == {"kubernetes", "restic"}


def test_readyz_uses_the_short_ready_timeout(client, monkeypatch, settings):
    settings.SOTERIA_READY_TIMEOUT_SECONDS = 0.7
    seen = []
    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: seen.append(timeout) or "v1")
    monkeypatch.setattr(longhorn, "ping", lambda timeout=None: seen.append(timeout))
    client.get("/readyz")
    assert seen == [0.7, 0.7]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_refuse_unsafe_methods(client, path):
    assert client.post(path).status_code == 405


def test_readyz_reports_an_unreadable_policy_secret_without_failing(client, monkeypatch):
    from policies import store

    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")
    monkeypatch.setattr(longhorn, "ping", lambda timeout=None: None)

    def unreadable():
        raise store.PolicyStoreUnreadable("Secret soteria/soteria-policies key policies.json is not valid JSON")

    monkeypatch.setattr(store, "load", unreadable)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["policies"] == {"ok": False, "error": "policy_store_unreadable"}
    assert "soteria-policies" not in response.content.decode()


def test_readyz_body_shows_no_versions_or_urls(client, monkeypatch):
    from policies import store

    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")
    monkeypatch.setattr(longhorn, "ping", lambda timeout=None: "Longhorn v1.7.2 at http://longhorn-backend:9500")
    monkeypatch.setattr(store, "load", lambda: [])
    text = client.get("/readyz").content.decode()
    for secret in ("v1.20.2", "v1.7.2", "longhorn-backend", "9500", "detail"):
        assert secret not in text


def test_readyz_logs_the_details_once_per_state_change(client, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="soteria_site.health")
    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")
    state = {"down": True}

    def ping(timeout=None):
        if state["down"]:
            raise UpstreamUnavailable("longhorn",
                                      "Longhorn manager at http://lh:9500 is unreachable: connection refused")

    monkeypatch.setattr(longhorn, "ping", ping)
    for _ in range(3):
        assert client.get("/readyz").status_code == 503
    failures = [m for m in _readiness_log(caplog) if "longhorn failed" in m]
    assert failures == ["readiness: longhorn failed (longhorn_unavailable): "
                        "Longhorn manager at http://lh:9500 is unreachable: connection refused"]
    assert [m for m in _readiness_log(caplog) if m.startswith("readiness: kubernetes")] == [
        "readiness: kubernetes answers (Kubernetes v1.20.2)"]

    caplog.clear()
    state["down"] = False
    for _ in range(2):
        assert client.get("/readyz").status_code == 200
    assert [m for m in _readiness_log(caplog) if "longhorn" in m] == ["readiness: longhorn answers again"]

    caplog.clear()
    state["down"] = True
    client.get("/readyz")
    client.get("/readyz")
    assert len([m for m in _readiness_log(caplog) if "longhorn failed" in m]) == 1


def test_readyz_logs_where_the_unreadable_policy_secret_is(client, monkeypatch, caplog):
    from policies import store

    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")
    monkeypatch.setattr(longhorn, "ping", lambda timeout=None: None)

    def unreadable():
        raise store.PolicyStoreUnreadable("Secret soteria/soteria-policies key policies.json is not valid JSON")

    monkeypatch.setattr(store, "load", unreadable)
    client.get("/readyz")
    client.get("/readyz")
    assert [m for m in _readiness_log(caplog) if "policies" in m] == [
        "readiness: policies failed (policy_store_unreadable): "
        "Secret soteria/soteria-policies key policies.json is not valid JSON"]
