"""The policy evaluator's Lease: only its holder evaluates (soteria_site.core.leases does the
compare-and-swap). Held by the pod (its hostname), so both worker processes of a pod count as
one replica; a leader that stops renewing is replaced once the Lease expires."""

from __future__ import annotations

from django.conf import settings

LEASE_NAME = "soteria-policy-evaluator"


def lease_seconds() -> int:
    """Two missed evaluation runs and half a minute."""
    return 2 * settings.SOTERIA_POLICY_EVAL_SECONDS + 30
