"""The kernel's counters: calls to remote systems and requests refused before any work
(the contract's `soteria_authz_denials_total` and Soteria's own; see docs/metrics.md)."""

from prometheus_client import Counter

# Beyond the contract: every call to Kubernetes or Longhorn, by operation and outcome.
UPSTREAM_REQUESTS = Counter(
    "soteria_upstream_requests_total",
    "Calls Soteria made to Kubernetes or Longhorn, and restic runs in its own process.",
    ["system", "operation", "outcome"],
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


def initialise() -> None:
    """Create every known label combination, so each family shows in /metrics from the start
    (in multiprocess mode a labelled counter never incremented would be missing)."""
    for reason in DENIAL_REASONS:
        AUTHZ_DENIALS.labels(reason)
    for reason in REFUSAL_REASONS:
        REQUESTS_REFUSED.labels(reason)
