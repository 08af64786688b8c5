"""Swap a restored claim into place under the Deployment or StatefulSet that mounts its
source, and undo it (docs/swap.md).

Two procedures, chosen by how the workload mounts the source claim:
- `volume`: a pod template volume names the claim (a Deployment, or a StatefulSet's shared
  claim): scale to zero, point that volume at the restored claim, scale back.
- `claim`: a StatefulSet's volumeClaimTemplates name the claim (`<template>-<sts>-<ordinal>`),
  a name the StatefulSet cannot be told to change: scale to zero, keep both volumes (Retain),
  delete both claims, pre-bind the restored volume to the original claim name and create that
  claim on it, scale back.

Every refusal is made before anything changes. What undo needs (the previous replicas,
claim, volumes and their reclaim policies) is written first, as an annotation on the
workload, and undo works from any point a swap reached. Each step is an Event on the source
claim and is reported to the caller as it is done (`on_step`), which the API and the console
record in the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from soteria_site.core import events, kubernetes
from soteria_site.core.errors import Conflict, InvalidInput, NotFound, SoteriaError, UpstreamError
from soteria_site.core.kubernetes import Pvc
from soteria_site.core.names import require_dns_label, require_dns_subdomain
from soteria_site.core.timeparse import format_time

from ..clients import workloads
from ..clients.workloads import STATEFULSET, ClaimVolume, Workload
from ..drivers.longhorn_restore import quantity_bytes
from . import claims, swap_steps

RECORD = swap_steps.RECORD
RECORD_MAX_BYTES = 32 * 1024
VOLUME, CLAIM = "volume", "claim"
# Claim annotations the control plane sets: never copied into a recreated claim.
SYSTEM_ANNOTATION_PREFIXES = ("pv.kubernetes.io/", "volume.beta.kubernetes.io/", "volume.kubernetes.io/",
                              "kubectl.kubernetes.io/")


@dataclass
class SwapStep:
    number: int
    action: str
    target: str
    detail: str
    status: str = "planned"  # planned | done | skipped | failed
    args: dict = field(default_factory=dict)


@dataclass
class SwapResult:
    operation: str  # swap | undo
    namespace: str
    pvc: str
    restored_pvc: str
    workload_kind: str
    workload_name: str
    replicas: int
    mode: str
    requested_by: str
    dry_run: bool
    steps: list[SwapStep]
    recorded_at: str = ""
    recorded_by: str = ""


StepHook = Callable[[SwapResult, SwapStep], None]


# --- Finding the workload --------------------------------------------------------------------
def _template_claim(workload: Workload, pvc: str) -> str | None:
    """The volumeClaimTemplate whose claim `pvc` is (`<template>-<sts>-<ordinal>`), if any."""
    if workload.kind != STATEFULSET:
        return None
    for template in workload.claim_templates:
        prefix = f"{template}-{workload.name}-"
        if pvc.startswith(prefix) and pvc[len(prefix):].isdigit():
            return template
    return None


def _volume_for(workload: Workload, pvc: str) -> ClaimVolume | None:
    return next((v for v in workload.claim_volumes if v.claim == pvc), None)


def mounts(workload: Workload, pvc: str) -> bool:
    return _volume_for(workload, pvc) is not None or _template_claim(workload, pvc) is not None


def _record_of(workload: Workload) -> dict | None:
    text = workload.annotations.get(RECORD)
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        raise Conflict(f"{workload.kind} {workload.namespace}/{workload.name} carries an unreadable {RECORD} "
                       "annotation; Soteria will not act on it (remove it by hand once the workload is as it "
                       "should be)", code="swap_record_unreadable") from None
    if not isinstance(record, dict) or record.get("version") != 1:
        raise Conflict(f"{workload.kind} {workload.namespace}/{workload.name} carries a {RECORD} annotation "
                       "this Soteria does not understand", code="swap_record_unreadable")
    return record


def _label(workload: Workload) -> str:
    return f"{workload.kind} {workload.namespace}/{workload.name}"


def _pick(found: list[Workload], workload: dict | None, namespace: str, what: str) -> Workload:
    """The one workload of `found`, checked against the one the caller named."""
    if workload:
        named = [w for w in found if (w.kind, w.name) == (workload["kind"], workload["name"])]
        if not named:
            raise Conflict(f"{workload['kind']} {namespace}/{workload['name']} {what}",
                           code="workload_does_not_mount", field="workload")
    if len(found) > 1:
        names = ", ".join(_label(w) for w in found)
        raise Conflict(f"more than one workload mounts it ({names}); Soteria swaps a claim only under a single "
                       "workload", code="several_workloads", workloads=[_label(w) for w in found])
    if not found:
        raise Conflict(f"no Deployment or StatefulSet in namespace {namespace} {what}", code="no_workload")
    return found[0]


def _workloads_of(namespace: str) -> list[Workload]:
    """The namespace's Deployments and StatefulSets; a refusal says which rights are missing."""
    try:
        return workloads.list_workloads(namespace)
    except UpstreamError as exc:
        if exc.upstream_status != 403:
            raise
        raise UpstreamError("kubernetes", f"{exc.detail}; swapping needs the rights of the optional component "
                                          "deploy/overlays/swap (docs/swap.md)", upstream_status=403) from None


