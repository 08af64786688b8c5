"""The contract's request counters count every outcome once, by its result (docs/metrics.md):
API refusals before the service (invalid body, namespace out of scope) and the services'
outcomes alike, and the console's requests too."""

import ipaddress

import pytest
import time_machine

from backups.metrics import BACKUP_REQUESTS, NAMESPACE_BACKUP_REQUESTS, NAMESPACE_RESTORE_REQUESTS, RESTORE_REQUESTS
from soteria_site.core import kubernetes
from soteria_site.core.errors import UpstreamError
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db(transaction=True)  # batches run in threads

RESULTS = ("success", "dry_run", "conflict", "rejected", "denied", "error", "partial")


class Counts:
    """What a test changed in each request counter: {(counter name, result): delta}."""

    COUNTERS = {"backup": BACKUP_REQUESTS, "restore": RESTORE_REQUESTS, "namespace_backup": NAMESPACE_BACKUP_REQUESTS,
                "namespace_restore": NAMESPACE_RESTORE_REQUESTS}

    def __init__(self):
        self.before = self._now()

    def _now(self) -> dict:
        return {(name, result): counter.labels("longhorn", result)._value.get()
                for name, counter in self.COUNTERS.items() for result in RESULTS}

    def delta(self) -> dict:
        now = self._now()
        return {key: now[key] - self.before[key] for key in now if now[key] != self.before[key]}


@pytest.fixture
def counts():
    with time_machine.travel(NOW, tick=False):
        yield Counts()


def _post(client, path, body, **headers):
    return client.post(path, body, content_type="application/json", **headers)


def test_a_backup_its_dry_run_and_a_conflict_are_counted_by_result(client, cluster, counts):
    cluster.add_pvc("ai", "db")
    assert _post(client, "/v1/backup", {"namespace": "ai", "pvc": "db", "dry_run": True}).status_code == 200
    assert _post(client, "/v1/backup", {"namespace": "ai", "pvc": "db"}).status_code == 200
    assert _post(client, "/v1/backup", {"namespace": "ai", "pvc": "db"}).status_code == 409  # still running
    assert counts.delta() == {("backup", "success"): 1, ("backup", "dry_run"): 1, ("backup", "conflict"): 1}


@pytest.mark.parametrize("body,status", [
    ({"namespace": "ai"}, 400),                              # refused by the serializer
    ({"namespace": "ai", "pvc": "db", "extra": 1}, 400),     # unknown field
    ({"namespace": "ai", "pvc": "nope"}, 404),               # refused by the service
])
def test_a_refused_backup_is_counted_once_as_rejected(client, cluster, counts, body, status):
    cluster.add_pvc("ai", "db")
    assert _post(client, "/v1/backup", body).status_code == status
    assert counts.delta() == {("backup", "rejected"): 1}


def test_a_body_that_is_not_json_is_counted_as_rejected(client, cluster, counts):
    assert _post(client, "/v1/restores", "{not json").status_code == 400
    assert counts.delta() == {("restore", "rejected"): 1}


def test_a_restore_onto_an_existing_pvc_is_counted_as_conflict(client, cluster, counts):
    cluster.add_pvc("ai", "db", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "taken")
    response = _post(client, "/v1/restores", {"namespace": "ai", "pvc": "db", "target_pvc": "taken"})
    assert response.status_code == 409
    assert counts.delta() == {("restore", "conflict"): 1}


def test_a_namespace_backup_counts_the_batch_and_each_pvc(client, cluster, counts):
    cluster.add_pvc("ai", "one")
    cluster.add_pvc("ai", "two")
    cluster.add_pvc("ai", "pending", bound=False)  # skipped: neither a PVC request nor a failure
    assert _post(client, "/v1/backup/namespace", {"namespace": "ai"}).status_code == 200
    assert counts.delta() == {("namespace_backup", "success"): 1, ("backup", "success"): 2}


def test_a_namespace_restore_refused_as_a_whole_is_counted_as_rejected(client, cluster, counts):
    cluster.add_pvc("ai", "db", backups=[("Completed", 1, None)])
    # Into its own namespace without a prefix: every target would be the source itself.
    assert _post(client, "/v1/restores/namespace", {"namespace": "ai"}).status_code == 400
    assert _post(client, "/v1/restores/namespace", {"namespace": "nowhere", "target_namespace": "ai"}).status_code \
        == 404
    assert counts.delta() == {("namespace_restore", "rejected"): 2}


def test_a_queued_namespace_restore_counts_each_pvc_as_the_worker_restores_it(client, cluster, counts, monkeypatch):
    cluster.add_pvc("ai", "db", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "logs", backups=[("Completed", 1, None)])
    cluster.namespaces.add("ai-restore")
    create_pvc = kubernetes.create_pvc

    def failing_for_logs(namespace, body):
        if body["metadata"]["name"] == "logs":
            raise UpstreamError("kubernetes", "the API server fell over")
        return create_pvc(namespace, body)

    monkeypatch.setattr(kubernetes, "create_pvc", failing_for_logs)
    response = _post(client, "/v1/restores/namespace", {"namespace": "ai", "target_namespace": "ai-restore"})
    assert response.status_code == 200, response.content
    assert response.json()["totals"] == {"total": 2, "planned": 0, "queued": 2, "restored": 0, "skipped": 0,
                                         "failed": 0}
    # The request queued both (success); the worker then restored one and failed the other.
    assert counts.delta() == {("namespace_restore", "success"): 1, ("restore", "success"): 1,
                              ("restore", "error"): 1}


def test_a_namespace_out_of_scope_is_counted_as_denied(client, cluster, counts, settings):
    settings.SOTERIA_AUTH_REQUIRED = True
    settings.SOTERIA_ALLOWED_GROUPS = ["admin"]
    settings.SOTERIA_BACKUP_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_RESTORE_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    cluster.add_pvc("media", "photos", backups=[("Completed", 1, None)])
    scoped = {"HTTP_X_AUTH_REQUEST_USER": "erin", "HTTP_X_AUTH_REQUEST_GROUPS": "team-ai"}
    assert _post(client, "/v1/backup", {"namespace": "media", "pvc": "photos"}, **scoped).status_code == 403
    assert _post(client, "/v1/backup/namespace", {"namespace": "media"}, **scoped).status_code == 403
    assert _post(client, "/v1/restores", {"namespace": "media", "pvc": "photos", "target_pvc": "x"},
                 **scoped).status_code == 403
    assert counts.delta() == {("backup", "denied"): 1, ("namespace_backup", "denied"): 1,
                              ("restore", "denied"): 1}


def test_console_requests_are_counted_by_the_same_services(client, cluster, counts):
    cluster.add_pvc("ai", "db")
    plan = client.post("/pvc/ai/db/backup", {"tags": ""})  # the plan is a dry run
    client.post("/pvc/ai/nope/backup", {"tags": ""})
    assert counts.delta() == {("backup", "dry_run"): 1, ("backup", "rejected"): 1}
    client.post("/pvc/ai/db/backup", {"tags": "", "confirm": "on", "digest": plan.context["digest"]})
    # The confirmation plans again, then backs up.
    assert counts.delta() == {("backup", "dry_run"): 2, ("backup", "rejected"): 1, ("backup", "success"): 1}
