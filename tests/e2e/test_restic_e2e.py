"""Issue 14 end to end: the restic driver's Jobs, run by the real Job controller with the real
restic binary against loopback S3 (the kubelet stand-in mounts claims as directories)."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.support.http import post
from tests.support.kube import kube
from tests.support.polling import wait_for
from tests.support.restic import local_pvc, provision, tree

pytestmark = pytest.mark.django_db(transaction=True)
JOB_SECONDS = 120


@pytest.fixture
def restic_live(live, settings):
    """Soteria on the sandbox with the restic driver and a repository of its own."""
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    settings.SOTERIA_JOB_TTL_SECONDS = 3600
    return live


def batch(cfg) -> k8s.BatchV1Api:
    return k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cfg.kubeconfig)))


def backups(client, namespace, pvc) -> list[dict]:
    response = client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}")
    assert response.status_code == 200, response.content
    return response.json()["backups"]


def backed_up(client, namespace, pvc, tags=()) -> tuple[dict, dict]:
    """POST /v1/backup, then wait for the Job's snapshot; (response body, snapshot record)."""
    response = post(client, "/v1/backup", {"namespace": namespace, "pvc": pvc, "tags": list(tags)})
    assert response.status_code == 200, response.content
    body = response.json()

    def snapshot():  # the Job's snapshot, once the Job itself has ended (it is no longer listed)
        listed = backups(client, namespace, pvc)
        if any(b["name"] == body["backup"] for b in listed):
            return None
        return next((b for b in listed if b["state"] == "Completed"
                     and b["labels"].get("soteria.io/job") == body["backup"]), None)
    return body, wait_for(snapshot, JOB_SECONDS, what=f"snapshot of backup Job {body['backup']}", interval=0.5)


def restored(client, cfg, source_ns, source_pvc, target_pvc, snapshot="latest"):
    response = post(client, "/v1/restores", {"namespace": source_ns, "pvc": source_pvc, "snapshot": snapshot,
                                             "target_pvc": target_pvc})
    assert response.status_code == 200, response.content
    root = provision(cfg, source_ns, target_pvc)

    def done():
        rows = client.get(f"/v1/restores?namespace={source_ns}").json()["restores"]
        row = next((r for r in rows if r["pvc"] == target_pvc), None)
        assert row is None or row["state"] != "failed", row
        return row if row and row["state"] == "done" else None
    wait_for(done, JOB_SECONDS, what=f"restore into {target_pvc}", interval=0.5)
    return response.json(), root


def test_backup_list_and_restore_round_trip_byte_for_byte(client, restic_live):
    source = local_pvc(restic_live, "e2e-restic", "files")
    body, snapshot = backed_up(client, "e2e-restic", "files", tags=["service=llm"])
    assert body["driver"] == "restic" and body["namespace"] == "e2e-restic"
    assert body["backup"].startswith("soteria-backup-files-") and len(body["backup"]) <= 63
    assert set(body) == {"driver", "volume", "backup", "namespace", "requested_by", "dry_run"}
    assert snapshot["labels"]["service"] == "llm" and snapshot["created"].endswith("Z")

    job = batch(restic_live).read_namespaced_job(body["backup"], "e2e-restic")
    pod = job.spec.template.spec
    assert [c.name for c in pod.init_containers] == ["unlock", "backup"] and pod.containers[0].name == "manifest"
    # ttlSecondsAfterFinished is dropped by the sandbox's 1.20 apiserver (TTLAfterFinished is alpha
    # there); the unit tests check that Soteria sends it.
    assert job.spec.backoff_limit == 0 and job.spec.active_deadline_seconds > 0
    assert job.spec.template.spec.automount_service_account_token is False
    assert not any("secret" in arg.lower() or "password" in arg.lower()
                   for c in pod.init_containers + pod.containers for arg in c.args or ())
    assert job.metadata.labels["soteria.io/pvc"] == "files"

    row = next(p for ns in client.get("/v1/inventory?namespace=e2e-restic").json()["namespaces"]
               for p in ns["pvcs"] if p["pvc"] == "files")
    assert row["driver"] == "restic" and row["backup_count"] == 1 and row["health_reason"] == "fresh"

    result, target = restored(client, restic_live, "e2e-restic", "files", "files-restored")
    assert result["driver"] == "restic" and result["backup"] == snapshot["name"]
    assert result["storage_class"] == "local-path" and result["size"] == "1Gi"
    assert tree(target) == tree(source)
    assert len(tree(source)) == 9  # 3 directories, 5 files, 1 symlink

    # What each run added, from restic's summary in its Job's log (while the Job exists).
    files = [what[1] for what in tree(source).values() if what[0] == "file"]
    first = snapshot["summary"]
    assert first["files_new"] == len(files) == 5 and first["files_changed"] == first["files_unmodified"] == 0
    assert first["files_processed"] == 5 and first["bytes_processed"] == sum(map(len, files))
    assert first["bytes_added"] >= first["bytes_processed"]  # new contents and directories, before compression
    _, again = backed_up(client, "e2e-restic", "files")  # nothing changed
    assert again["summary"]["files_new"] == again["summary"]["files_changed"] == 0
    assert again["summary"]["files_unmodified"] == 5 and again["summary"]["bytes_added"] == 0
    listed = {b["name"]: b for b in backups(client, "e2e-restic", "files")}
    assert listed[snapshot["name"]]["summary"] == first and listed[again["name"]]["summary"] == again["summary"]


