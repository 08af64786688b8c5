"""The Kubernetes API fails during a restore, a policy write and a namespace batch: Soteria
reaches the sandbox's apiserver through the fault proxy (sandbox/fault_proxy.py), which
answers 409 or 500, drops the connection, or carries a request out and loses its answer, for
chosen requests. Nothing is lost, retries stop, per-PVC results say what happened, and a
failed restore leaves nothing behind (counted by Soteria's labels)."""

from __future__ import annotations

import pytest

from backups import tasks
from backups.services import restore
from sandbox import faults, seed
from sandbox.fault_proxy import KubeFaultProxy
from tests.support.http import post
from tests.support.kube import kube
from tests.support.kube_faults import assert_nothing_left, soteria_objects, through_proxy
from tests.support.reliability import size
from tests.support.restic import local_pvc

pytestmark = pytest.mark.django_db(transaction=True)
SEEDED = [{"state": "Completed", "created": "2026-11-01T00:00:00Z", "size": "1048576", "snapshotName": "snap-0"}]
PVS = "/api/v1/persistentvolumes"
CLAIMS = "/api/v1/namespaces/{}/persistentvolumeclaims"
MESSAGE = "sandbox: etcdserver: request timed out"


@pytest.fixture
def api(live, settings, tmp_path):
    """Soteria's Kubernetes API through a fault proxy."""
    settings.SOTERIA_UPSTREAM_TIMEOUT_SECONDS = 2.0
    proxy = KubeFaultProxy(live)
    through_proxy(settings, proxy, tmp_path)
    yield proxy
    proxy.close()


# --- A restore -----------------------------------------------------------------------------------
# (method, path, mode, status the proxy answers, status Soteria answers, its error code)
RESTORE_CASES = size(
    ci=[("POST", PVS, "status", 500, 502, "kubernetes_error"),
        ("POST", CLAIMS, "lost", None, 503, "kubernetes_unavailable"),
        ("POST", CLAIMS, "status", 409, 409, "target_exists")],
    full=[("POST", PVS, "status", 500, 502, "kubernetes_error"),
          ("POST", PVS, "drop", None, 503, "kubernetes_unavailable"),
          ("POST", PVS, "lost", None, 503, "kubernetes_unavailable"),
          ("POST", PVS, "hang", None, 504, "kubernetes_timeout"),
          ("POST", CLAIMS, "status", 500, 502, "kubernetes_error"),
          ("POST", CLAIMS, "status", 409, 409, "target_exists"),
          ("POST", CLAIMS, "drop", None, 503, "kubernetes_unavailable"),
          ("POST", CLAIMS, "lost", None, 503, "kubernetes_unavailable"),
          ("POST", CLAIMS, "hang", None, 504, "kubernetes_timeout")])


def restore_id(case) -> str:
    return f"{'pv' if case[1] == PVS else 'pvc'}-{case[2]}-{case[3] or ''}".rstrip("-")


@pytest.mark.parametrize("case", RESTORE_CASES, ids=restore_id)
def test_a_longhorn_restore_under_a_kubernetes_fault_cleans_up(client, live, api, case):
    method, path, mode, answer, expected, code = case
    namespace, pvc = "rk-restore", restore_id(case)
    seed.make_pvc(live, namespace, pvc, backups=SEEDED)
    before = soteria_objects(live)
    if answer == 409:  # another writer made the target claim first
        api.add(method, path.format(namespace), mode, status=409, reason="AlreadyExists",
                message=f'persistentvolumeclaims "{pvc}-r" already exists')
    else:
        api.add(method, path.format(namespace), mode, status=answer or 500, message=MESSAGE)
    response = post(client, "/v1/restores", {"namespace": namespace, "pvc": pvc, "target_pvc": f"{pvc}-r"})
    assert response.status_code == expected, response.content
    body = response.json()
    assert body["error"] == code and body["cleanup"]["succeeded"] is True, body
    if mode == "status" and answer != 409:
        assert MESSAGE in body["detail"]
    api.clear()
    assert_nothing_left(live, before)


RESTIC_CASES = size(ci=[("restore", "POST", CLAIMS, "lost"), ("backup", "POST", "/apis/batch/v1/namespaces/{}/jobs",
                                                                 "lost")],
                    full=[("restore", "POST", CLAIMS, "lost"), ("restore", "POST", "/apis/batch/v1/namespaces/{}/jobs",
                                                                "lost"),
                          ("restore", "POST", "/api/v1/namespaces/{}/secrets", "lost"),
                          ("backup", "POST", "/apis/batch/v1/namespaces/{}/jobs", "lost"),
                          ("backup", "POST", "/api/v1/namespaces/{}/secrets", "status")])


