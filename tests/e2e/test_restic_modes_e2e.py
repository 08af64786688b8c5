"""Issue 14 end to end, beyond one PVC: both drivers at once (SOTERIA_BACKUP_DRIVER=auto), the
inventory's constant cost and metrics, dry runs, namespace batches and policies with restic."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from soteria_site.core.metrics import UPSTREAM_REQUESTS
from tests.support.http import post
from tests.support.polling import wait_for
from tests.support.restic import local_pvc

from .test_restic_e2e import JOB_SECONDS, backed_up, backups, batch, restored

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def auto_live(live, settings):
    settings.SOTERIA_BACKUP_DRIVER = "auto"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    return live


def _rows(client, namespace):
    body = client.get(f"/v1/inventory?namespace={namespace}").json()
    return {p["pvc"]: p for ns in body["namespaces"] for p in ns["pvcs"]}


def _count(operation: str, system: str) -> float:
    return UPSTREAM_REQUESTS.labels(system, operation, "ok")._value.get()


def test_auto_uses_longhorn_for_longhorn_volumes_and_restic_for_the_rest(client, auto_live):
    rows = _rows(client, "media")
    assert rows["photos"]["driver"] == "longhorn" and rows["transcode-cache"]["driver"] == "restic"
    assert rows["transcode-cache"]["health_reason"] == "never backed up"
    body, snapshot = backed_up(client, "media", "transcode-cache")
    assert body["driver"] == "restic" and body["volume"] == rows["transcode-cache"]["volume"]
    longhorn = post(client, "/v1/backup", {"namespace": "media", "pvc": "photos", "dry_run": True}).json()
    assert longhorn["driver"] == "longhorn" and longhorn["plan"][0]["call"] == "snapshotCRCreate"
    rows = _rows(client, "media")
    assert rows["transcode-cache"]["backup_count"] == 1 and rows["transcode-cache"]["health_reason"] == "fresh"
    assert rows["photos"]["driver"] == "longhorn"

    from backups.services import inventory_cache

    assert inventory_cache.refresh() is not None
    metrics = client.get("/metrics").content.decode()
    assert 'pvc_backup_count{driver="restic",namespace="media",pvc="transcode-cache"' in metrics
    assert 'pvc_backup_health{driver="restic",namespace="media",pvc="transcode-cache"' in metrics
    assert 'pvc_backup_count{driver="longhorn",namespace="media",pvc="photos"' in metrics


def test_auto_backs_up_and_restores_a_longhorn_and_a_local_pvc_through_one_soteria(client, auto_live):
    """One Soteria, both drivers: a Longhorn claim and a local (non-Longhorn) claim of one
    namespace are each backed up for real and restored into new claims byte for byte."""
    from sandbox import seed
    from tests.support.restic import tree

    files = {"README.txt": "longhorn side\n", "deep/a/b.txt": "nested\n"}
    volume = seed.make_pvc(auto_live, "e2e-both", "on-longhorn", files=files)
    local = local_pvc(auto_live, "e2e-both", "on-local", marker="local side")
    rows = _rows(client, "e2e-both")
    assert (rows["on-longhorn"]["driver"], rows["on-local"]["driver"]) == ("longhorn", "restic")

    assert post(client, "/v1/backup", {"namespace": "e2e-both", "pvc": "on-longhorn"}).json()["driver"] == "longhorn"
    wait_for(lambda: [b for b in backups(client, "e2e-both", "on-longhorn") if b["state"] == "Completed"],
             JOB_SECONDS, what="the Longhorn backup")
    body, _ = backed_up(client, "e2e-both", "on-local")
    assert body["driver"] == "restic"

    longhorn_restore = post(client, "/v1/restores", {"namespace": "e2e-both", "pvc": "on-longhorn",
                                                     "target_pvc": "on-longhorn-back"})
    assert longhorn_restore.status_code == 200 and longhorn_restore.json()["driver"] == "longhorn"
    restic_restore, restic_root = restored(client, auto_live, "e2e-both", "on-local", "on-local-back")
    assert restic_restore["driver"] == "restic"

    def both_done():
        rows = {r["pvc"]: r["state"] for r in client.get("/v1/restores?namespace=e2e-both").json()["restores"]}
        assert "failed" not in rows.values(), rows
        return rows.get("on-longhorn-back") == "done" and rows.get("on-local-back") == "done"
    wait_for(both_done, JOB_SECONDS, what="both restores", interval=0.5)
    assert tree(restic_root) == tree(local)
    longhorn_dir = auto_live.longhorn_volumes_dir
    assert tree(longhorn_dir / longhorn_restore.json()["volume"]) == tree(longhorn_dir / volume)


def test_the_inventory_costs_one_restic_run_whatever_the_number_of_pvcs(client, auto_live):
    for name in ("c1", "c2", "c3"):
        local_pvc(auto_live, "e2e-cost", name)
    backed_up(client, "e2e-cost", "c1")
    before = (_count("snapshots", "restic"), _count("jobs.list", "kubernetes"))
    rows = _rows(client, "e2e-cost")
    after = (_count("snapshots", "restic"), _count("jobs.list", "kubernetes"))
    assert [rows[n]["backup_count"] for n in ("c1", "c2", "c3")] == [1, 0, 0]
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    body = client.get("/v1/inventory").json()  # every namespace: still one run
    assert body["namespaces"] and _count("snapshots", "restic") - after[0] == 1


def test_dry_runs_create_no_job(client, live, settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    local_pvc(live, "e2e-dry", "one")
    local_pvc(live, "e2e-dry", "two")
    single = post(client, "/v1/backup", {"namespace": "e2e-dry", "pvc": "one", "dry_run": True})
    assert single.status_code == 200, single.content
    assert [c["call"] for c in single.json()["plan"]] == ["restic.initIfMissing", "kubernetes.createJob",
                                                          "kubernetes.createSecret"]
    batch_plan = post(client, "/v1/backup/namespace", {"namespace": "e2e-dry", "dry_run": True}).json()
    assert batch_plan["totals"]["planned"] == 2
    assert batch(live).list_namespaced_job("e2e-dry").items == []


def test_a_namespace_batch_backs_up_every_pvc_with_restic(client, live, settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    for name in ("a", "b", "c"):
        local_pvc(live, "e2e-rbatch", name)
    response = post(client, "/v1/backup/namespace", {"namespace": "e2e-rbatch", "tags": ["before-upgrade"]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["driver"] == "restic" and body["totals"]["success"] == 3
    for name in ("a", "b", "c"):
        wait_for(lambda n=name: [b for b in backups(client, "e2e-rbatch", n) if b["state"] == "Completed"
                                 and b["labels"].get("before-upgrade") == "true"], JOB_SECONDS,
                 what=f"snapshot of {name}", interval=0.5)


def test_policy_backups_and_retention_never_forget_the_newest(client, live, settings, request):
    from policies import evaluate, services
    from tests.support.kube import forget_policy_lease

    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    settings.SOTERIA_POLICY_SECRET_NAME = f"e2e-policies-restic-{uuid.uuid4().hex[:6]}"
    local_pvc(live, "e2e-rpol", "data")
    manual, _ = backed_up(client, "e2e-rpol", "data")  # not the policy's: retention leaves it alone
    policy, _ = services.save_policy("e2e-rpol", "", 1, True, 1, [], "test")
    forget_policy_lease(live)

    def policy_snapshots():  # once no Job of the PVC runs any more
        listed = backups(client, "e2e-rpol", "data")
        if any(b["state"] == "InProgress" for b in listed):
            return []
        return [b for b in listed if b["state"] == "Completed" and b["labels"].get("policy") == policy.id]

    now = datetime.now(timezone.utc)
    for hours, count in ((2, 1), (4, 2)):  # each time more than the interval after the last backup
        report = evaluate.evaluate(now=now + timedelta(hours=hours), holder="restic-test")
        assert list(report.started) == ["e2e-rpol/data"], report
        wait_for(lambda c=count: len(policy_snapshots()) == c, JOB_SECONDS, what=f"{count} policy snapshots",
                 interval=0.5)
    newest = policy_snapshots()[0]["name"]
    report = evaluate.evaluate(holder="restic-test")  # now: nothing due, retention applies
    assert not report.started and len(report.retention_deleted["e2e-rpol/data"]) == 1
    assert [b["name"] for b in policy_snapshots()] == [newest]
    assert any(b["labels"].get("soteria.io/job") == manual["backup"] for b in backups(client, "e2e-rpol", "data"))


def test_the_demo_shows_its_restic_backed_pvc_with_auto(client, live, settings):
    """sandbox/seed.py takes one restic snapshot of the demo's non-Longhorn PVC."""
    settings.SOTERIA_BACKUP_DRIVER = "auto"
    row = _rows(client, "media")["transcode-cache"]
    assert row["driver"] == "restic" and row["backup_count"] >= 1 and row["health_reason"] == "fresh"
    page = client.get("/?namespace=media").content.decode()  # other tests' PVCs fill the first pages
    assert "transcode-cache" in page and "restic" in page


