"""What restore drills have proved, read from the PVCs' verification records
(drill_records.py): a drill history, and each PVC's outcome as the inventory and the
metrics show it. Reads only: drills.py runs the drills and writes their results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from soteria_site.core.errors import InvalidInput
from soteria_site.core.names import require_dns_label, require_dns_subdomain
from soteria_site.core.timeparse import parse_time

from . import drill_records


def history(namespace: str | None = None, pvc: str | None = None,
            visible: frozenset[str] | None = None) -> list[dict]:
    """Drills, newest first: of one PVC (one read), or of a namespace or all (one list)."""
    if namespace:
        require_dns_label(namespace, "namespace")
    if pvc:
        if not namespace:
            raise InvalidInput("give the PVC's namespace too", field="namespace")
        require_dns_subdomain(pvc, "pvc")
        found = list(drill_records.load(namespace, pvc).drills)
    else:
        found = [d for (ns, _pvc), record in drill_records.load_all().items() if namespace in (None, ns)
                 for d in record.drills]
    if visible is not None:
        found = [d for d in found if d.get("namespace") in visible]
    return sorted(found, key=lambda d: d.get("started_at") or "", reverse=True)


@dataclass(frozen=True)
class Verification:
    """What the inventory shows of a PVC's drills: the last passed drill, the newest finished
    drill's result, and the newest verdict (passed, failed or unverified; an `error` drill
    says nothing about the backup, so it never clears a failure)."""

    last_verified_at: datetime | None
    verify_result: str
    reason: str = ""
    verdict: str = ""


def verification_of(record: drill_records.Record) -> Verification | None:
    last, passed, verdict = record.last_finished(), record.last_passed(), record.last_verdict()
    if last is None and passed is None:
        return None
    return Verification(last_verified_at=parse_time(passed["finished_at"]) if passed else None,
                        verify_result=last["result"] if last else "", reason=last["reason"] if last else "",
                        verdict=verdict["result"] if verdict else "")


def verification_by_pvc() -> dict[tuple[str, str], Verification]:
    """Each PVC's drill outcome, in one list."""
    found = {}
    for key, record in drill_records.load_all().items():
        verification = verification_of(record)
        if verification is not None:
            found[key] = verification
    return found
