"""Domain results as API bodies (times as UTC ISO-8601 with Z)."""

from __future__ import annotations

from soteria_site.core.timeparse import format_time

from ..types import BackupRecord, BackupResult, Inventory, NamespaceBackupResult, PlannedCall


def plan(calls: tuple[PlannedCall, ...]) -> list[dict]:
    return [{"call": c.call, "target": c.target, "args": c.args} for c in calls]


def backup_result(result: BackupResult) -> dict:
    body = {"driver": result.driver, "volume": result.volume, "backup": result.backup,
            "namespace": result.namespace, "requested_by": result.requested_by, "dry_run": result.dry_run}
    if result.dry_run:
        body["plan"] = plan(result.plan)
    return body


def namespace_backup(result: NamespaceBackupResult) -> dict:
    rows = []
    for o in result.results:
        row = {"pvc": o.pvc, "status": o.status, "volume": o.volume, "backup": o.backup, "error": o.error,
               "detail": o.detail}
        if o.plan:
            row["plan"] = plan(o.plan)
        rows.append(row)
    return {"driver": result.driver, "namespace": result.namespace, "requested_by": result.requested_by,
            "dry_run": result.dry_run, "results": rows, "totals": result.totals}


def inventory(inv: Inventory) -> dict:
    return {
        "generated_at": format_time(inv.generated_at),
        "namespaces": [
            {"name": name, "pvcs": [{
                "namespace": i.namespace, "pvc": i.pvc, "volume": i.volume, "storage_class": i.storage_class,
                "capacity": i.capacity, "driver": i.driver, "last_backup_at": format_time(i.last_backup_at),
                "last_backup_age_hours": i.last_backup_age_hours, "backup_count": i.backup_count,
                "healthy": i.healthy, "health_reason": i.health_reason,
            } for i in items]}
            for name, items in inv.by_namespace()
        ],
    }


def backups(found) -> dict:
    return {"namespace": found.namespace, "pvc": found.pvc, "volume": found.volume,
            "backups": [backup_record(r) for r in found.backups]}


def backup_record(r: BackupRecord) -> dict:
    return {"name": r.name, "snapshot": r.snapshot, "url": r.url, "state": r.state, "progress": r.progress,
            "created": format_time(r.created), "size": r.size, "labels": r.labels, "backup_mode": r.backup_mode,
            "error": r.error}


def restore_result(result) -> dict:
    p = result.plan
    body = {"driver": p.driver, "namespace": p.namespace, "pvc": p.pvc, "snapshot": p.backup.snapshot,
            "backup": p.backup.name, "backup_url": p.backup.url, "backup_created": format_time(p.backup.created),
            "source_volume": p.source_volume, "target_namespace": p.target_namespace, "target_pvc": p.target_pvc,
            "volume": p.volume, "pv": p.pv, "storage_class": p.storage_class, "size": p.size,
            "backup_size": p.backup_size, "source_size": p.source_size, "size_note": p.size_note,
            "requested_by": result.requested_by, "dry_run": result.dry_run}
    if result.dry_run:
        body["plan"] = plan(p.calls)
    return body


def namespace_restore(result) -> dict:
    rows = []
    for o in result.results:
        rows.append({"pvc": o.pvc, "target_pvc": o.target_pvc, "status": o.status, "error": o.error,
                     "detail": o.detail, "backup": o.plan.backup.name if o.plan else "",
                     "backup_created": format_time(o.plan.backup.created) if o.plan else None,
                     "volume": o.plan.volume if o.plan and o.status != "planned" else ""})
    return {"driver": result.driver, "namespace": result.namespace, "target_namespace": result.target_namespace,
            "target_prefix": result.target_prefix, "requested_by": result.requested_by, "dry_run": result.dry_run,
            "results": rows, "totals": result.totals}


def restore_status(rows) -> dict:
    return {"restores": [{"namespace": r.namespace, "pvc": r.pvc, "volume": r.volume, "source": r.source,
                          "backup": r.backup, "state": r.state, "progress": r.progress, "detail": r.detail}
                         for r in rows]}
