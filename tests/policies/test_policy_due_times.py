"""Policies' due times come from the stored inventory (the worker's refresh): listing policies,
in the API or the console, never builds the inventory."""

import pytest
import time_machine
from django.core.cache import cache

from policies import services
from tests.support.fake_cluster import INVENTORY_LISTS, NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]



@pytest.fixture
def world(cluster):
    cache.clear()
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    services.save_policy("ai", "", 6, True, None, [], "alice")
    return cluster


def _inventory_calls(cluster) -> dict:
    return {name: count for name, count in cluster.calls.items() if name in INVENTORY_LISTS and count}


def test_the_policy_list_and_page_read_due_times_from_the_stored_inventory_without_building(client, world):
    with time_machine.travel(NOW, tick=False):
        stored = services.refresh_inventory()
        world.calls.clear()
        body = client.get("/v1/policies").json()
        page = client.get("/policies/").content.decode()
    assert _inventory_calls(world) == {}
    assert body["due_times_as_of"] == "2026-04-12T15:30:00Z" == stored.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["policies"][0]["next_due_at"] is not None
    assert "Due times from the stored inventory of 2026-04-12 15:30:00 UTC (0 s old)" in page


def test_before_the_first_stored_inventory_no_policy_has_a_due_time(client, world):
    body = client.get("/v1/policies").json()
    page = client.get("/policies/").content.decode()
    assert _inventory_calls(world) == {}
    assert body["due_times_as_of"] is None
    assert [p["next_due_at"] for p in body["policies"]] == [None]
    assert "No inventory is stored yet, so no due times" in page
