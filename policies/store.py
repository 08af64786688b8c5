"""Policies, stored as `policies.json` in the policy Secret through the Secret storage.

Format: {"version": 1, "policies": [...]}. Every change is a compare-and-swap
on the Secret's resourceVersion, retried with jitter, so concurrent writers
(web workers, the evaluator, other replicas) never lose an update. A Secret
whose policies cannot be read (bad JSON, unknown version) is reported and
never overwritten.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

from django.core.files.storage import storages

from soteria_site.core.errors import Conflict, SoteriaError

from .metrics import POLICY_STORE_ERRORS
from .storage import StaleVersion
from .types import Policy

FILE = "policies.json"
FORMAT_VERSION = 1
ATTEMPTS = 60


class PolicyStoreUnreadable(SoteriaError):
    status = 503
    code = "policy_store_unreadable"


def _storage():
    return storages["policies"]


def where() -> str:
    storage = _storage()
    return f"Secret {storage.namespace}/{storage.secret_name} key {FILE}"


def decode(content: bytes | None) -> list[Policy]:
    if content is None:
        return []
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        POLICY_STORE_ERRORS.labels("invalid_json").inc()
        raise PolicyStoreUnreadable(f"{where()} is not valid JSON ({exc}); Soteria will not overwrite it. "
                                    "Fix or remove the key with kubectl.") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        POLICY_STORE_ERRORS.labels("unknown_version").inc()
        raise PolicyStoreUnreadable(f"{where()} has format version {version!r}; this Soteria reads version "
                                    f"{FORMAT_VERSION} and will not overwrite it.")
    try:
        return [Policy.from_json(p) for p in data.get("policies") or []]
    except (KeyError, TypeError, ValueError) as exc:
        POLICY_STORE_ERRORS.labels("invalid_policy").inc()
        raise PolicyStoreUnreadable(f"{where()} holds a policy Soteria cannot read ({exc}); "
                                    "it will not be overwritten.") from None


def encode(policies: list[Policy]) -> bytes:
    ordered = sorted(policies, key=lambda p: p.id)
    return (json.dumps({"version": FORMAT_VERSION, "policies": [p.to_json() for p in ordered]}, indent=2,
                       sort_keys=True) + "\n").encode()


def load() -> list[Policy]:
    return sorted(decode(_storage().read_versioned(FILE).content), key=lambda p: p.id)


def update(change: Callable[[list[Policy]], list[Policy]]) -> list[Policy]:
    """Apply `change` to the current policies and write the result, retrying on a concurrent
    write. `change` may raise to abort (e.g. NotFound); it may be called more than once."""
    storage = _storage()
    for attempt in range(ATTEMPTS):
        base = storage.read_versioned(FILE)
        current = decode(base.content)
        changed = change(list(current))
        try:
            storage.write_versioned(FILE, encode(changed), base)
            return sorted(changed, key=lambda p: p.id)
        except StaleVersion:
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))
    POLICY_STORE_ERRORS.labels("contention").inc()
    raise Conflict(f"{where()} kept changing while Soteria tried to update it; try again", code="policy_conflict")