def test_copied_secret_goes_with_its_job(client, restic_live):
    local_pvc(restic_live, "e2e-restic", "gc")
    body, _ = backed_up(client, "e2e-restic", "gc")
    core = kube(restic_live)
    secret = core.read_namespaced_secret(body["backup"], "e2e-restic")
    [owner] = secret.metadata.owner_references
    assert owner.kind == "Job" and owner.name == body["backup"]
    assert set(secret.data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"}
    batch(restic_live).delete_namespaced_job(body["backup"], "e2e-restic", propagation_policy="Background")

    def gone():
        return not [s for s in core.list_namespaced_secret("e2e-restic").items if s.metadata.name == body["backup"]]
    wait_for(gone, 60, what="the garbage collector to delete the Job's Secret", interval=0.5)


def test_failing_restic_shows_its_error(client, restic_live, settings):
    local_pvc(restic_live, "e2e-restic", "broken")
    settings.SOTERIA_RESTIC_BACKUP_ARGS = ["--no-such-flag"]
    response = post(client, "/v1/backup", {"namespace": "e2e-restic", "pvc": "broken"})
    assert response.status_code == 200, response.content
    name = response.json()["backup"]

    def failed():
        return next((b for b in backups(client, "e2e-restic", "broken") if b["name"] == name
                     and b["state"] == "Error"), None)
    record = wait_for(failed, JOB_SECONDS, what="the backup Job to fail", interval=0.5)
    assert "unknown flag: --no-such-flag" in record["error"]
    row = next(p for ns in client.get("/v1/inventory?namespace=e2e-restic").json()["namespaces"]
               for p in ns["pvcs"] if p["pvc"] == "broken")
    assert row["health_reason"] == "last backup failed" and row["healthy"] is False


def test_missing_secret_key_is_refused_before_any_job(client, restic_live, settings):
    local_pvc(restic_live, "e2e-restic", "nokey")
    core = kube(restic_live)
    core.create_namespaced_secret("soteria", {"metadata": {"name": "restic-partial"},
                                              "stringData": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}})
    settings.SOTERIA_RESTIC_SECRET_NAME = "restic-partial"
    response = post(client, "/v1/backup", {"namespace": "e2e-restic", "pvc": "nokey"})
    assert response.status_code == 503 and "RESTIC_PASSWORD" in response.json()["detail"]
    assert not [j for j in batch(restic_live).list_namespaced_job("e2e-restic").items
                if j.metadata.labels.get("soteria.io/pvc") == "nokey"]


def test_two_pvcs_in_one_repository_are_never_confused(client, restic_live):
    left = local_pvc(restic_live, "e2e-restic2", "left", marker="left")
    local_pvc(restic_live, "e2e-restic2", "right", marker="right")
    _, left_snapshot = backed_up(client, "e2e-restic2", "left")
    _, right_snapshot = backed_up(client, "e2e-restic2", "right")  # newer, same repository
    assert [b["name"] for b in backups(client, "e2e-restic2", "left")] == [left_snapshot["name"]]
    wrong = post(client, "/v1/restores", {"namespace": "e2e-restic2", "pvc": "left",
                                          "snapshot": right_snapshot["name"], "target_pvc": "nope"})
    assert wrong.status_code == 404 and wrong.json()["field"] == "snapshot"
    result, target = restored(client, restic_live, "e2e-restic2", "left", "left-latest")
    assert result["backup"] == left_snapshot["name"]
    assert tree(target) == tree(left)


