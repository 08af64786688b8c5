"""The policy store: `policies.json` in the policy Secret, read and written through a Django Storage.

`SecretStorage` is configured as STORAGES["policies"] and obtained with
`storages["policies"]`. Its files are the keys of the Secret SOTERIA_POLICY_SECRET_NAME
in SOTERIA_SECRET_NAMESPACE, and every write is a compare-and-swap on the Secret's
resourceVersion:

- `open(name)` returns a `SecretFile`, which carries the Secret as it was read (its
  `version` is the resourceVersion). Write new content into that file and `save` it: the
  Secret is replaced only if it is still at that version, else `StaleVersion` (a 409).
- `save(name, file)` of any other File writes a key that does not exist yet: when the key
  exists, `StaleVersion` again (Django would save under another name; a Secret key's name
  is its meaning, so it is never renamed). Replacing a key always goes through `open`.
- `exists(name)`; `delete(name)` removes a key (nothing if it is absent), retried while
  other writers change the Secret.
- Django's `url`, `path`, `listdir`, `size` and file times are not implemented (its base
  class raises NotImplementedError): a Secret key has no URL or path, and the store needs
  none of the others.

Every write keeps the Secret's other keys, labels and annotations (kubectl apply records
its last-applied configuration in one). A missing Secret is created on first write,
labelled as Soteria's, where RBAC allows it; deploy/ ships the Secret and grants no
`create` on Secrets.

The policies are the document {"version": 1, "policies": [...]}. `update` reads it,
applies a change and saves it, retrying with jitter when the Secret moved on, so
concurrent writers (web workers, the evaluator, other replicas) never lose an update.
A document Soteria cannot read (bad JSON, unknown version) is reported
(PolicyStoreUnreadable, soteria_policy_store_errors_total) and never overwritten.

Each process remembers the last document it read or wrote (in the shared database cache),
so a Secret or key deleted by someone else is not taken for "no policies": while the last
document remembered held policies, a missing one is reported (PolicyStoreMissing) and not
written over. `recover` is the way back for both: it writes the remembered document (or,
asked to discard, an empty one) and keeps unreadable content under another key.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, NotFound, SoteriaError, UpstreamError
from soteria_site.core.timeparse import format_time

from .metrics import POLICY_STORE_ERRORS
from .types import Policy

log = logging.getLogger(__name__)
FILE = "policies.json"
FORMAT_VERSION = 1
ATTEMPTS = 60  # read-modify-write rounds of `update`
DELETE_ATTEMPTS = 8
OWNER_LABELS = {"app.kubernetes.io/managed-by": "soteria", "soteria.io/purpose": "policies"}
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")  # what Kubernetes accepts as a key of a Secret's data


class StaleVersion(Conflict):
    """The Secret changed since the file was read, or the new key already exists."""

    code = "stale_version"


class PolicyStoreUnreadable(SoteriaError):
    status = 503
    code = "policy_store_unreadable"


class PolicyStoreMissing(PolicyStoreUnreadable):
    """The Secret or its key is gone, but the policies Soteria last read there were not none."""

    code = "policy_store_missing"


class SecretFile(ContentFile):
    """One key of the Secret as `SecretStorage.open` read it, with the Secret as it was then."""

    def __init__(self, content: bytes, name: str, secret: kubernetes.Secret):
        super().__init__(content, name=name)
        self.secret = secret

    @property
    def version(self) -> str:
        """The Secret's resourceVersion when this file was read."""
        return self.secret.resource_version