# --- Checks ------------------------------------------------------------------------------------
def _size(pvc: Pvc) -> int | None:
    return quantity_bytes(pvc.capacity or pvc.requested or "")


def _check_claims(source: Pvc, restored: Pvc) -> None:
    if restored.deleting or restored.phase != "Bound":
        raise Conflict(f"restored PVC {restored.namespace}/{restored.name} is {restored.phase}"
                       f"{' and being deleted' if restored.deleting else ''}; it must be Bound to be swapped in "
                       "(a Longhorn restore binds once its volume exists, a restic one once its Job has run)",
                       code="restored_not_bound", field="restored_pvc")
    if source.deleting:
        raise Conflict(f"PVC {source.namespace}/{source.name} is being deleted", code="pvc_deleting", field="pvc")
    if set(restored.access_modes) != set(source.access_modes):
        raise Conflict(f"restored PVC {restored.name} has access modes {', '.join(restored.access_modes) or 'none'}"
                       f", PVC {source.name} has {', '.join(source.access_modes) or 'none'}: they must be the same",
                       code="access_modes_differ", field="restored_pvc")
    have, need = _size(restored), _size(source)
    if have is None or need is None or have < need:
        raise Conflict(f"restored PVC {restored.name} ({restored.capacity or restored.requested}) is smaller than "
                       f"PVC {source.name} ({source.capacity or source.requested}) or its size is unreadable",
                       code="restored_smaller", field="restored_pvc")


def _check_workload(workload: Workload, pvc: str, restored: str, everything: list[Workload]) -> None:
    namespace = workload.namespace
    if not workload.settled:
        raise Conflict(f"{_label(workload)} is not settled (a rollout in progress, paused, or its replicas not "
                       f"all updated: {workload.updated_replicas}/{workload.replicas} updated, generation "
                       f"{workload.observed_generation}/{workload.generation} observed); try again once it is",
                       code="workload_not_settled")
    users = [w for w in everything if mounts(w, restored)]
    if users:
        raise Conflict(f"restored PVC {namespace}/{restored} is already mounted by {_label(users[0])}",
                       code="restored_in_use", field="restored_pvc")
    scalers = [a for a in workloads.list_autoscalers(namespace)
               if (a.target_kind, a.target_name) == (workload.kind, workload.name)]
    if scalers:
        raise Conflict(f"{_label(workload)} is scaled by HorizontalPodAutoscaler {scalers[0].name}, which would "
                       "scale it back up while its claim is swapped; Soteria does not swap under an autoscaler",
                       code="hpa_managed")
    for pod in workloads.list_pod_uses(namespace):
        if pod.ended:  # e.g. the manifest Job of the backup that was restored
            continue
        if restored in pod.claims:
            raise Conflict(f"restored PVC {namespace}/{restored} is mounted by pod {pod.name}",
                           code="restored_in_use", field="restored_pvc")
        if pvc in pod.claims and not swap_steps.owned(workload, pod):
            owner = f"{pod.owner_kind} {pod.owner_name}" if pod.owner_kind else "no controller (a bare pod)"
            raise Conflict(f"PVC {namespace}/{pvc} is also mounted by pod {pod.name} ({owner}); scaling "
                           f"{_label(workload)} to zero would not free it", code="mounted_by_other_pods",
                           pod=pod.name)


