"""Manifests at backup time end to end: each driver's backup runs the real manifest reader in a
Job (the kubelet stand-in runs its command with this machine's python3 against the claim's
directory), and a collection keeps what it printed in the PVC's verification ConfigMap."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from backups.drivers import manifest_jobs
from backups.services import drill_records, manifest_collection
from sandbox import seed
from tests.support.http import post
from tests.support.polling import wait_for
from tests.support.restic import local_pvc

pytestmark = pytest.mark.django_db(transaction=True)
JOB_SECONDS = 120
FILES = {"a.txt": "alpha\n", "empty": "", "nested/deeper/rows.csv": "id,v\n" + "".join(f"{i},{i * i}\n"
                                                                                       for i in range(500)),
         "with spaces \u00fcn\u00efc\u00f8d\u00e9.txt": "\u2713 checked\n"}


@pytest.fixture(autouse=True)
def _no_margin(monkeypatch):
    """The files are written a moment before each backup: with the 30 s margin they would all
    count as changed around the backup's point in time and be left out (which the unit tests
    show). Without it, the manifest holds every file written before the backup."""
    monkeypatch.setattr(manifest_jobs, "CLOCK_MARGIN", timedelta(0))


def batch(cfg) -> k8s.BatchV1Api:
    return k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cfg.kubeconfig)))


def finished(cfg, namespace: str, job: str) -> str:
    """Wait for the real Job controller to mark the Job Complete or Failed."""
    def state():
        conditions = batch(cfg).read_namespaced_job(job, namespace).status.conditions or []
        return next((c.type for c in conditions if c.status == "True" and c.type in ("Complete", "Failed")), None)
    return wait_for(state, JOB_SECONDS, what=f"Job {namespace}/{job} to finish", interval=0.5)


def on_disk(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every regular file under root (symlinks left out, as the reader does)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def assert_manifest_of(manifest, files: dict[str, bytes]) -> None:
    assert manifest is not None
    assert manifest.files == len(files) and manifest.bytes == sum(map(len, files.values()))
    assert manifest.changed_files == 0 and manifest.error_count == 0
    assert {e.path: (e.size, e.sha256) for e in manifest.sample} == {
        path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items()}


def test_a_longhorn_backup_records_the_claims_manifest_under_its_snapshot(client, live):
    volume = seed.make_pvc(live, "e2e-manifest", "data", files=FILES)
    files = on_disk(live.longhorn_volumes_dir / volume)
    assert files == {path: text.encode() for path, text in FILES.items()}
    response = post(client, "/v1/backup", {"namespace": "e2e-manifest", "pvc": "data"})
    assert response.status_code == 200, response.content
    snapshot = response.json()["backup"]
    [job] = [j.metadata.name for j in batch(live).list_namespaced_job(
        "e2e-manifest", label_selector="soteria.io/operation=manifest,soteria.io/pvc=data").items]
    assert job.startswith("soteria-manifest-data-")
    assert finished(live, "e2e-manifest", job) == "Complete"

    assert manifest_collection.collect("e2e-manifest", "data") == {"collected": 1, "failed": 0, "skipped": 0}
    assert_manifest_of(drill_records.load("e2e-manifest", "data").manifest(snapshot), files)
    wait_for(lambda: job not in [j.metadata.name for j in batch(live).list_namespaced_job("e2e-manifest").items],
             60, what="the collected manifest Job to be deleted", interval=0.5)
    assert manifest_collection.collect("e2e-manifest", "data") == {"collected": 0, "failed": 0, "skipped": 0}


def test_a_restic_backup_records_the_claims_manifest_under_its_job(client, live, settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-{uuid.uuid4().hex[:10]}/repo"
    settings.SOTERIA_RESTIC_FORGET_ARGS = ["--keep-last", "5"]
    settings.SOTERIA_JOB_TTL_SECONDS = 3600
    root = local_pvc(live, "e2e-manifest-r", "files")
    files = on_disk(root)
    assert len(files) == 5  # and a symlink, which is not a file
    response = post(client, "/v1/backup", {"namespace": "e2e-manifest-r", "pvc": "files"})
    assert response.status_code == 200, response.content
    job = response.json()["backup"]
    assert finished(live, "e2e-manifest-r", job) == "Complete"  # backup, then manifest and forget

    assert manifest_collection.collect("e2e-manifest-r", "files") == {"collected": 1, "failed": 0, "skipped": 0}
    assert_manifest_of(drill_records.load("e2e-manifest-r", "files").manifest(job), files)
    snapshot = next(b for b in client.get("/v1/backups?namespace=e2e-manifest-r&pvc=files").json()["backups"]
                    if b["state"] == "Completed")
    assert snapshot["labels"]["soteria.io/job"] == job  # the snapshot names the manifest's key
    assert manifest_collection.collect("e2e-manifest-r", "files") == {"collected": 0, "failed": 0, "skipped": 1}
    assert batch(live).read_namespaced_job(job, "e2e-manifest-r").metadata.name == job  # kept for its summary