def _host_restic(cfg, repository: str, home, *args: str):
    """restic on this machine against the test's repository (as an operator would run it)."""
    import os
    import subprocess

    from sandbox import s3, seed

    env = {**s3.restic_env(cfg), "RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD": seed.RESTIC_PASSWORD,
           "PATH": os.environ.get("PATH", ""), "HOME": str(home), "RESTIC_CACHE_DIR": str(home / "cache")}
    return subprocess.run(["restic", *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_stale_lock_does_not_block_the_next_backup(client, restic_live, settings, tmp_path):
    from sandbox import seed
    from tests.support.restic import plant_stale_lock_s3

    local_pvc(restic_live, "e2e-restic3", "locked")
    backed_up(client, "e2e-restic3", "locked")
    bucket_and_prefix = settings.SOTERIA_RESTIC_REPOSITORY.split(f"{restic_live.s3_endpoint}/", 1)[1]
    bucket, prefix = bucket_and_prefix.split("/", 1)
    plant_stale_lock_s3(restic_live.s3_endpoint, bucket, prefix, seed.RESTIC_PASSWORD)
    (tmp_path / "data").mkdir()
    blocked = _host_restic(restic_live, settings.SOTERIA_RESTIC_REPOSITORY, tmp_path, "backup", str(tmp_path / "data"))
    assert blocked.returncode != 0 and "locked exclusively" in blocked.stderr  # it does block restic
    body, snapshot = backed_up(client, "e2e-restic3", "locked")  # the Job's `unlock` removed it first
    assert snapshot["labels"]["soteria.io/job"] == body["backup"]
    assert len([b for b in backups(client, "e2e-restic3", "locked") if b["state"] == "Completed"]) == 2


def test_restore_refuses_an_existing_target_and_creates_nothing(client, restic_live):
    local_pvc(restic_live, "e2e-restic4", "keep")
    backed_up(client, "e2e-restic4", "keep")
    response = post(client, "/v1/restores", {"namespace": "e2e-restic4", "pvc": "keep", "target_pvc": "keep"})
    assert response.status_code == 409 and response.json()["existing"] == "e2e-restic4/keep"
    assert not [j for j in batch(restic_live).list_namespaced_job("e2e-restic4").items
                if j.metadata.labels.get("soteria.io/operation") == "restore"]


@pytest.mark.parametrize("failing", ["job", "secret", "pvc"])
def test_restore_deletes_what_it_created_when_a_step_fails(client, restic_live, monkeypatch, failing):
    from soteria_site.core import kubernetes, workloads
    from soteria_site.core.errors import UpstreamError

    local_pvc(restic_live, "e2e-restic5", f"src-{failing}")
    backed_up(client, "e2e-restic5", f"src-{failing}")

    def refuse(*args, **kwargs):
        raise UpstreamError("kubernetes", "Kubernetes rejected the create: admission webhook denied the request")
    monkeypatch.setattr(workloads if failing == "job" else kubernetes, f"create_{failing}", refuse)
    target = f"dst-{failing}"
    response = post(client, "/v1/restores", {"namespace": "e2e-restic5", "pvc": f"src-{failing}",
                                             "target_pvc": target})
    assert response.status_code == 502 and "admission webhook" in response.json()["detail"]
    cleanup = response.json()["cleanup"]
    assert cleanup["succeeded"] is True
    assert [d.split()[0] for d in cleanup["deleted"]] == ([] if failing == "job" else ["job"])
    assert kubernetes.find_pvc("e2e-restic5", target) is None
    wait_for(lambda: not [j for j in batch(restic_live).list_namespaced_job("e2e-restic5").items
                          if j.metadata.labels.get("soteria.io/operation") == "restore"], 60,
             what="the restore Job to be deleted", interval=0.5)


def test_a_claim_in_use_is_backed_up_on_its_pods_node(client, restic_live):
    """A ReadWriteOnce claim a running pod mounts can only be mounted on that pod's node."""
    local_pvc(restic_live, "e2e-restic6", "in-use")
    core = kube(restic_live)
    core.create_namespaced_pod("e2e-restic6", {
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "args": ["sleep", "600"],
                                 "volumeMounts": [{"name": "data", "mountPath": "/srv"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "in-use"}}]}})
    node = wait_for(lambda: (p := core.read_namespaced_pod("app", "e2e-restic6")).status.phase == "Running"
                    and p.spec.node_name, 60, what="the workload pod to run", interval=0.5)
    try:
        body, _ = backed_up(client, "e2e-restic6", "in-use")
        spec = batch(restic_live).read_namespaced_job(body["backup"], "e2e-restic6").spec.template.spec
        term = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
        assert term.match_fields[0].key == "metadata.name" and term.match_fields[0].values == [node]
    finally:
        core.delete_namespaced_pod("app", "e2e-restic6", grace_period_seconds=0)


def test_forget_after_a_backup_touches_only_that_pvcs_snapshots(client, restic_live, settings):
    settings.SOTERIA_RESTIC_FORGET_ARGS = ["--keep-last", "1"]
    local_pvc(restic_live, "e2e-restic7", "kept")
    local_pvc(restic_live, "e2e-restic7", "pruned")
    _, other = backed_up(client, "e2e-restic7", "kept")
    backed_up(client, "e2e-restic7", "pruned")  # returns once the Job, its forget step included, has ended
    body, newest = backed_up(client, "e2e-restic7", "pruned")

    def forgotten():
        job = batch(restic_live).read_namespaced_job(body["backup"], "e2e-restic7")
        return job.status.succeeded and [b["name"] for b in backups(client, "e2e-restic7", "pruned")
                                         if b["state"] == "Completed"] == [newest["name"]]
    wait_for(forgotten, JOB_SECONDS, what="forget --keep-last 1 of that PVC", interval=0.5)
    assert [b["name"] for b in backups(client, "e2e-restic7", "kept")] == [other["name"]]
