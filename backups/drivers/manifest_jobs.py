"""The manifest of a claim at backup time, taken by a container running the manifest reader
(backups/manifest_reader.py) against the claim mounted read-only.

restic: a `manifest` container in the backup Job (restic_jobs.backup_job), beside `forget`,
once the `backup` init container has saved the snapshot; its key is the Job's name (the
snapshot's soteria.io/job tag). Longhorn: a Job of its own in the PVC's namespace, started
right after the snapshot; its key is the snapshot's name. The key is the Job's
soteria.io/manifest-key annotation either way. services/manifest_collection.py reads the
container's log once it has ended and keeps the manifest in the PVC's verification record.

Files changed at or after the backup's point in time minus CLOCK_MARGIN are left out
(`--since`): the copy may hold them as they were or as they became (docs/drills.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from soteria_site.core.timeparse import format_time

from .. import manifests
from . import job_bodies

OPERATION = "manifest"
CONTAINER = "manifest"
KEY_ANNOTATION = "soteria.io/manifest-key"
MOUNT = "/data"
# How far a node's clock may be behind Soteria's: a file changed up to this long before the
# backup's point in time (by Soteria's clock) is counted as changed, never as unchanged.
CLOCK_MARGIN = timedelta(seconds=30)


def since(point_in_time: datetime) -> datetime:
    """Files changed at or after this are left out of the manifest of a backup taken then."""
    return point_in_time - CLOCK_MARGIN


def container(since_time: datetime, mount: str = MOUNT) -> dict:
    """The container that prints the manifest of the claim (volume `data`, read-only at `mount`)."""
    return {
        "name": CONTAINER, "image": settings.SOTERIA_DRILL_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": manifests.command(mount, since=since_time),
        "volumeMounts": [{"name": "data", "mountPath": mount, "readOnly": True}],
        "securityContext": job_bodies.security_contexts()[1],
        # The reader's traceback becomes the termination message when it fails.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def claim_volume(pvc: str) -> dict:
    return {"name": "data", "persistentVolumeClaim": {"claimName": pvc, "readOnly": True}}


def job(name: str, namespace: str, pvc: str, driver: str, key: str, since_time: datetime, requested_by: str,
        node: str = "") -> dict:
    """A Job of its own that takes the manifest of one claim (the Longhorn driver's)."""
    annotations = {job_bodies.PVC_ANNOTATION: pvc, KEY_ANNOTATION: key, "soteria.io/requested-by": requested_by}
    return job_bodies.job_body(name, namespace, job_bodies.labels(driver, OPERATION, pvc), annotations, [],
                               [container(since_time)], [claim_volume(pvc)], node)


def planned(since_time: datetime) -> dict:
    """What a dry run's plan shows of a manifest step (the reader's text itself is left out)."""
    return {"image": settings.SOTERIA_DRILL_IMAGE, "reads": MOUNT, "readOnly": True,
            "since": format_time(since_time), "sample": settings.SOTERIA_DRILL_SAMPLE_FILES}