# --- Plans -------------------------------------------------------------------------------------
def _claim_spec(pvc: Pvc) -> dict:
    """What recreating a claim needs, as kept in the record."""
    return {"labels": dict(pvc.labels), "storage_class": pvc.storage_class,
            "access_modes": list(pvc.access_modes), "request": pvc.requested or pvc.capacity,
            "annotations": {k: v for k, v in pvc.annotations.items()
                            if not k.startswith(SYSTEM_ANNOTATION_PREFIXES)}}


def _record(workload: Workload, source: claims.Claim, restored: claims.Claim, mode: str, by: str) -> dict:
    record = {"version": 1, "mode": mode, "pvc": source.pvc.name, "restored_pvc": restored.pvc.name,
              "replicas": workload.replicas, "at": format_time(datetime.now(timezone.utc)), "by": by}
    if mode == VOLUME:
        volume = _volume_for(workload, source.pvc.name)
        record["volume"] = {"index": volume.index, "name": volume.name}
    else:
        record.update(old_pv=source.pv.name, old_pv_policy=source.pv.reclaim_policy or "Delete",
                      restored_pv=restored.pv.name, restored_pv_policy=restored.pv.reclaim_policy or "Delete",
                      old_claim=_claim_spec(source.pvc), restored_claim=_claim_spec(restored.pvc))
    if len(json.dumps(record)) > RECORD_MAX_BYTES:
        raise Conflict(f"the claims' labels and annotations are too large to keep for undo (over {RECORD_MAX_BYTES}"
                       " bytes)", code="swap_record_too_large")
    return record


def _step(steps: list[SwapStep], action: str, target: str, detail: str, **args) -> None:
    steps.append(SwapStep(len(steps) + 1, action, target, detail, args=args))


def _scale_steps(steps, workload: Workload, ns: str, claim: str) -> None:
    _step(steps, "scale", _label(workload), f"scale {_label(workload)} from {workload.replicas} to 0 replicas",
          replicas=0)
    _step(steps, "wait_pods_gone", _label(workload), f"wait until no pod of {workload.name} mounts PVC {ns}/{claim}",
          claim=claim)


def _scale_back_steps(steps, workload: Workload, record: dict) -> None:
    _step(steps, "scale", _label(workload), f"scale {_label(workload)} back to {record['replicas']} replicas",
          replicas=record["replicas"])
    _step(steps, "wait_ready", _label(workload), f"wait until {_label(workload)} runs {record['replicas']} ready, "
          "up-to-date replicas", replicas=record["replicas"])


def _swap_steps(workload: Workload, record: dict) -> list[SwapStep]:
    ns, pvc, restored = workload.namespace, record["pvc"], record["restored_pvc"]
    steps: list[SwapStep] = []
    _step(steps, "record", _label(workload), f"keep what undo needs in annotation {RECORD} of {_label(workload)}")
    _scale_steps(steps, workload, ns, pvc)
    if record["mode"] == VOLUME:
        volume = record["volume"]
        _step(steps, "point_volume", _label(workload), f"point volume {volume['name']} of the pod template from "
              f"PVC {pvc} to PVC {restored}", index=volume["index"], volume=volume["name"], old=pvc, new=restored)
    else:
        old_pv, new_pv = record["old_pv"], record["restored_pv"]
        _step(steps, "retain_pv", f"PV {old_pv}", f"set PV {old_pv} (PVC {pvc}'s volume) to reclaim policy Retain, "
              f"so deleting the claim keeps it for undo (was {record['old_pv_policy']})", pv=old_pv, policy="Retain")
        _step(steps, "retain_pv", f"PV {new_pv}", f"set PV {new_pv} (PVC {restored}'s volume) to reclaim policy "
              f"Retain (was {record['restored_pv_policy']})", pv=new_pv, policy="Retain")
        _step(steps, "delete_pvc", f"PVC {ns}/{pvc}", f"delete PVC {pvc} (its PV {old_pv} is kept)", pvc=pvc, pv=old_pv)
        _step(steps, "delete_pvc", f"PVC {ns}/{restored}", f"delete PVC {restored} (its PV {new_pv} is kept)",
              pvc=restored, pv=new_pv)
        _step(steps, "bind_pv", f"PV {new_pv}", f"pre-bind PV {new_pv} to claim {ns}/{pvc} (claimRef without uid)",
              pv=new_pv, claim=pvc)
        _step(steps, "create_pvc", f"PVC {ns}/{pvc}", f"create PVC {pvc} on PV {new_pv} and wait until it is Bound",
              pvc=pvc, pv=new_pv, spec="old_claim")
    _scale_back_steps(steps, workload, record)
    return steps


