"""The server side of the test client's cast (tests/support/cast.py CAST): who may do what."""

import ipaddress

import pytest

from tests.support.cast import CLIENT_TOKEN
from tests.support.metrics import Denials


@pytest.fixture
def auth_on(settings):
    settings.SOTERIA_AUTH_REQUIRED = True
    settings.SOTERIA_ALLOWED_GROUPS = ["admin", "maintenance"]
    settings.SOTERIA_READONLY_GROUPS = ["viewers"]
    settings.SOTERIA_BACKUP_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_RESTORE_SCOPES = {"team-ai": frozenset({"ai", "ai-restore"})}
    settings.SOTERIA_AUTH_BEARER_TOKENS = [("ci", CLIENT_TOKEN)]
    # The test client's requests come from 127.0.0.1: it plays the trusted proxy here.
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    return settings


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    cluster.namespaces.update({"ai-restore", "media-restore"})
    return cluster


@pytest.fixture
def denials():
    return Denials()
