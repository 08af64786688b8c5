"""Fixtures of the auth tests: a small world of PVCs, and the denials counter (the server side
of the test client's cast, `auth_on`, is shared: tests/conftest.py)."""

import pytest

from tests.support.metrics import Denials


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    cluster.namespaces.update({"ai-restore", "media-restore"})
    return cluster


@pytest.fixture
def denials():
    return Denials()
