"""/healthz and /readyz: public, quick, and honest about what is down."""

import pytest

from backups.clients import kubernetes, longhorn
from backups.errors import UpstreamTimeout, UpstreamUnavailable


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
    assert response.json()["checks"]["kubernetes"] == {"ok": True, "detail": "Kubernetes v1.20.2"}
    assert response.json()["checks"]["longhorn"]["ok"] is True


def test_readyz_is_503_naming_what_failed(client, monkeypatch):
    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")

    def down(timeout=None):
        raise UpstreamUnavailable("longhorn", "Longhorn manager at http://lh is unreachable: connection refused")

    monkeypatch.setattr(longhorn, "ping", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["longhorn"]
    assert body["checks"]["longhorn"]["error"] == "longhorn_unavailable"
    assert "connection refused" in body["checks"]["longhorn"]["detail"]


def test_readyz_skips_longhorn_with_the_restic_driver(client, monkeypatch, settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"

    def slow(timeout=None):
        raise UpstreamTimeout("kubernetes", "Kubernetes API did not answer version in time")

    monkeypatch.setattr(kubernetes, "server_version", slow)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()["checks"]) == {"kubernetes"}


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
    assert response.json()["policies"] == {"ok": False, "error": "policy_store_unreadable",
                                           "detail": "Secret soteria/soteria-policies key policies.json is not valid JSON"}
