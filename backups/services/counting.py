"""The contract's request counters (docs/metrics.md), counted in one place.

Every backup and restore request is counted once, by its driver (the configured one, or
with `auto` the claim's own once the service knows it) and its result, whoever made it
(the API, the console, a policy). The services wrap each request in `counted`: one PVC
(a namespace batch counts each of its PVCs too) or a whole batch.
A request refused before a service is called (an invalid body, a namespace outside the
caller's scope) is passed to `refused` by the API.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.conf import settings
from prometheus_client import Counter

from soteria_site.core.errors import SoteriaError

from ..metrics import BACKUP_REQUESTS, NAMESPACE_BACKUP_REQUESTS, NAMESPACE_RESTORE_REQUESTS, RESTORE_REQUESTS

__all__ = ["BACKUP_REQUESTS", "NAMESPACE_BACKUP_REQUESTS", "NAMESPACE_RESTORE_REQUESTS", "RESTORE_REQUESTS",
           "batch_result", "counted", "refused", "result_of"]


def result_of(exc: Exception) -> str:
    """The `result` label of a refused or failed request, from the status it answers."""
    status = exc.status if isinstance(exc, SoteriaError) else getattr(exc, "status_code", 500)
    if status == 403:
        return "denied"
    if status == 409:
        return "conflict"
    if status in (400, 404, 422):
        return "rejected"
    return "error"


def refused(counter: Counter, exc: Exception) -> None:
    """Count a request refused before its service was called."""
    counter.labels(settings.SOTERIA_BACKUP_DRIVER, result_of(exc)).inc()


class _Outcome:
    """How the request is counted: its `result`, and its `driver`, the configured driver until
    the service knows the claim's own (with `auto`: longhorn or restic) and sets it."""

    def __init__(self, result: str) -> None:
        self.result = result
        self.driver = settings.SOTERIA_BACKUP_DRIVER


@contextmanager
def counted(counter: Counter, dry_run: bool):
    """Count the request the block carries out: `dry_run` or `success` when it ends, else
    what it raised (`result_of`). A batch sets the yielded outcome's `result` (`batch_result`)."""
    outcome = _Outcome("dry_run" if dry_run else "success")
    try:
        yield outcome
    except Exception as exc:
        counter.labels(outcome.driver, result_of(exc)).inc()
        raise
    counter.labels(outcome.driver, outcome.result).inc()


def batch_result(dry_run: bool, failed: int, done: int) -> str:
    """A namespace batch's result: `partial` when some of its PVCs failed, `error` when all did."""
    if dry_run:
        return "dry_run"
    return "success" if not failed else "partial" if done else "error"
