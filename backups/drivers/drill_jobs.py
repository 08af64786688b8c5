"""A restore drill's verification Job: it mounts the scratch claim read-only and runs the
manifest reader over every byte (backups/manifest_reader.py), checking the source's sampled
files by path. The same restricted pod as Soteria's other Jobs (job_bodies.py); no
credentials, no retries."""

from __future__ import annotations

from django.conf import settings

from .. import manifests
from ..types import DRILL_LABEL
from . import job_bodies, manifest_jobs

VERIFY_MOUNT = "/data"
CONTAINER = "verify"
OPERATION = "verify"


def labels(drill_id: str, driver: str, pvc: str) -> dict[str, str]:
    return {**job_bodies.labels(driver, OPERATION, pvc), DRILL_LABEL: drill_id}


def verify_job(name: str, namespace: str, scratch_pvc: str, drill_id: str, driver: str, expect: list[str],
               timeout_seconds: int) -> dict:
    """The Job, ended by the Job controller after `timeout_seconds` (what is left of the drill's time)."""
    container = {
        "name": CONTAINER, "image": settings.SOTERIA_DRILL_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": manifests.command(VERIFY_MOUNT, read_all=True, expect=expect),
        "volumeMounts": [{"name": "data", "mountPath": VERIFY_MOUNT, "readOnly": True}],
        "securityContext": job_bodies.security_contexts()[1],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    body = job_bodies.job_body(name, namespace, labels(drill_id, driver, scratch_pvc),
                               {job_bodies.PVC_ANNOTATION: scratch_pvc}, [], [container],
                               [manifest_jobs.claim_volume(scratch_pvc)])
    body["spec"]["activeDeadlineSeconds"] = timeout_seconds
    return body
