"""POST and GET /v1/restore-drills and the inventory's drill fields, through Django's HTTP
stack at the client seam, with auth off and with the cast's scoped identities."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
import time_machine

from backups.services import drill_records, drills
from tests.support import cast
from tests.support.cast import CLIENT_TOKEN
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen")]


def post(client, body, identity=()):
    return client.post("/v1/restore-drills", body, content_type="application/json", **meta(identity))


def meta(identity) -> dict:
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in identity}


@pytest.fixture
def world(cluster, settings, monkeypatch):
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    settings.SOTERIA_DRILL_NAMESPACE = "soteria-drills"
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, "snap-new")])
    cluster.add_pvc("ai", "vector-db", backups=[("Completed", 3, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    monkeypatch.setattr(drills, "_collect_manifests", lambda namespace, pvc: None)
    cluster.enqueued = []
    monkeypatch.setattr(drills, "_enqueue", lambda p: cluster.enqueued.append(p.id))
    return cluster


@pytest.fixture
def auth_on(settings):
    settings.SOTERIA_AUTH_REQUIRED = True
    settings.SOTERIA_ALLOWED_GROUPS = ["admin"]
    settings.SOTERIA_READONLY_GROUPS = ["viewers"]
    settings.SOTERIA_BACKUP_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_RESTORE_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_AUTH_BEARER_TOKENS = [("ci", CLIENT_TOKEN)]
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]  # the test client's address


def ended(namespace: str, pvc: str, result: str, minutes: int) -> str:
    """A drill of the PVC started `minutes` after NOW and ended with `result`."""
    with time_machine.travel(NOW + timedelta(minutes=minutes), tick=False):
        planned = drills.start(namespace, pvc, "alice")
        drills.finish(namespace, pvc, planned.id, result=result, reason=f"it {result}")
        drills._release(namespace, pvc, planned.id, 0)
    return planned.id


def test_post_starts_a_drill_202(client, world):
    response = post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["result"] == "running" and body["id"] in world.enqueued and body["dry_run"] is False
    assert body["backup"] == "backup-pvc-ai-llm-cache-0" and body["manifest"] is False and "plan" not in body
    assert body["scratch_pvc"].startswith("soteria-drill-llm-cache-") and body["drill_namespace"] == "soteria-drills"
    assert body["requested_by"] == "anonymous"
    [drill] = client.get("/v1/restore-drills?namespace=ai&pvc=llm-cache").json()["drills"]
    assert drill["id"] == body["id"] and drill["result"] == "running" and drill["finished_at"] is None


def test_a_dry_run_answers_200_with_the_plan_and_starts_nothing(client, world):
    response = post(client, {"namespace": "ai", "pvc": "llm-cache", "dry_run": True})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["result"] == "planned" and body["dry_run"] is True
    assert [c["call"] for c in body["plan"]] == ["longhorn.createVolume", "kubernetes.createPersistentVolume",
                                                  "kubernetes.createPersistentVolumeClaim", "kubernetes.createJob",
                                                  "cleanup"]
    assert world.enqueued == [] and world.leases == {} and world.mutating_calls == {}
    assert client.get("/v1/restore-drills").json() == {"drills": []}


@pytest.mark.parametrize("body, field", [
    ({"namespace": "Not_A_Name", "pvc": "llm-cache"}, "namespace"),
    ({"namespace": "ai", "pvc": "UPPER/case"}, "pvc"),
    ({"namespace": "ai"}, "pvc"),
    ({"namespace": "ai", "pvc": "llm-cache", "force": True}, "force"),
    ({"namespace": "ai", "pvc": "llm-cache", "dry_run": "yes"}, "dry_run"),
    ({"namespace": "ai", "pvc": 7}, "pvc"),
])
def test_an_invalid_body_is_400_naming_the_field(client, world, body, field):
    response = post(client, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_input" and response.json()["field"] == field
    assert world.enqueued == [] and world.leases == {}


def test_a_body_that_is_not_an_object_is_400(client, world):
    assert post(client, ["ai", "llm-cache"]).status_code == 400
    assert client.post("/v1/restore-drills", "{not json", content_type="application/json").status_code == 400


def test_an_unknown_pvc_is_404(client, world):
    response = post(client, {"namespace": "ai", "pvc": "nope"})
    assert response.status_code == 404 and world.leases == {}


def test_a_second_drill_of_a_pvc_is_409_naming_the_running_one(client, world):
    first = post(client, {"namespace": "ai", "pvc": "llm-cache"}).json()
    response = post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 409
    assert response.json()["error"] == "drill_in_progress" and response.json()["running"] == first["id"]


def test_with_every_slot_taken_another_pvc_is_429(client, world, settings):
    settings.SOTERIA_DRILL_MAX_CONCURRENT = 1
    assert post(client, {"namespace": "ai", "pvc": "llm-cache"}).status_code == 202
    response = post(client, {"namespace": "ai", "pvc": "vector-db"})
    assert response.status_code == 429 and response.json()["error"] == "drill_capacity"
    assert response.json()["limit"] == 1


def test_get_lists_a_pvcs_drills_newest_first(client, world):
    first = ended("ai", "llm-cache", "passed", 0)
    second = ended("ai", "llm-cache", "failed", 10)
    other = ended("ai", "vector-db", "passed", 5)
    ended("media", "photos", "passed", 20)
    one = client.get("/v1/restore-drills?namespace=ai&pvc=llm-cache").json()["drills"]
    assert [(d["id"], d["result"]) for d in one] == [(second, "failed"), (first, "passed")]
    assert one[0]["reason"] == "it failed" and one[0]["finished_at"] == "2026-04-12T15:40:00Z"
    assert [d["id"] for d in client.get("/v1/restore-drills?namespace=ai").json()["drills"]] == [second, other, first]
    assert len(client.get("/v1/restore-drills").json()["drills"]) == 4


@pytest.mark.parametrize("query", ["?namespace=-bad", "?namespace=ai&pvc=UPPER", "?pvc=llm-cache"])
def test_get_with_an_invalid_query_is_400(client, world, query):
    assert client.get(f"/v1/restore-drills{query}").status_code == 400


def test_a_scoped_identity_sees_only_its_namespaces_drills(client, world, auth_on):
    mine = ended("ai", "llm-cache", "passed", 0)
    ended("media", "photos", "failed", 5)
    listed = client.get("/v1/restore-drills", **meta(cast.SCOPED))
    assert listed.status_code == 200 and [d["id"] for d in listed.json()["drills"]] == [mine]
    assert client.get("/v1/restore-drills?namespace=media", **meta(cast.SCOPED)).status_code == 403
    assert client.get("/v1/restore-drills?namespace=media&pvc=photos", **meta(cast.SCOPED)).status_code == 403
    assert len(client.get("/v1/restore-drills", **meta(cast.VIEWER)).json()["drills"]) == 2


def test_a_scoped_identity_may_drill_only_in_its_namespaces(client, world, auth_on):
    assert post(client, {"namespace": "media", "pvc": "photos"}, cast.SCOPED).status_code == 403
    response = post(client, {"namespace": "ai", "pvc": "llm-cache"}, cast.SCOPED)
    assert response.status_code == 202 and response.json()["requested_by"] == "erin"
    assert len(world.enqueued) == 1


def test_a_viewer_may_not_start_a_drill(client, world, auth_on):
    response = post(client, {"namespace": "ai", "pvc": "llm-cache"}, cast.VIEWER)
    assert response.status_code == 403 and world.enqueued == [] and world.leases == {}
    assert post(client, {"namespace": "ai", "pvc": "llm-cache"}, cast.OUTSIDER).status_code == 403
    assert client.get("/v1/restore-drills", **meta(cast.OUTSIDER)).status_code == 403
    assert post(client, {"namespace": "ai", "pvc": "llm-cache"}).status_code == 401


def test_the_inventory_shows_when_a_drill_last_passed_and_the_newest_result(client, world):
    ended("ai", "llm-cache", "passed", 0)
    ended("ai", "llm-cache", "failed", 10)
    ended("ai", "vector-db", "unverified", 5)
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        items = client.get("/v1/inventory?namespace=ai").json()
    rows = {i["pvc"]: i for ns in items["namespaces"] for i in ns["pvcs"]}
    assert rows["llm-cache"]["last_verified_at"] == "2026-04-12T15:30:00Z"
    assert rows["llm-cache"]["verify_result"] == "failed"
    assert rows["vector-db"]["last_verified_at"] is None and rows["vector-db"]["verify_result"] == "unverified"
    assert drill_records.load("ai", "vector-db").last_passed() is None
