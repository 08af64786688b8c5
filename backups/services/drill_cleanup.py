"""What a restore drill leaves, deleted: its Jobs, its scratch claim, the claim's PV and the
Longhorn volume, found by the drill's label and by the scratch map in its record.

The record is a ConfigMap in Soteria's namespace, so the scratch map (where a drill restores,
and what it created) is sealed with Django's key together with the drill's id, PVC and backup
(`trusted`). What the map names is deleted only when its seal holds; and whoever wrote it, a PV
or volume that another claim uses is never deleted (docs/drills.md, docs/security.md).
"""

from __future__ import annotations

import logging

from django.conf import settings

from soteria_site.core import kubernetes, leases, workloads
from soteria_site.core.errors import SoteriaError

from ..clients import longhorn
from ..types import DRILL_LABEL
from . import claims

log = logging.getLogger(__name__)
NOT_SEALED = ("the drill's record was not sealed by this Soteria (SOTERIA_SECRET_KEY): nothing it names was "
              "restored or deleted, only objects labelled with the drill's id")


def trusted(drill: dict, scratch: dict) -> bool:
    """Whether this Soteria wrote the drill's scratch map, for this drill, PVC and backup. The
    record is a ConfigMap in Soteria's namespace: what it names is restored and deleted only
    when its seal (Django's key) holds."""
    return (leases.seal_holds(scratch) and scratch.get("drill") == drill.get("id")
            and scratch.get("source") == f"{drill.get('namespace')}/{drill.get('pvc')}"
            and scratch.get("backup") == drill.get("backup"))


def remove_scratch(drill_id: str, scratch: dict, driver: str) -> dict:
    """Delete everything the drill created, found by its label and its record: Jobs (a restic
    restore Job takes its Secret along), the scratch claim, its PV, and a Longhorn volume."""
    deleted, errors = [], []

    def attempt(what: str, fn, *args) -> None:
        try:
            fn(*args)
            deleted.append(what)
        except SoteriaError as exc:
            log.error("drill %s: could not delete %s: %s", drill_id, what, exc.detail)
            errors.append(f"{what}: {exc.detail}")

    namespace = scratch.get("namespace") or settings.SOTERIA_DRILL_NAMESPACE
    selector = f"{DRILL_LABEL}={drill_id}"
    try:
        for job in workloads.list_jobs(selector, namespace=namespace):
            attempt(f"job {namespace}/{job.name}", workloads.delete_job, namespace, job.name)
    except SoteriaError as exc:
        errors.append(f"jobs: {exc.detail}")
    # PVs Soteria made (a Longhorn restore's, labelled) go with the claim; a provisioned one
    # goes by its reclaim policy: Delete is the provisioner's job (it deletes the storage
    # too), Retain would stay forever, so its PV object is deleted here.
    pv_names = {scratch["pv"]} if scratch.get("pv") else set()
    scratch_claim = None
    try:
        claim = kubernetes.find_pvc(namespace, scratch["pvc"]) if scratch.get("pvc") else None
        if claim is not None and claim.labels.get(DRILL_LABEL) != drill_id:  # the record names another claim
            errors.append(f"left alone: claim {namespace}/{claim.name} is not this drill's scratch claim")
            claim = None
        if claim is not None:
            scratch_claim = (namespace, claim.name)
            if claim.volume_name and claim.volume_name not in pv_names:
                pv = kubernetes.find_pv(claim.volume_name)
                if pv is not None and (pv.labels.get(DRILL_LABEL) or pv.reclaim_policy != "Delete"):
                    pv_names.add(pv.name)
            attempt(f"pvc {namespace}/{claim.name}", kubernetes.delete_pvc, namespace, claim.name)
        pv_names |= {pv.name for pv in kubernetes.list_pvs_labelled(selector)}
    except SoteriaError as exc:
        errors.append(f"claim: {exc.detail}")
    # The record names what to delete; whoever wrote it, a live claim's storage is left alone.
    for name in sorted(pv_names):
        used = _used("", kubernetes.find_pv(name), scratch_claim, errors)
        if used is False:
            attempt(f"pv {name}", kubernetes.delete_pv, name)
    volume = scratch.get("volume") or ""
    if driver == "longhorn" and volume and _used(volume, None, scratch_claim, errors) is False:
        attempt(f"volume {volume}", longhorn.delete_volume, volume)
    return {"succeeded": not errors, "deleted": deleted, "errors": errors}


def _used(volume: str, pv, scratch_claim: tuple[str, str] | None, errors: list[str]) -> bool | None:
    """False when the volume or PV may go; True (said in `errors`) when another claim uses it;
    None when that could not be read (said too: the next sweep tries again)."""
    try:
        why = claims.in_use(volume, pv, ignore=scratch_claim)
    except SoteriaError as exc:
        errors.append(f"{'pv ' + pv.name if pv else 'volume ' + volume}: {exc.detail}")
        return None
    if why:
        errors.append(f"left alone: {why}")
    return bool(why)
