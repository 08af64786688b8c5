"""Prometheus metrics of the policies app (see docs/metrics.md)."""

from prometheus_client import Counter

POLICY_BACKUPS = Counter(
    "soteria_policy_backups_total",
    "Backups started (or not) by policy evaluation, by result "
    "(success, error, conflict, skipped_in_progress, skipped_stuck).",
    ["result"],
)
# Beyond the contract.
POLICY_STORE_ERRORS = Counter(
    "soteria_policy_store_errors_total",
    "Times the policy Secret could not be read or written, by reason.",
    ["reason"],
)
POLICY_EVALUATIONS = Counter(
    "soteria_policy_evaluations_total",
    "Policy evaluation runs, by outcome (evaluated, not_leader, error).",
    ["outcome"],
)
POLICY_DRILLS = Counter(
    "soteria_policy_restore_drills_total",
    "Restore drills policy evaluation started, or did not: skipped (refused for now: one running, "
    "at capacity, no backup; tried again next time) or error.",
    ["result"],
)
RETENTION_DELETES = Counter(
    "soteria_policy_retention_deletes_total",
    "Backups deleted by policy retention, by result.",
    ["result"],
)


def initialise() -> None:
    for result in ("success", "error", "conflict", "skipped_in_progress", "skipped_stuck"):
        POLICY_BACKUPS.labels(result)
    for result in ("started", "skipped", "error"):
        POLICY_DRILLS.labels(result)
    for outcome in ("evaluated", "not_leader", "error"):
        POLICY_EVALUATIONS.labels(outcome)
