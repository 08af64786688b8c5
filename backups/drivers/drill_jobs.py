"""A restore drill's verification Job: it mounts the scratch claim read-only and runs the
manifest reader over every byte (backups/manifest_reader.py), checking the source's sampled
files by path. Same restricted pod as the restic Jobs; no credentials, no retries."""

from __future__ import annotations

from django.conf import settings

from soteria_site.core import names

from .. import manifests
from ..types import DRILL_LABEL
from . import restic_jobs

VERIFY_MOUNT = "/data"
CONTAINER = "verify"


def labels(drill_id: str, driver: str, pvc: str) -> dict[str, str]:
    return {restic_jobs.MANAGED_BY: "soteria", restic_jobs.DRIVER_LABEL: driver,
            restic_jobs.OPERATION_LABEL: "verify", restic_jobs.PVC_LABEL: names.label_value(pvc),
            DRILL_LABEL: drill_id}


def verify_job(name: str, namespace: str, scratch_pvc: str, drill_id: str, driver: str, expect: list[str],
               timeout_seconds: int) -> dict:
    container = {
        "name": CONTAINER, "image": settings.SOTERIA_DRILL_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": manifests.command(VERIFY_MOUNT, read_all=True, expect=expect),
        "volumeMounts": [{"name": "data", "mountPath": VERIFY_MOUNT, "readOnly": True}],
        "securityContext": restic_jobs._security()[1],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec = {"restartPolicy": "Never", "securityContext": restic_jobs._security()[0], "enableServiceLinks": False,
            "automountServiceAccountToken": False, "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": scratch_pvc, "readOnly": True}}]}
    if settings.SOTERIA_JOB_SERVICE_ACCOUNT:
        spec["serviceAccountName"] = settings.SOTERIA_JOB_SERVICE_ACCOUNT
        del spec["automountServiceAccountToken"]
    if settings.SOTERIA_JOB_NODE_SELECTOR:
        spec["nodeSelector"] = dict(settings.SOTERIA_JOB_NODE_SELECTOR)
    job_labels = labels(drill_id, driver, scratch_pvc)
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": job_labels,
                     "annotations": {restic_jobs.PVC_ANNOTATION: scratch_pvc}},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": timeout_seconds,
                 "ttlSecondsAfterFinished": settings.SOTERIA_JOB_TTL_SECONDS,
                 "template": {"metadata": {"labels": job_labels}, "spec": spec}},
    }