class SecretStorage(Storage):
    """A Django Storage whose files are the keys of the policy Secret (see the module's doc)."""

    @property
    def namespace(self) -> str:
        return settings.SOTERIA_SECRET_NAMESPACE

    @property
    def secret_name(self) -> str:
        return settings.SOTERIA_POLICY_SECRET_NAME

    def _open(self, name: str, mode: str = "rb") -> SecretFile:
        if mode != "rb":
            raise ValueError(f"keys of Secret {self.namespace}/{self.secret_name} open as 'rb', not {mode!r}: "
                             "write new content into the file read and save it")
        secret = kubernetes.find_secret(self.namespace, self.secret_name)
        if secret is None or name not in secret.data:
            raise FileNotFoundError(f"{name} is not a key of Secret {self.namespace}/{self.secret_name}")
        return SecretFile(secret.data[name], name, secret)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """The name itself, if it can be a Secret's key: keys are never renamed."""
        if not SECRET_KEY.fullmatch(name):
            raise SuspiciousFileOperation(f"{name!r} cannot be a key of a Secret")
        return name

    def _save(self, name: str, content: File) -> str:
        content.seek(0)
        data = content.read()
        data = data.encode() if isinstance(data, str) else data
        if isinstance(content, SecretFile):
            self._write(content.secret, {**content.secret.data, name: data})
            return name
        secret = kubernetes.find_secret(self.namespace, self.secret_name)
        if secret is not None and name in secret.data:
            raise StaleVersion(f"{name} is already a key of Secret {self.namespace}/{self.secret_name}; "
                               "open it and save the file read to replace it")
        self._write(secret, {**(secret.data if secret else {}), name: data})
        return name

    def exists(self, name: str) -> bool:
        secret = kubernetes.find_secret(self.namespace, self.secret_name)
        return secret is not None and name in secret.data

    def delete(self, name: str) -> None:
        for _ in range(DELETE_ATTEMPTS):
            secret = kubernetes.find_secret(self.namespace, self.secret_name)
            if secret is None or name not in secret.data:
                return
            try:
                self._write(secret, {k: v for k, v in secret.data.items() if k != name})
                return
            except StaleVersion:
                continue
        raise Conflict(f"Secret {self.namespace}/{self.secret_name} kept changing; gave up deleting {name}")

    # --- the compare-and-swap -----------------------------------------------------------------
    def _write(self, base: kubernetes.Secret | None, data: dict[str, bytes]) -> None:
        """Replace the Secret with `data` if it is still as `base` (None: it did not exist)."""
        try:
            if base is None:
                self._create(data)
                return
            body = self._body(data, {**base.labels, **OWNER_LABELS}, base.resource_version)
            if base.annotations:
                body["metadata"]["annotations"] = base.annotations
            kubernetes.replace_secret(self.namespace, self.secret_name, body)
        except (Conflict, NotFound):  # changed (409), created meanwhile (409) or deleted since read (404)
            raise StaleVersion(f"Secret {self.namespace}/{self.secret_name} changed since it was read") from None

    def _create(self, data: dict[str, bytes]) -> None:
        try:
            kubernetes.create_secret(self.namespace, self._body(data, dict(OWNER_LABELS)))
        except UpstreamError as exc:
            if exc.upstream_status != 403:
                raise
            raise UpstreamError(
                kubernetes.SYSTEM,
                f"Secret {self.namespace}/{self.secret_name} does not exist and Soteria may not create it; "
                "deploy/ ships it (kubectl apply -k deploy), or create it with the labels "
                + ", ".join(f"{k}={v}" for k, v in OWNER_LABELS.items()),
                upstream_status=403) from None

    def _body(self, data: dict[str, bytes], labels: dict[str, str], version: str = "") -> dict:
        metadata = {"name": self.secret_name, "namespace": self.namespace, "labels": labels}
        if version:
            metadata["resourceVersion"] = version
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


# --- the policies document ----------------------------------------------------------------------
def _storage() -> SecretStorage:
    return storages["policies"]


def where() -> str:
    storage = _storage()
    return f"Secret {storage.namespace}/{storage.secret_name} key {FILE}"


def secret() -> kubernetes.Secret | None:
    """The policy Secret as it is now (None if it does not exist), to record Events on."""
    storage = _storage()
    return kubernetes.find_secret(storage.namespace, storage.secret_name)


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


def _read(storage: SecretStorage) -> SecretFile | None:
    """policies.json as read now; None when there is none yet."""
    try:
        return storage.open(FILE)
    except FileNotFoundError:
        return None


