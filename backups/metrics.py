"""Prometheus metrics of the backups app (the contract's names; see docs/metrics.md)."""

from prometheus_client import Counter

BACKUP_REQUESTS = Counter(
    "soteria_backup_requests_total",
    "PVC backup requests, by driver and result (success, dry_run, conflict, rejected, denied, error).",
    ["driver", "result"],
)
NAMESPACE_BACKUP_REQUESTS = Counter(
    "soteria_namespace_backup_requests_total",
    "Namespace-wide backup requests, by driver and result (success, partial, error, dry_run).",
    ["driver", "result"],
)
RESTORE_REQUESTS = Counter(
    "soteria_restore_requests_total",
    "PVC restore requests, by driver and result (success, dry_run, conflict, rejected, denied, error).",
    ["driver", "result"],
)
NAMESPACE_RESTORE_REQUESTS = Counter(
    "soteria_namespace_restore_requests_total",
    "Namespace-wide restore requests, by driver and result (success, partial, error, dry_run).",
    ["driver", "result"],
)
INVENTORY_REFRESH_FAILURES = Counter(
    "soteria_inventory_refresh_failures_total",
    "Inventory refreshes that failed (the previous snapshot stays published).",
)
INVENTORY_SHARING = Counter(
    "soteria_inventory_sharing_total",
    "Inventory refreshes by what the replica did: built (held the refresh Lease), copied (another replica's "
    "newer rows), current (its rows were as new), behind (another replica holds the Lease and published nothing "
    "recent: built itself), unreadable (kept its rows); and publications: published, publish_failed, too_large.",
    ["outcome"],
)
RESTORE_DRILLS = Counter(
    "soteria_restore_drills_total",
    "Restore drills that ended, by driver and result (passed, failed, unverified, error).",
    ["driver", "result"],
)

# `auto` labels only what is refused before the claim's own driver is known.
DRIVERS = ("longhorn", "restic", "auto")
REQUEST_RESULTS = ("success", "dry_run", "conflict", "rejected", "denied", "error")
DRILL_RESULTS = ("passed", "failed", "unverified", "error")
BATCH_RESULTS = ("success", "partial", "error", "dry_run", "conflict", "rejected", "denied")


def initialise() -> None:
    """Create every known label combination, so each family shows in /metrics from the start
    (in multiprocess mode a labelled counter never incremented would be missing)."""
    for driver in DRIVERS:
        for result in REQUEST_RESULTS:
            BACKUP_REQUESTS.labels(driver, result)
            RESTORE_REQUESTS.labels(driver, result)
        for result in BATCH_RESULTS:
            NAMESPACE_BACKUP_REQUESTS.labels(driver, result)
            NAMESPACE_RESTORE_REQUESTS.labels(driver, result)
    for driver in ("longhorn", "restic"):
        for result in DRILL_RESULTS:
            RESTORE_DRILLS.labels(driver, result)
