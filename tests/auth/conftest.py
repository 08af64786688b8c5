"""The fixed cast of identities used wherever auth matters."""

import ipaddress
from dataclasses import dataclass, field

import pytest

from soteria_site.core.metrics import AUTHZ_DENIALS
from tests.backups.fake_cluster import cluster  # noqa: F401

TOKEN = "ci-token-0123456789abcdef0123456789"


@dataclass(frozen=True)
class Person:
    name: str
    headers: dict = field(default_factory=dict)


CAST = {
    "admin": Person("alice", {"HTTP_X_AUTH_REQUEST_USER": "alice", "HTTP_X_AUTH_REQUEST_EMAIL": "alice@example.org",
                              "HTTP_X_AUTH_REQUEST_GROUPS": "admin"}),
    "maintenance": Person("bob", {"HTTP_X_AUTH_REQUEST_USER": "bob", "HTTP_X_AUTH_REQUEST_GROUPS": "/maintenance"}),
    "semicolons": Person("carol", {"HTTP_X_FORWARDED_USER": "carol", "HTTP_X_FORWARDED_GROUPS": "devs; /maintenance"}),
    "viewer": Person("dave", {"HTTP_X_AUTH_REQUEST_USER": "dave", "HTTP_X_AUTH_REQUEST_GROUPS": "viewers"}),
    "scoped": Person("erin", {"HTTP_X_AUTH_REQUEST_USER": "erin", "HTTP_X_AUTH_REQUEST_GROUPS": "team-ai"}),
    "outsider": Person("mallory", {"HTTP_X_AUTH_REQUEST_USER": "mallory", "HTTP_X_AUTH_REQUEST_GROUPS": "guests"}),
    "token": Person("token:ci", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}),
    "wrong_token": Person("", {"HTTP_AUTHORIZATION": "Bearer not-the-token"}),
    "nobody": Person("", {}),
}


@pytest.fixture
def auth_on(settings):
    settings.SOTERIA_AUTH_REQUIRED = True
    settings.SOTERIA_ALLOWED_GROUPS = ["admin", "maintenance"]
    settings.SOTERIA_READONLY_GROUPS = ["viewers"]
    settings.SOTERIA_BACKUP_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_RESTORE_SCOPES = {"team-ai": frozenset({"ai", "ai-restore"})}
    settings.SOTERIA_AUTH_BEARER_TOKENS = [("ci", TOKEN)]
    # The test client's requests come from 127.0.0.1: it plays the trusted proxy here.
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    return settings


@pytest.fixture
def world(cluster):  # noqa: F811 - the fixture imported above
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    cluster.namespaces.update({"ai-restore", "media-restore"})
    return cluster


class Denials:
    def __init__(self):
        self.before = self.snapshot()

    @staticmethod
    def snapshot():
        from soteria_site.core.metrics import DENIAL_REASONS
        return {r: AUTHZ_DENIALS.labels(r)._value.get() for r in DENIAL_REASONS}

    def delta(self):
        now = self.snapshot()
        return {r: now[r] - self.before[r] for r in now if now[r] != self.before[r]}


@pytest.fixture
def denials():
    return Denials()
