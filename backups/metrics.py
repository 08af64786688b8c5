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
# Beyond the contract: every call to Kubernetes or Longhorn, by operation and outcome.
UPSTREAM_REQUESTS = Counter(
    "soteria_upstream_requests_total",
    "Calls Soteria made to Kubernetes or Longhorn.",
    ["system", "operation", "outcome"],
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
AUTHZ_DENIALS = Counter(
    "soteria_authz_denials_total",
    "Requests refused by authentication or authorization, by reason.",
    ["reason"],
)
# The fixed set of denial reasons (docs/auth.md).
DENIAL_REASONS = ("no_identity", "group_not_allowed", "bad_token", "csrf", "namespace_not_allowed",
                  "permission_denied", "untrusted_proxy", "bad_identity_header")
# Beyond the contract: requests refused before any work, by reason (docs/security.md).
REQUESTS_REFUSED = Counter(
    "soteria_requests_refused_total",
    "Requests refused for their size or rate, or because every worker thread was busy, by reason.",
    ["reason"],
)
REFUSAL_REASONS = ("body_too_large", "length_required", "throttled", "busy")
INVENTORY_REFRESH_FAILURES = Counter(
    "soteria_inventory_refresh_failures_total",
    "Inventory refreshes that failed (the previous snapshot stays published).",
)

DRIVERS = ("longhorn", "restic")
REQUEST_RESULTS = ("success", "dry_run", "conflict", "rejected", "denied", "error")
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
    for reason in DENIAL_REASONS:
        AUTHZ_DENIALS.labels(reason)
    for reason in REFUSAL_REASONS:
        REQUESTS_REFUSED.labels(reason)