def _current(storage: SecretStorage) -> tuple[SecretFile | None, list[Policy]]:
    """policies.json as read now and its policies; refused when it is unreadable, or missing
    while the document last remembered held policies."""
    file = _read(storage)
    if file is None:
        known = _recall()
        if known and known["count"]:
            # The memory may be newer than that read: another process may have written the first
            # policies between the two. Only a read made after the memory proves them gone.
            file = _read(storage)
        if file is None and known and known["count"]:
            POLICY_STORE_ERRORS.labels("missing").inc()
            raise PolicyStoreMissing(
                f"{where()} is missing (deleted by someone else?), but it held {known['count']} "
                f"policies when Soteria last read it ({known['read_at']}); Soteria will not take that for "
                "no policies. POST /v1/policy-store/recover writes them back; with {\"discard\": true} it "
                "starts over with none.")
    if file is None:
        return None, []
    content = file.read()
    policies = decode(content)
    _remember(content, len(policies), file.version)
    return file, policies


def load() -> list[Policy]:
    return sorted(_current(_storage())[1], key=lambda p: p.id)


def update(change: Callable[[list[Policy]], list[Policy]]) -> list[Policy]:
    """Apply `change` to the current policies and write the result, retrying on a concurrent
    write. `change` may raise to abort (e.g. NotFound); it may be called more than once."""
    storage = _storage()
    for attempt in range(ATTEMPTS):
        file, current = _current(storage)
        changed = change(current)
        content = encode(changed)
        try:
            if file is None:  # a new key: refused if another writer has just made it
                storage.save(FILE, ContentFile(content))
            else:  # refused if the Secret changed since `file` was read
                file.seek(0)
                file.truncate()
                file.write(content)
                storage.save(FILE, file)
            _remember(content, len(changed), "")
            return sorted(changed, key=lambda p: p.id)
        except StaleVersion:
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))
    POLICY_STORE_ERRORS.labels("contention").inc()
    raise Conflict(f"{where()} kept changing while Soteria tried to update it; try again", code="policy_conflict")


# --- the last document read, and the way back -----------------------------------------------------
def memory_key() -> str:
    storage = _storage()
    return f"soteria:policies:last-read:{storage.namespace}/{storage.secret_name}"


def _remember(content: bytes, count: int, version: str) -> None:
    """Keep the document as read (its version) or written ("": the next read records its
    version); written to the cache only when it changed."""
    key = memory_key()
    known = cache.get(key)
    if known and version and known["version"] == version:
        return
    cache.set(key, {"content": content, "count": count, "version": version,
                    "read_at": format_time(datetime.now(timezone.utc))}, timeout=None)


def _recall() -> dict | None:
    return cache.get(memory_key())


def recover(discard: bool = False) -> tuple[list[Policy], str]:
    """Write policies.json back when it is unreadable or missing: the document last remembered,
    or none with `discard`. Unreadable content is kept in the same Secret under the key
    `policies.json.unreadable-<UTC time>`, which is returned ("" when there was none)."""
    storage = _storage()
    for attempt in range(ATTEMPTS):
        secret = kubernetes.find_secret(storage.namespace, storage.secret_name)
        content = secret.data.get(FILE) if secret else None
        known = _recall()
        if content is not None:
            try:
                decode(content)
            except PolicyStoreUnreadable:
                pass
            else:
                raise Conflict(f"{where()} is readable: there is nothing to recover", code="nothing_to_recover")
        elif not (known and known["count"]) and not discard:
            raise Conflict(f"{where()} is missing, and no policies were lost: create a policy to start",
                           code="nothing_to_recover")
        if discard:
            document = encode([])
        elif known:
            document = known["content"]
        else:
            raise Conflict(f"{where()} is unreadable and Soteria has no earlier copy of it; "
                           "start over with {\"discard\": true} (the content is kept under another key)",
                           code="no_copy_to_recover")
        data = dict(secret.data) if secret else {}
        kept = ""
        if content is not None:
            kept = f"{FILE}.unreadable-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
            data[kept] = content
        data[FILE] = document
        try:
            storage._write(secret, data)
        except StaleVersion:
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))
            continue
        policies = decode(document)
        _remember(document, len(policies), "")
        log.warning("policy store recovered: wrote %d policies to %s%s", len(policies), where(),
                    f"; the unreadable content is kept as key {kept}" if kept else "")
        return sorted(policies, key=lambda p: p.id), kept
    raise Conflict(f"{where()} kept changing while Soteria tried to recover it; try again", code="policy_conflict")