def _undo_steps(workload: Workload, record: dict) -> list[SwapStep]:
    ns, pvc, restored = workload.namespace, record["pvc"], record["restored_pvc"]
    steps: list[SwapStep] = []
    _scale_steps(steps, workload, ns, restored if record["mode"] == VOLUME else pvc)
    if record["mode"] == VOLUME:
        volume = record["volume"]
        _step(steps, "point_volume", _label(workload), f"point volume {volume['name']} of the pod template back "
              f"from PVC {restored} to PVC {pvc}", index=volume["index"], volume=volume["name"], old=restored, new=pvc)
    else:
        old_pv, new_pv = record["old_pv"], record["restored_pv"]
        _step(steps, "delete_pvc", f"PVC {ns}/{pvc}", f"delete PVC {pvc} if it is on PV {new_pv} (the PV is kept)",
              pvc=pvc, pv=new_pv, unless_pv=old_pv)
        _step(steps, "bind_pv", f"PV {old_pv}", f"pre-bind PV {old_pv} to claim {ns}/{pvc} again", pv=old_pv,
              claim=pvc)
        _step(steps, "create_pvc", f"PVC {ns}/{pvc}", f"create PVC {pvc} on PV {old_pv} again and wait until it is "
              "Bound", pvc=pvc, pv=old_pv, spec="old_claim")
        _step(steps, "bind_pv", f"PV {new_pv}", f"pre-bind PV {new_pv} to claim {ns}/{restored} again", pv=new_pv,
              claim=restored)
        _step(steps, "create_pvc", f"PVC {ns}/{restored}", f"create PVC {restored} on PV {new_pv} again and wait "
              "until it is Bound", pvc=restored, pv=new_pv, spec="restored_claim")
        _step(steps, "retain_pv", f"PV {old_pv}", f"set PV {old_pv}'s reclaim policy back to "
              f"{record['old_pv_policy']}", pv=old_pv, policy=record["old_pv_policy"])
        _step(steps, "retain_pv", f"PV {new_pv}", f"set PV {new_pv}'s reclaim policy back to "
              f"{record['restored_pv_policy']}", pv=new_pv, policy=record["restored_pv_policy"])
    _scale_back_steps(steps, workload, record)
    _step(steps, "forget", _label(workload), f"remove annotation {RECORD} from {_label(workload)}")
    return steps


# --- The use cases -----------------------------------------------------------------------------
def _validate(namespace: str, pvc: str, workload: dict | None) -> None:
    require_dns_label(namespace, "namespace")
    require_dns_subdomain(pvc, "pvc")
    if workload is not None:
        if workload.get("kind") not in workloads.KINDS:
            raise InvalidInput(f"workload kind must be one of {', '.join(workloads.KINDS)}", field="workload")
        require_dns_subdomain(workload.get("name") or "", "workload")


def _claim(namespace: str, name: str, field_name: str) -> claims.Claim:
    try:
        return claims.get_claim(namespace, name)
    except NotFound:
        raise NotFound(f"PVC {namespace}/{name} not found", field=field_name) from None


def swap(namespace: str, pvc: str, restored_pvc: str, requested_by: str, *, workload: dict | None = None,
         dry_run: bool = False, on_step: StepHook | None = None) -> SwapResult:
    """POST /v1/restores/swap: plan every step and refuse what Soteria does not understand; then
    (unless a dry run) carry the steps out, stopping at the first that fails."""
    _validate(namespace, pvc, workload)
    require_dns_subdomain(restored_pvc, "restored_pvc")
    if restored_pvc == pvc:
        raise InvalidInput("restored_pvc must be another PVC than pvc", field="restored_pvc")
    source, restored = _claim(namespace, pvc, "pvc"), _claim(namespace, restored_pvc, "restored_pvc")
    _check_claims(source.pvc, restored.pvc)
    everything = _workloads_of(namespace)
    for other in everything:
        record = _record_of(other)
        if record and pvc in (record.get("pvc"), record.get("restored_pvc")):
            raise Conflict(f"{_label(other)} already has a swap of PVC {namespace}/{record.get('pvc')} in place "
                           f"(by {record.get('by', '?')} at {record.get('at', '?')}); undo it first",
                           code="swap_in_place", workload=_label(other))
    chosen = _pick([w for w in everything if mounts(w, pvc)], workload, namespace, f"mounts PVC {pvc}")
    _check_workload(chosen, pvc, restored_pvc, everything)
    mode = VOLUME if _volume_for(chosen, pvc) else CLAIM
    if mode == CLAIM:
        for claim, name in ((source, "pvc"), (restored, "restored_pvc")):
            if claim.pv is None:
                raise Conflict(f"PVC {namespace}/{claim.pvc.name} has no PersistentVolume bound back to it",
                               code="pvc_not_bound", field=name)
    record = _record(chosen, source, restored, mode, requested_by)
    result = SwapResult("swap", namespace, pvc, restored_pvc, chosen.kind, chosen.name, chosen.replicas, mode,
                        requested_by, dry_run, _swap_steps(chosen, record), record["at"], requested_by)
    if not dry_run:
        _run(result, chosen, record, source.pvc, on_step)
    return result


