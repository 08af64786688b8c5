"""Prometheus metrics of the backups app (the contract's names; see docs/metrics.md)."""

from prometheus_client import Counter

# Beyond the contract: every call to Kubernetes or Longhorn, by operation and outcome.
UPSTREAM_REQUESTS = Counter(
    "soteria_upstream_requests_total",
    "Calls Soteria made to Kubernetes or Longhorn.",
    ["system", "operation", "outcome"],
)