@pytest.mark.parametrize("case", RESTIC_CASES, ids=lambda c: f"{c[0]}-{c[2].rsplit('/', 1)[1]}-{c[3]}")
def test_a_restic_job_whose_create_goes_unanswered_is_not_left_behind(client, live, api, settings, case):
    """The seed's media/transcode-cache has a restic snapshot in the sandbox's repository."""
    operation, method, path, mode = case
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    before = soteria_objects(live)
    api.add(method, path.format("media"), mode, message=MESSAGE)
    if operation == "restore":
        target = f"rk-{path.rsplit('/', 1)[1]}-{mode}"
        response = post(client, "/v1/restores", {"namespace": "media", "pvc": "transcode-cache", "target_pvc": target})
    else:
        response = post(client, "/v1/backup", {"namespace": "media", "pvc": "transcode-cache"})
    assert response.status_code == (503 if mode == "lost" else 502), response.content
    api.clear()
    assert_nothing_left(live, before)


# --- A policy write ----------------------------------------------------------------------------------
POLICY_SECRET = "/api/v1/namespaces/soteria/secrets/{}"


@pytest.fixture
def policies(client, api, settings, request):
    """A policy Secret of the test's own, holding one policy already."""
    name = f"rk-policies-{request.node.name.split('[')[-1].rstrip(']').replace('_', '-').lower()[:30]}".rstrip("-")
    settings.SOTERIA_POLICY_SECRET_NAME = name
    assert post(client, "/v1/policies", {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 6}).status_code == 201
    api.forget()
    return POLICY_SECRET.format(name)


def policy_ids(client) -> set[str]:
    response = client.get("/v1/policies")
    assert response.status_code == 200, response.content
    return {p["id"] for p in response.json()["policies"]}


def test_a_policy_write_retries_conflicts_and_loses_nothing(client, api, policies):
    api.add("PUT", policies, status=409, count=3, message="the object has been modified")
    response = post(client, "/v1/policies", {"namespace": "ai", "pvc": "notebooks", "interval_hours": 12})
    assert response.status_code == 201, response.content
    assert api.count("PUT", policies) == 4  # three refused, the fourth written
    assert policy_ids(client) == {"ai.llm-cache", "ai.notebooks"}


def test_a_policy_write_that_always_conflicts_stops_and_changes_nothing(client, api, policies):
    from policies import store

    api.add("PUT", policies, status=409, count=0, message="the object has been modified")
    response = post(client, "/v1/policies", {"namespace": "ai", "pvc": "notebooks", "interval_hours": 12})
    assert response.status_code == 409 and response.json()["error"] == "policy_conflict", response.content
    assert api.count("PUT", policies) == store.ATTEMPTS  # bounded
    api.clear()
    assert policy_ids(client) == {"ai.llm-cache"}


# A dropped PUT or GET is sent again (both are idempotent, and the PUT is a compare-and-swap):
# a PUT whose answer was lost meets its own write (409), so the update is read and made again
# and answers 200, "updated".
POLICY_FAULTS = size(ci=[("PUT", "status", 500, 502), ("PUT", "lost", None, 200), ("GET", "drop", None, 201)],
                     full=[("PUT", "status", 500, 502), ("PUT", "status", 503, 503), ("PUT", "drop", None, 201),
                           ("PUT", "lost", None, 200), ("PUT", "hang", None, 504), ("GET", "drop", None, 201),
                           ("GET", "status", 500, 502)])


@pytest.mark.parametrize("case", POLICY_FAULTS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2] or ''}".rstrip("-"))
def test_a_policy_write_under_a_kubernetes_fault_loses_nothing(client, api, policies, case):
    method, mode, answer, expected = case
    api.add(method, policies, mode, status=answer or 500, message=MESSAGE)
    response = post(client, "/v1/policies", {"namespace": "ai", "pvc": "notebooks", "interval_hours": 12})
    assert response.status_code == expected, response.content
    api.clear()
    written = policy_ids(client)
    assert written == ({"ai.llm-cache"} if expected >= 500 else {"ai.llm-cache", "ai.notebooks"})
    if mode == "lost":
        assert api.count("PUT", policies) == 3  # lost, refused as stale, written again
    response = post(client, "/v1/policies", {"namespace": "ai", "pvc": "notebooks", "interval_hours": 12})
    assert response.status_code in (200, 201), response.content
    assert policy_ids(client) == {"ai.llm-cache", "ai.notebooks"}