def undo(namespace: str, pvc: str, requested_by: str, *, workload: dict | None = None, dry_run: bool = False,
         on_step: StepHook | None = None) -> SwapResult:
    """POST /v1/restores/swap/undo: put back what the swap of `pvc` changed, from its record;
    works after a complete swap and after one that stopped part way."""
    _validate(namespace, pvc, workload)
    found = []
    for candidate in _workloads_of(namespace):
        record = _record_of(candidate)
        if record and record.get("pvc") == pvc:
            found.append((candidate, record))
    if not found:
        raise NotFound(f"no swap of PVC {namespace}/{pvc} to undo: no Deployment or StatefulSet of the namespace "
                       f"carries its {RECORD} record", code="no_swap")
    chosen, record = found[0]
    if workload and (workload["kind"], workload["name"]) != (chosen.kind, chosen.name):
        raise Conflict(f"the swap of PVC {namespace}/{pvc} is recorded on {_label(chosen)}",
                       code="workload_does_not_mount", field="workload")
    result = SwapResult("undo", namespace, pvc, record.get("restored_pvc", ""), chosen.kind, chosen.name,
                        int(record.get("replicas", 0)), record.get("mode", ""), requested_by, dry_run,
                        _undo_steps(chosen, record), record.get("at", ""), record.get("by", ""))
    if not dry_run:
        source = kubernetes.find_pvc(namespace, pvc)
        _run(result, chosen, record, source, on_step)
    return result


def status(namespace: str, pvc: str) -> SwapResult | None:
    """The swap of `pvc` in place (its undo plan), or None: what the console shows."""
    try:
        return undo(namespace, pvc, "", dry_run=True)
    except NotFound:
        return None


def _run(result: SwapResult, workload: Workload, record: dict, source: Pvc | None,
         on_step: StepHook | None) -> None:
    reason = "Swap" if result.operation == "swap" else "SwapUndo"
    where = (result.namespace, result.pvc, source.uid if source else "")
    for index, step in enumerate(result.steps):
        try:
            done = swap_steps.run(step, workload, record)
        except SoteriaError as exc:
            result.steps[index] = replace(step, status="failed", detail=f"{step.detail}: {exc.detail}")
            events.emit("PersistentVolumeClaim", *where, f"{reason}Failed",
                        f"{result.operation} of PVC {result.pvc} under {workload.kind} {workload.name}, requested by "
                        f"{result.requested_by}, stopped at step {step.number} ({step.action}): {exc.detail}",
                        warning=True)
            if on_step:
                on_step(result, result.steps[index])
            exc.extra["steps"] = [_as_dict(s) for s in result.steps]
            exc.detail = (f"{result.operation} stopped at step {step.number} of {len(result.steps)} "
                          f"({step.action}): {exc.detail}; " + ("POST /v1/restores/swap/undo puts back what was "
                                                                "done" if result.operation == "swap" else
                                                                "fix the cause and undo again"))
            raise
        result.steps[index] = replace(step, status="done" if done else "skipped")
        events.emit("PersistentVolumeClaim", *where, reason,
                    f"step {step.number}/{len(result.steps)} {step.action} "
                    f"{'done' if done else 'already so'}: {step.detail} (requested by {result.requested_by})")
        if on_step:
            on_step(result, result.steps[index])


def _as_dict(step: SwapStep) -> dict:
    return {"number": step.number, "action": step.action, "target": step.target, "detail": step.detail,
            "status": step.status}