def test_a_namespace_restore_brings_back_every_pvc(client, live, settings):
    from sandbox import seed
    from tests.support.restic import provision, tree

    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    sources = {name: local_pvc(live, "e2e-rnsr", name, marker=f"pvc {name}") for name in ("one", "two")}
    for name in sources:
        backed_up(client, "e2e-rnsr", name)
    seed.ensure_basics(live, ["e2e-rnsr-to"])
    request = {"namespace": "e2e-rnsr", "target_namespace": "e2e-rnsr-to", "target_prefix": "r-"}
    plan = post(client, "/v1/restores/namespace", {**request, "dry_run": True}).json()
    assert plan["totals"]["planned"] == 2 and batch(live).list_namespaced_job("e2e-rnsr-to").items == []
    response = post(client, "/v1/restores/namespace", request)
    assert response.status_code == 200, response.content
    assert response.json()["totals"]["queued"] == 2, response.json()
    targets = {name: provision(live, "e2e-rnsr-to", f"r-{name}") for name in sources}

    def done():
        rows = client.get("/v1/restores?namespace=e2e-rnsr-to").json()["restores"]
        assert not [r for r in rows if r["state"] == "failed"], rows
        return len([r for r in rows if r["state"] == "done"]) == 2
    wait_for(done, JOB_SECONDS, what="both restores", interval=0.5)
    for name, source in sources.items():
        assert tree(targets[name]) == tree(source)
