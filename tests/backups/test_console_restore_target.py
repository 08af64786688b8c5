"""The restore form proposes a free name for the new claim, `<pvc>-restore-<YYYYMMDD>`, within
Kubernetes' limits, and the plan says when a name given exists."""

import pytest
import time_machine

from backups.services import restore_targets
from soteria_site.core.names import dns_subdomain_error
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3, None)])
    return cluster


def _proposed(client, path="/pvc/ai/llm-cache/"):
    with time_machine.travel(NOW, tick=False):
        return client.get(path).context["restore_form"].initial["target_pvc"]


def test_the_form_proposes_the_dated_name(client, world):
    assert _proposed(client) == "llm-cache-restore-20260412"


def test_a_taken_name_is_not_proposed(client, world):
    world.add_pvc("ai", "llm-cache-restore-20260412")
    world.add_pvc("ai", "llm-cache-restore-20260412-2")
    assert _proposed(client) == "llm-cache-restore-20260412-3"


def test_a_long_name_is_shortened_to_a_valid_pvc_name_keeping_the_date():
    name = restore_targets.proposed("a" * 250, NOW)
    assert len(name) <= 253 and not dns_subdomain_error(name) and name.endswith("-restore-20260412")


def test_the_plan_says_a_given_name_exists(client, world):
    world.add_pvc("ai", "taken")
    response = client.post("/pvc/ai/llm-cache/restore", {"snapshot": "latest", "target_namespace": "ai",
                                                          "target_pvc": "taken"})
    assert response.status_code == 409
    assert "target PVC ai/taken already exists" in response.content.decode()
    assert world.mutating_calls == {}
