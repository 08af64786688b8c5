"""The restic driver at its seams (the restic client, Jobs and Pods, Secrets) with in-process fakes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backups.clients import restic
from backups.clients.restic import Snapshot
from backups.drivers import restic as driver_module
from backups.types import BackupSummary, Claim
from soteria_site.core import kubernetes, workloads
from soteria_site.core.errors import Conflict, NotFound, UpstreamError
from soteria_site.core.kubernetes import Pv, Pvc, Secret
from soteria_site.core.workloads import ContainerEnd, Job, Pod

NOW = datetime(2026, 4, 12, 15, 30, tzinfo=timezone.utc)
DRIVER = driver_module.DRIVER


def claim(namespace: str, name: str, modes=("ReadWriteOnce",)) -> Claim:
    pvc = Pvc(namespace=namespace, name=name, uid=f"uid-{name}", phase="Bound", storage_class="local-path",
              volume_name=f"pv-{name}", access_modes=tuple(modes), requested="1Gi", capacity="1Gi")
    pv = Pv(name=f"pv-{name}", phase="Bound", storage_class="local-path", capacity="1Gi", access_modes=tuple(modes),
            csi_driver=None, volume_handle=None, fs_type=None, claim_namespace=namespace, claim_name=name,
            reclaim_policy="Retain")
    return Claim(pvc=pvc, pv=pv, storage_class=None)


def snap(namespace: str, pvc: str, hours_ago: float, ident: str, *extra: str) -> Snapshot:
    return Snapshot(id=ident * 64, short_id=ident * 8, time=NOW - timedelta(hours=hours_ago), hostname="soteria",
                    tags=(f"soteria.io/namespace={namespace}", f"soteria.io/pvc={pvc}", *extra), paths=("/data",))


def job(namespace: str, pvc: str, name: str, state: str, hours_ago: float) -> Job:
    when = NOW - timedelta(hours=hours_ago)
    return Job(namespace=namespace, name=name, uid=f"uid-{name}", state=state,
               labels={"soteria.io/pvc": pvc, "job-name": name}, annotations={"soteria.io/pvc": pvc},
               created=when, started=when, finished=when if state != "Running" else None)


def pod(namespace: str, job_name: str, *ends: ContainerEnd) -> Pod:
    return Pod(namespace=namespace, name=f"{job_name}-x", phase="Failed", node_name="n1",
               labels={"job-name": job_name}, containers=ends)


@pytest.fixture
def world(monkeypatch, settings):
    settings.SOTERIA_RESTIC_REPOSITORY = "s3:http://s3/bucket/repo"
    settings.SOTERIA_S3_ENDPOINT = ""
    settings.SOTERIA_SECRET_NAMESPACE, settings.SOTERIA_RESTIC_SECRET_NAME = "soteria", "soteria-restic"
    state = {"snapshots": [], "jobs": [], "pods": [], "logs": {}, "calls": [], "created": [], "deleted": [],
             "fail_secret": False}

    def record(name):
        state["calls"].append(name)

    def snapshots(repository, creds, tags=None, timeout=None):
        record("restic.snapshots")
        return [s for s in state["snapshots"] if not tags or set(tags) <= set(s.tags)]

    def list_jobs(selector, namespace=None):
        record("jobs.list")
        return [j for j in state["jobs"] if namespace in (None, j.namespace)]

    def list_pods(label_selector=None, namespace=None):
        record("pods.list")
        return [p for p in state["pods"] if namespace in (None, p.namespace)]

    def pod_log(namespace, name, container, tail_lines=40, limit_bytes=8192):
        record(f"pods.log {name} {container}")
        return state["logs"].get((name, container), "")

    def create_job(namespace, body):
        record("jobs.create")
        state["created"].append(body)
        return Job(namespace=namespace, name=body["metadata"]["name"], uid="new-uid", state="Running",
                   labels=body["metadata"]["labels"])

    def create_secret(namespace, body):
        record("secrets.create")
        if state["fail_secret"]:
            raise UpstreamError("kubernetes", "quota exceeded")
        state["created"].append(body)

    monkeypatch.setattr(restic, "snapshots", snapshots)
    monkeypatch.setattr(restic, "repository_exists", lambda repo, creds, timeout=None: True)
    monkeypatch.setattr(workloads, "list_jobs", list_jobs)
    monkeypatch.setattr(workloads, "list_pods", list_pods)
    monkeypatch.setattr(workloads, "pod_log", pod_log)
    monkeypatch.setattr(workloads, "create_job", create_job)
    monkeypatch.setattr(workloads, "delete_job", lambda ns, name: state["deleted"].append(name))
    monkeypatch.setattr(kubernetes, "create_secret", create_secret)
    monkeypatch.setattr(kubernetes, "get_secret", lambda ns, name: Secret(ns, name, {
        "AWS_ACCESS_KEY_ID": b"k", "AWS_SECRET_ACCESS_KEY": b"s", "RESTIC_PASSWORD": b"p"}, "1"))
    return state


@pytest.mark.django_db
def test_describe_reads_facts_in_a_constant_number_of_calls(world):
    world["snapshots"] = [snap("ai", "a", 1, "a"), snap("ai", "a", 30, "b"), snap("ai", "c", 5, "c"),
                          snap("ai", "d", 5, "d"), snap("other", "a", 0.1, "e")]
    world["jobs"] = [job("ai", "b", "job-b", "Running", 0.5), job("ai", "c", "job-c", "Failed", 1),
                     job("ai", "d", "job-d", "Failed", 1), job("ai", "a", "job-a", "Complete", 1)]
    world["pods"] = [pod("ai", "job-c", ContainerEnd("backup", 1, "Error", "Fatal: wrong password", True)),
                     pod("ai", "job-d", ContainerEnd("backup", 0, "Completed", "", True),
                         ContainerEnd("forget", 1, "Error", "Fatal: repository is already locked"))]
    claims = [claim("ai", name) for name in ("a", "b", "c", "d")] + [claim("ai", f"more-{i}") for i in range(20)]
    views = DRIVER.describe(claims, NOW)
    assert world["calls"] == ["restic.snapshots", "jobs.list", "pods.list"]
    a, b, c, d = (views[("ai", n)].facts for n in "abcd")
    assert a.success_count == 2 and a.last_success_at == NOW - timedelta(hours=1) and not a.in_progress
    assert b.success_count == 0 and [name for name, _ in b.in_progress] == ["job-b"]
    assert c.last_failure_is_newest and c.last_failure_error == "backup: Fatal: wrong password"
    assert not d.last_failure_is_newest  # its snapshot was saved; only forget failed
    assert views[("ai", "a")].driver == "restic" and views[("ai", "a")].volume == "pv-a"


@pytest.mark.django_db
@pytest.mark.parametrize("pvcs", [10, 100, 1_000])
def test_the_inventory_lists_the_repository_once_whatever_the_number_of_pvcs(world, pvcs):
    world["snapshots"] = [snap("ai", f"pvc-{i % pvcs}", 1 + i / 100, f"{i:x}") for i in range(1_000)]
    views = DRIVER.describe([claim("ai", f"pvc-{i}") for i in range(pvcs)], NOW)
    assert world["calls"] == ["restic.snapshots", "jobs.list"]  # no failed Job: no pods to read
    assert sum(view.facts.success_count for view in views.values()) == 1_000


@pytest.mark.django_db
def test_a_second_backup_while_one_runs_is_409(world):
    world["jobs"] = [job("ai", "data", "soteria-backup-data-1", "Running", 0.1)]
    with pytest.raises(Conflict) as caught:
        DRIVER.backup(claim("ai", "data"), {}, "brad", False, NOW)
    assert caught.value.code == "backup_in_progress" and caught.value.extra["running"] == "soteria-backup-data-1"
    assert "jobs.create" not in world["calls"]


@pytest.mark.django_db
def test_a_read_write_once_claim_in_use_is_backed_up_on_its_node(world):
    world["pods"] = [Pod(namespace="ai", name="app-0", phase="Running", node_name="worker-3", claims=("data",))]
    result = DRIVER.backup(claim("ai", "data"), {"service": "llm"}, "brad", False, NOW)
    assert result.driver == "restic" and result.backup == "soteria-backup-data-20260412-153000"
    job_body, secret_body = world["created"]
    terms = job_body["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchFields"][0]["values"] == ["worker-3"]
    assert secret_body["metadata"]["ownerReferences"][0]["uid"] == "new-uid"
    many = DRIVER.backup(claim("ai", "shared", modes=("ReadWriteMany",)), {}, "brad", False, NOW)
    assert "affinity" not in world["created"][-2]["spec"]["template"]["spec"] and many.backup


@pytest.mark.django_db
def test_the_job_goes_when_its_secret_cannot_be_created(world):
    world["fail_secret"] = True
    with pytest.raises(UpstreamError) as caught:
        DRIVER.backup(claim("ai", "data"), {}, "brad", False, NOW)
    assert caught.value.detail == "quota exceeded; Soteria deleted its Job soteria-backup-data-20260412-153000"
    assert world["deleted"] == ["soteria-backup-data-20260412-153000"]


@pytest.mark.django_db
def test_restores_choose_only_among_the_claims_own_snapshots(world):
    world["snapshots"] = [snap("ai", "data", 5, "a"), snap("ai", "data", 1, "b"), snap("ai", "other", 0.1, "c"),
                          Snapshot("d" * 64, "d" * 8, NOW, "soteria", ("soteria.io/pvc=data",), ("/data",))]
    plan = DRIVER.plan_restore(claim("ai", "data"), "latest", "", "ai", "restored")
    assert plan.backup.name == "b" * 64 and plan.job.startswith("soteria-restore-restored-")
    assert DRIVER.plan_restore(claim("ai", "data"), "aaaaaaaa", "", "ai", "r").backup.name == "a" * 64
    for foreign in ("c" * 8, "d" * 64):  # another PVC's, and one without the namespace tag
        with pytest.raises(NotFound):
            DRIVER.plan_restore(claim("ai", "data"), foreign, "", "ai", "r")
    with pytest.raises(NotFound) as caught:
        DRIVER.plan_restore(claim("ai", "empty"), "latest", "", "ai", "r")
    assert caught.value.code == "no_backup"


def test_restore_progress_follows_each_claims_job_in_two_calls(world):
    world["jobs"] = [job("ai", "r1", "restore-1", "Running", 0.1), job("ai", "r2", "restore-2", "Complete", 0.1),
                     job("ai", "r3", "restore-3", "Failed", 0.1)]
    world["pods"] = [pod("ai", "restore-3", ContainerEnd("restore", 1, "Error", "Fatal: no such snapshot"))]

    def restored(name, job_name):
        return Pvc("ai", name, "u", "Bound", "sc", "pv", (), "1Gi", "1Gi", labels={"soteria.io/driver": "restic"},
                   annotations={"soteria.io/restore-job": job_name})
    progress = DRIVER.restore_progress([restored("r1", "restore-1"), restored("r2", "restore-2"),
                                        restored("r3", "restore-3"), restored("r4", "restore-gone")])
    assert world["calls"] == ["jobs.list", "pods.list"]
    assert [progress[("ai", f"r{i}")].state for i in range(1, 5)] == ["restoring", "done", "failed", "unknown"]
    assert progress[("ai", "r3")].detail == "restore: Fatal: no such snapshot"


def summary_line(snapshot_id: str, files_new: int, data_added: int) -> str:
    return json.dumps({"message_type": "summary", "files_new": files_new, "files_changed": 1, "files_unmodified": 2,
                       "dirs_new": 0, "data_added": data_added, "total_files_processed": files_new + 3,
                       "total_bytes_processed": 4096, "total_duration": 0.2, "snapshot_id": snapshot_id})


def saved(job_name: str, *more: ContainerEnd) -> Pod:
    return pod("ai", job_name, ContainerEnd("unlock", 0, "Completed", "", True),
               ContainerEnd("backup", 0, "Completed", "", bool(more)), *more)


@pytest.mark.django_db
def test_listing_shows_the_summary_of_snapshots_whose_job_still_exists(world):
    tag = "soteria.io/job="
    world["snapshots"] = [snap("ai", "data", 1, "a", f"{tag}job-a"), snap("ai", "data", 2, "b", f"{tag}job-b"),
                          snap("ai", "data", 3, "c", f"{tag}job-c"), snap("ai", "data", 48, "d", f"{tag}job-gone")]
    world["jobs"] = [job("ai", "data", "job-a", "Complete", 1), job("ai", "data", "job-b", "Failed", 2),
                     job("ai", "data", "job-c", "Complete", 3), job("ai", "data", "job-e", "Failed", 0.5),
                     job("ai", "data", "job-f", "Running", 0.1)]
    world["pods"] = [saved("job-a"), saved("job-b", ContainerEnd("forget", 1, "Error", "Fatal: locked")),
                     saved("job-c"), pod("ai", "job-e", ContainerEnd("backup", 1, "Error", "Fatal: wrong password"))]
    world["logs"] = {
        # 0.16 prints the full id, 0.14 the short one; job-c's log names another snapshot.
        ("job-a-x", "backup"): '{"message_type":"status","percent_done":1}\n' + summary_line("a" * 64, 5, 300000),
        ("job-b-x", "backup"): summary_line("b" * 8, 0, 0) + "\n",
        ("job-c-x", "backup"): summary_line("f" * 8, 9, 9),
        ("job-e-x", "backup"): "open repository\nFatal: wrong password or no key found\n",
    }
    volume, records = DRIVER.list_backups(claim("ai", "data"))
    assert volume == "pv-data"
    by_name = {r.name: r for r in records}
    assert by_name["a" * 64].summary == BackupSummary(snapshot_id="a" * 64, files_new=5, files_changed=1,
                                                      files_unmodified=2, bytes_added=300000, files_processed=8,
                                                      bytes_processed=4096)
    assert by_name["b" * 64].summary.files_new == 0 and by_name["b" * 64].summary.bytes_added == 0
    assert by_name["c" * 64].summary is None  # its Job's summary names another snapshot
    assert by_name["d" * 64].summary is None  # its Job is gone (TTL): unknown
    assert by_name["job-e"].error == "backup: open repository Fatal: wrong password or no key found"
    assert by_name["job-e"].summary is None and by_name["job-f"].state == "InProgress"
    assert [r.name for r in records][:3] == ["job-f", "job-e", "a" * 64]
    logs = [c for c in world["calls"] if c.startswith("pods.log")]
    assert logs == ["pods.log job-a-x backup", "pods.log job-b-x backup", "pods.log job-c-x backup",
                    "pods.log job-e-x backup", "pods.log job-b-x forget"]  # summaries, then the errors


@pytest.mark.django_db
def test_listing_reads_a_bounded_number_of_logs_whatever_the_number_of_jobs(world):
    world["snapshots"] = [snap("ai", "data", i, f"{i:x}", f"soteria.io/job=job-{i}") for i in range(1, 13)]
    world["jobs"] = [job("ai", "data", f"job-{i}", "Complete", i) for i in range(1, 13)]
    world["jobs"] += [job("ai", "data", f"failed-{i}", "Failed", 20 + i) for i in range(10)]
    world["pods"] = [saved(f"job-{i}") for i in range(1, 13)]
    world["pods"] += [pod("ai", f"failed-{i}", ContainerEnd("backup", 1, "Error", "Fatal: x")) for i in range(10)]
    world["logs"] = {(f"job-{i}-x", "backup"): summary_line(f"{i:x}" * 8, i, i) for i in range(1, 13)}
    world["logs"][("job-2-x", "backup")] = ""  # a log gone, or cut before its summary: still a read
    _, records = DRIVER.list_backups(claim("ai", "data"))
    with_summary = [r.name[:1] for r in records if r.summary]
    assert with_summary == ["1", "3"]  # the newest Jobs' runs
    assert world["calls"].count("restic.snapshots") == 1 and world["calls"].count("jobs.list") == 1
    assert world["calls"].count("pods.list") == 1
    logs = [c for c in world["calls"] if c.startswith("pods.log")]
    assert len(logs) == driver_module.SUMMARIES_READ + driver_module.LOGS_READ == 6


@pytest.mark.django_db
def test_the_inventory_reads_no_log(world):
    world["snapshots"] = [snap("ai", "data", 1, "a", "soteria.io/job=job-a")]
    world["jobs"] = [job("ai", "data", "job-a", "Complete", 1), job("ai", "data", "job-b", "Failed", 0.5)]
    world["pods"] = [saved("job-a"), pod("ai", "job-b", ContainerEnd("backup", 1, "Error", "Fatal: x"))]
    world["logs"] = {("job-a-x", "backup"): summary_line("a" * 8, 1, 1)}
    facts = DRIVER.describe([claim("ai", "data")], NOW)[("ai", "data")].facts
    assert facts.last_failure_error == "backup: Fatal: x"
    assert world["calls"] == ["restic.snapshots", "jobs.list", "pods.list"]
