"""Collecting the manifests of backup Jobs into each PVC's verification record, with the fake
cluster playing the Job controller and the kubelet (their logs: the real reader's output)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest

from backups.drivers import restic_jobs
from backups.manifests import reader_source
from backups.services import backup, drill_records, manifest_collection
from backups.tasks import SCHEDULES
from soteria_site.core.workloads import COMPLETE, FAILED, RUNNING, ContainerEnd
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db
LISTS = {"list_jobs", "list_pods", "list_config_maps"}


@pytest.fixture
def world(cluster, settings, frozen):
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    settings.SOTERIA_RESTIC_FORGET_ARGS = ["--keep-last", "3"]
    settings.SOTERIA_RESTIC_REPOSITORY = "s3:https://s3.example.com/bucket/soteria"
    return cluster


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> str:
    """What a manifest container prints for a claim of three files (the reader, really run)."""
    root = tmp_path_factory.mktemp("claim")
    for name, text in {"a.txt": "alpha\n", "b/c.txt": "see\n", "d.bin": "d" * 100}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return subprocess.run([sys.executable, "-c", reader_source(), str(root)], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def ok(finished=NOW) -> list[ContainerEnd]:
    return [ContainerEnd("manifest", 0, "Completed", "", finished=finished)]


def longhorn_backup(cluster, pvc: str) -> tuple[str, str]:
    """A Longhorn backup of a new PVC through the service: (its snapshot, its manifest Job)."""
    cluster.add_pvc("ai", pvc)
    result = backup.backup_pvc("ai", pvc, [], "brad")
    return result.backup, f"soteria-manifest-{pvc}-20260412-153000"


def restic_job(cluster, pvc: str, name: str = "") -> str:
    """A restic backup Job of `pvc` as the driver creates it."""
    name = name or f"soteria-backup-{pvc}-20260412-153000"
    cluster.create_job("ai", restic_jobs.backup_job(name, "ai", pvc, {}, "brad", NOW))
    return name


def test_a_longhorn_manifest_is_kept_under_its_snapshot_once_and_its_job_deleted(world, printed):
    snapshot, job = longhorn_backup(world, "data")
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": 1}  # still running
    world.run_job("ai", job, COMPLETE, ok(), {"manifest": printed})
    assert manifest_collection.collect() == {"collected": 1, "failed": 0, "skipped": 0}
    record = drill_records.load("ai", "data")
    manifest = record.manifest(snapshot)
    assert (manifest.files, manifest.bytes) == (3, 6 + 4 + 100)
    assert [e.path for e in manifest.sample] == sorted(["a.txt", "b/c.txt", "d.bin"],
                                                       key=lambda p: hashlib.sha256(p.encode()).digest())
    assert record.manifests[snapshot]["recorded_at"] == "2026-04-12T15:30:00Z"
    assert world.deleted_jobs == [("ai", job)]
    world.calls.clear()
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": 0}
    assert set(world.calls) == {"list_jobs"}  # nothing left to read


def test_a_restic_manifest_is_kept_under_its_job_while_forget_still_runs_and_the_job_stays(world, printed):
    job = restic_job(world, "files")
    world.run_job("ai", job, RUNNING, ok(), {"manifest": printed})
    assert manifest_collection.collect() == {"collected": 1, "failed": 0, "skipped": 0}
    assert drill_records.load("ai", "files").manifest(job).files == 3
    world.run_job("ai", job, COMPLETE, ok() + [ContainerEnd("forget", 0, "Completed", "")], {"manifest": printed})
    world.calls.clear()
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": 1}
    assert world.calls["pod_log"] == 0 and world.calls["replace_config_map"] == 0
    assert world.deleted_jobs == [] and ("ai", job) in world.jobs  # it keeps the backup's summary


def test_a_failed_longhorn_manifest_job_is_told_once_then_deleted(world):
    snapshot, job = longhorn_backup(world, "data")
    world.events.clear()
    world.run_job("ai", job, FAILED, [ContainerEnd("manifest", 1, "Error", "Traceback\nOSError: [Errno 5] EIO\n")])
    assert manifest_collection.collect() == {"collected": 0, "failed": 1, "skipped": 0}
    [event] = world.events
    assert event["reason"] == "ManifestFailed" and event["type"] == "Warning"
    assert event["involvedObject"]["name"] == "data"
    assert snapshot in event["message"] and "exit code 1: Traceback OSError: [Errno 5] EIO" in event["message"]
    assert world.deleted_jobs == [("ai", job)]
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": 0}
    assert len(world.events) == 1 and drill_records.load("ai", "data").manifests == {}


def test_a_longhorn_manifest_job_that_never_ran_is_told_with_the_jobs_reason(world):
    _, job = longhorn_backup(world, "data")
    world.events.clear()
    world.run_job("ai", job, FAILED)
    world.jobs[("ai", job)] = replace(world.jobs[("ai", job)], reason="DeadlineExceeded",
                                      message="Job was active too long")
    assert manifest_collection.collect()["failed"] == 1
    assert "DeadlineExceeded: Job was active too long" in world.events[0]["message"]


def test_a_failed_restic_manifest_is_told_once_and_its_job_kept(world):
    job = restic_job(world, "files")
    world.run_job("ai", job, FAILED, [ContainerEnd("backup", 0, "Completed", "", True),
                                      ContainerEnd("manifest", 1, "Error", "python3: not found")])
    world.add_pvc("ai", "files", storage_class="local-path", csi_driver=None)
    assert manifest_collection.collect() == {"collected": 0, "failed": 1, "skipped": 0}
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": 1}
    assert [e["reason"] for e in world.events] == ["ManifestFailed"] and world.deleted_jobs == []


def test_a_log_without_a_manifest_is_a_failure(world):
    _, job = longhorn_backup(world, "data")
    world.run_job("ai", job, COMPLETE, ok(), {"manifest": "some warning\n"})
    assert manifest_collection.collect()["failed"] == 1
    assert "holds no manifest line" in world.events[-1]["message"]


def test_a_restic_backup_that_failed_before_its_manifest_is_left_alone(world):
    job = restic_job(world, "files")
    world.run_job("ai", job, FAILED, [ContainerEnd("backup", 1, "Error", "Fatal: wrong password", True)])
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": 1}
    assert world.events == [] and world.calls["list_config_maps"] == 0


def test_one_pvcs_collection_reads_only_its_jobs(world, printed):
    mine, other = restic_job(world, "files"), restic_job(world, "other")
    for job in (mine, other):
        world.run_job("ai", job, COMPLETE, ok(), {"manifest": printed})
    assert manifest_collection.collect("ai", "files") == {"collected": 1, "failed": 0, "skipped": 0}
    assert set(drill_records.load_all()) == {("ai", "files")}


def test_calls_are_constant_in_the_number_of_pvcs(world, printed):
    """Three lists whatever the number of PVCs; then one log read (and the record's write)
    per manifest newly ended."""
    def pvcs(count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            job = restic_job(world, f"p{i}")
            world.run_job("ai", job, COMPLETE, ok(), {"manifest": printed})

    pvcs(2)
    manifest_collection.collect()
    world.calls.clear()
    manifest_collection.collect()
    few = dict(world.calls)
    pvcs(10, start=2)
    manifest_collection.collect()
    world.calls.clear()
    manifest_collection.collect()
    assert dict(world.calls) == few and set(few) == LISTS and all(n == 1 for n in few.values())
    pvcs(3, start=12)
    world.calls.clear()
    assert manifest_collection.collect()["collected"] == 3
    assert world.calls["pod_log"] == 3 and all(world.calls[name] == 1 for name in LISTS)


def test_a_manifest_older_than_every_kept_one_is_not_read(world, printed):
    jobs = [restic_job(world, "files", f"job-{i}") for i in range(drill_records.MANIFESTS_KEPT + 1)]
    for i, job in enumerate(jobs):
        world.run_job("ai", job, COMPLETE, ok(NOW - timedelta(hours=i)), {"manifest": printed})
    assert manifest_collection.collect()["collected"] == drill_records.MANIFESTS_KEPT
    assert set(drill_records.load("ai", "files").manifests) == set(jobs[:-1])
    world.calls.clear()
    assert manifest_collection.collect() == {"collected": 0, "failed": 0, "skipped": len(jobs)}
    assert world.calls["pod_log"] == 0  # the oldest would be dropped at once: never read again


def test_the_worker_collects_every_minute():
    [spec] = [s for s in SCHEDULES if s.name == "manifest-collection"]
    assert spec.func == "backups.tasks.collect_manifests" and spec.seconds == 60
