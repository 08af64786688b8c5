"""A Django Storage whose files are the keys of one Kubernetes Secret.

Configured in STORAGES["policies"]. Besides Django's Storage API it offers
`read_versioned`/`write_versioned`, a compare-and-swap on the Secret's
resourceVersion, so a read-modify-write of one file by many writers loses
nothing (see policies.store.update). Other keys of the Secret are preserved.
The Secret is created on first write, labelled as owned by Soteria, where RBAC
allows it; deploy/ ships the Secret itself and grants no `create` on Secrets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, NotFound, UpstreamError

OWNER_LABELS = {"app.kubernetes.io/managed-by": "soteria", "soteria.io/purpose": "policies"}


class StaleVersion(Exception):
    """The Secret changed since it was read."""


@dataclass(frozen=True)
class Versioned:
    content: bytes | None  # None: no such key (or no Secret yet)
    version: str  # the Secret's resourceVersion; "" when the Secret does not exist
    data: dict = field(default_factory=dict)  # every key, to write back untouched
    labels: dict = field(default_factory=dict)
    # Kept on every write: kubectl apply records its last-applied configuration here.
    annotations: dict = field(default_factory=dict)


@deconstructible
class SecretStorage(Storage):
    def __init__(self, namespace: str | None = None, secret_name: str | None = None):
        self._namespace = namespace
        self._secret_name = secret_name

    @property
    def namespace(self) -> str:
        return self._namespace or settings.SOTERIA_SECRET_NAMESPACE

    @property
    def secret_name(self) -> str:
        return self._secret_name or settings.SOTERIA_POLICY_SECRET_NAME

    # --- compare-and-swap ---------------------------------------------------------------
    def read_versioned(self, name: str) -> Versioned:
        secret = kubernetes.find_secret(self.namespace, self.secret_name)
        if secret is None:
            return Versioned(None, "")
        return Versioned(secret.data.get(name), secret.resource_version, dict(secret.data), dict(secret.labels),
                         dict(secret.annotations))

    def write_versioned(self, name: str, content: bytes | None, base: Versioned) -> str:
        """Set (or, with None, remove) one key, if the Secret is still as `base` read it.
        Raises StaleVersion otherwise. Returns the new resourceVersion."""
        data = dict(base.data)
        if content is None:
            data.pop(name, None)
        else:
            data[name] = content
        try:
            if not base.version:
                if content is None:
                    return ""
                return self._create(data)
            body = self._body(data, base.version, labels={**base.labels, **OWNER_LABELS})
            if base.annotations:
                body["metadata"]["annotations"] = base.annotations
            return kubernetes.replace_secret(self.namespace, self.secret_name, body).resource_version
        except (Conflict, NotFound):
            raise StaleVersion(name) from None

    def _create(self, data: dict[str, bytes]) -> str:
        try:
            return kubernetes.create_secret(self.namespace, self._body(data, "")).resource_version
        except UpstreamError as exc:
            if exc.upstream_status != 403:
                raise
            raise UpstreamError(
                kubernetes.SYSTEM,
                f"Secret {self.namespace}/{self.secret_name} does not exist and Soteria may not create it; "
                "deploy/ ships it (kubectl apply -k deploy), or create it with the labels "
                + ", ".join(f"{k}={v}" for k, v in OWNER_LABELS.items()),
                upstream_status=403) from None

    def _body(self, data: dict[str, bytes], version: str, labels: dict | None = None) -> dict:
        metadata = {"name": self.secret_name, "namespace": self.namespace, "labels": labels or dict(OWNER_LABELS)}
        if version:
            metadata["resourceVersion"] = version
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}

    def _cas(self, name: str, content: bytes | None, attempts: int = 8) -> None:
        for _ in range(attempts):
            current = self.read_versioned(name)
            try:
                self.write_versioned(name, content, current)
                return
            except StaleVersion:
                continue
        raise Conflict(f"Secret {self.namespace}/{self.secret_name} kept changing; gave up writing {name}")

    # --- Django's Storage API -------------------------------------------------------------
    def _open(self, name, mode="rb"):
        content = self.read_versioned(name).content
        if content is None:
            raise FileNotFoundError(f"{name} is not a key of Secret {self.namespace}/{self.secret_name}")
        return ContentFile(content, name=name)

    def _save(self, name, content):
        content.seek(0)
        data = content.read()
        self._cas(name, data if isinstance(data, bytes) else data.encode())
        return name

    def get_available_name(self, name, max_length=None):
        return name  # keys are overwritten, like a configuration file

    def delete(self, name):
        self._cas(name, None)

    def exists(self, name):
        return self.read_versioned(name).content is not None

    def listdir(self, path):
        secret = kubernetes.find_secret(self.namespace, self.secret_name)
        return [], sorted(secret.data) if secret else []

    def size(self, name):
        content = self.read_versioned(name).content
        if content is None:
            raise FileNotFoundError(name)
        return len(content)

    def url(self, name):
        raise NotImplementedError("Secret keys have no URL")