# --- Namespace batches -------------------------------------------------------------------------------
def test_a_namespace_backup_goes_on_when_events_and_manifest_jobs_fail(client, live, api):
    for i in range(3):
        seed.make_pvc(live, "rk-batch", f"data-{i}")
    api.add("POST", "/api/v1/namespaces/rk-batch/events", status=500, count=0, message=MESSAGE)
    api.add("POST", "/apis/batch/v1/namespaces/rk-batch/jobs", status=500, count=0, message=MESSAGE)
    response = post(client, "/v1/backup/namespace", {"namespace": "rk-batch"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert {r["pvc"]: r["status"] for r in body["results"]} == {f"data-{i}": "success" for i in range(3)}, body
    assert api.count("POST", "/apis/batch/v1/namespaces/rk-batch/jobs") == 3


def test_a_namespace_backup_whose_claims_cannot_be_listed_starts_nothing(client, live, api):
    seed.make_pvc(live, "rk-nolist", "data")
    faults.reset_calls(live)
    api.add("GET", CLAIMS.format("rk-nolist"), status=500, count=0, message=MESSAGE)
    response = post(client, "/v1/backup/namespace", {"namespace": "rk-nolist"})
    assert response.status_code == 502 and MESSAGE in response.json()["detail"], response.content
    assert not {k for k in faults.calls(live) if k.startswith("snapshot")}


def test_a_restic_namespace_backup_says_which_claim_failed_and_leaves_no_job(client, live, api, settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    for name in ("one", "two"):
        local_pvc(live, "rk-restic", name)
    before = soteria_objects(live)
    api.add("POST", "/api/v1/namespaces/rk-restic/secrets", status=500, count=1, message=MESSAGE)
    response = post(client, "/v1/backup/namespace", {"namespace": "rk-restic"})
    assert response.status_code == 200, response.content
    results = {r["pvc"]: r for r in response.json()["results"]}
    [failed] = [r for r in results.values() if r["status"] == "failed"]
    [succeeded] = [r for r in results.values() if r["status"] == "success"]
    assert failed["error"] == "kubernetes_error" and MESSAGE in failed["detail"] and "deleted its Job" in failed["detail"]
    api.clear()
    # The successful claim's Job and its Secret copy; nothing of the failed one's.
    allowed = {("job", f"rk-restic/{succeeded['backup']}"), ("secret", f"rk-restic/{succeeded['backup']}")}
    assert_nothing_left(live, before, allowed=allowed.__contains__)


def test_a_namespace_restore_restores_the_others_when_one_claim_fails(client, live, api, monkeypatch):
    for i in range(3):
        seed.make_pvc(live, "rk-nsr", f"data-{i}", backups=SEEDED)
    seed.ensure_basics(live, ["rk-nsr-to"])
    outcomes = []
    monkeypatch.setattr(restore, "_enqueue", lambda *task: outcomes.append(tasks.restore_planned(*task)))
    before = soteria_objects(live)
    api.add("POST", CLAIMS.format("rk-nsr-to"), status=500, count=1, message=MESSAGE)
    response = post(client, "/v1/restores/namespace", {"namespace": "rk-nsr", "target_namespace": "rk-nsr-to"})
    assert response.status_code == 200, response.content
    assert {r["status"] for r in response.json()["results"]} == {"queued"}
    [result] = outcomes
    assert len(result["restored"]) == 2 and len(result["failed"]) == 1, result
    [(target, why)] = result["failed"].items()
    assert why.startswith("kubernetes_error:") and MESSAGE in why and "cleanup succeeded" in why
    api.clear()
    restored = {f"rk-nsr-to/{name.split('/')[1]}" for name in result["restored"]}
    core = kube(live)
    volumes = {core.read_namespaced_persistent_volume_claim(t.split("/")[1], "rk-nsr-to").spec.volume_name
               for t in restored}
    allowed = {("pvc", t) for t in restored} | {("pv", v) for v in volumes} | {("volume", v) for v in volumes}
    assert_nothing_left(live, before, allowed=allowed.__contains__)
    failed_source = target.split("/")[1]
    events = [e for e in core.list_namespaced_event("rk-nsr").items
              if e.involved_object.name == failed_source and e.reason == "RestoreFailed"]
    assert events and MESSAGE in events[0].message


# --- The inventory ----------------------------------------------------------------------------------
# It reads Longhorn's volumes from their custom resources, through the Kubernetes API.
INVENTORY_FAULTS = size(ci=[("status", 500, 502), ("hang", None, 504)],
                        full=[("status", 500, 502), ("status", 503, 503), ("hang", None, 504), ("drop", None, 200)])


@pytest.mark.parametrize("case", INVENTORY_FAULTS, ids=lambda c: f"{c[0]}-{c[1] or ''}".rstrip("-"))
def test_the_inventory_under_a_kubernetes_fault_answers_clearly(client, live, api, case):
    mode, answer, expected = case
    api.add("GET", "/apis/longhorn.io/[^/]+/namespaces/[^/]+/volumes", mode, status=answer or 500, count=0 if
            mode != "drop" else 1, message=MESSAGE)
    response = client.get("/v1/inventory?namespace=ai")
    assert response.status_code == expected, response.content
    if expected != 200:
        assert response.json()["error"].startswith("kubernetes_"), response.content
    api.clear()
    response = client.get("/v1/inventory?namespace=ai")
    assert response.status_code == 200 and response.json()["namespaces"][0]["pvcs"], response.content
