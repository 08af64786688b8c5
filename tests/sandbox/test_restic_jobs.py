"""restic Jobs through the real Job controller: back up a Longhorn PVC into loopback S3, restore it elsewhere.

The Jobs look like the restic driver's: image restic/restic with only `args`
(the stand-in plays its entrypoint with the real Debian restic), credentials
from a Secret via envFrom, the source claim mounted read-only.
"""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest

from tests.support.jobs import claim_volume, job_body, job_log, job_pods, run_job, tree_hashes

IMAGE = "restic/restic:0.16.4"


@pytest.fixture
def repository(s3_endpoint, core_v1, scratch_ns) -> str:
    """A fresh repository in loopback S3 and the Secret (`restic`) that reaches it."""
    repo = f"s3:{s3_endpoint}/restic-{uuid.uuid4().hex[:8]}/{scratch_ns}"
    data = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox-secret",
            "RESTIC_PASSWORD": "correct horse battery staple", "RESTIC_REPOSITORY": repo}
    core_v1.create_namespaced_secret(scratch_ns, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "restic"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})
    return repo


def restic_job(name: str, args: list[str], **kwargs) -> dict:
    return job_body(name, image=IMAGE, args=args, env_from=[{"secretRef": {"name": "restic"}}], **kwargs)


def _write_source(root) -> None:
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("a PVC's precious files\n")
    (root / "docs" / "deep" / "notes.md").write_text("# notes\n" * 100)
    (root / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "empty").write_bytes(b"")


def test_restic_backup_and_restore_round_trip_through_jobs(core_v1, batch_v1, scratch_ns, kubelet_sandbox,
                                                           static_pvc, repository):
    source_dir = kubelet_sandbox.longhorn_volumes_dir / f"pvc-{scratch_ns}-source"
    source_dir.mkdir(parents=True)
    _write_source(source_dir)
    static_pvc("source", longhorn=source_dir.name)
    static_pvc("target", longhorn=f"pvc-{scratch_ns}-target")
    tags = ["--tag", f"namespace={scratch_ns}", "--tag", "pvc=source", "--host", "soteria"]

    assert run_job(batch_v1, scratch_ns, restic_job("init", ["init"])) == "Complete"
    backup = restic_job("backup", ["backup", "/data", *tags],
                        mounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
                        volumes=[claim_volume("data", "source", read_only=True)])
    assert run_job(batch_v1, scratch_ns, backup, timeout=120) == "Complete"
    assert "snapshot" in job_log(core_v1, scratch_ns, "backup") and "saved" in job_log(core_v1, scratch_ns, "backup")

    listing = restic_job("snapshots", ["snapshots", "--json", *tags])
    assert run_job(batch_v1, scratch_ns, listing) == "Complete"
    [snapshot] = json.loads(job_log(core_v1, scratch_ns, "snapshots"))
    assert set(snapshot["tags"]) == {f"namespace={scratch_ns}", "pvc=source"}
    assert snapshot["paths"] == ["/data"]

    restore = restic_job("restore", ["restore", "latest", "--target", "/restore", *tags],
                         mounts=[{"name": "target", "mountPath": "/restore"}],
                         volumes=[claim_volume("target", "target")])
    assert run_job(batch_v1, scratch_ns, restore, timeout=120) == "Complete"
    restored = kubelet_sandbox.longhorn_volumes_dir / f"pvc-{scratch_ns}-target" / "data"
    assert tree_hashes(restored) == tree_hashes(source_dir)
    assert len(tree_hashes(restored)) == 4


def test_restic_failure_surfaces_in_the_termination_message(core_v1, batch_v1, scratch_ns, repository):
    assert run_job(batch_v1, scratch_ns, restic_job("init", ["init"])) == "Complete"
    wrong = restic_job("wrong", ["snapshots"], env=[{"name": "RESTIC_PASSWORD", "value": "not the password"}])
    assert run_job(batch_v1, scratch_ns, wrong) == "Failed"
    [pod] = job_pods(core_v1, scratch_ns, "wrong")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code != 0
    assert "wrong password" in terminated.message
