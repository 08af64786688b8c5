"""Concurrent inventory callers share one live build (backups/services/inventory_flight.py):
the upstream lists of one build, each caller's own namespace filter and visibility, and no
caller left waiting for a leader that died."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test import Client
from rest_framework.renderers import JSONRenderer

from backups.api import serializers
from backups.api import views as api_views
from backups.services import inventory, inventory_flight
from soteria_site.core.errors import UpstreamUnavailable
from soteria_site.web import edge
from tests.support import cast
from tests.support.fake_cluster import NOW
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

LOCK, _, _ = inventory_flight._keys(inventory_flight.ALL)


@pytest.fixture
def world(cluster):
    cache.clear()  # the cache table outlives each test's database flush
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("ai", "notebooks", backups=[("Completed", 30, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    return cluster


class Gate:
    """Holds the leader's build until `expected` callers are following it, so the test does
    not depend on who is faster."""

    def __init__(self, monkeypatch) -> None:
        self.followers = 0
        self.expected = 0
        self.builds = 0
        real_follow, real_build = inventory_flight._follow, inventory.build

        def follow(*args, **kwargs):
            self.followers += 1
            return real_follow(*args, **kwargs)

        def build(*args, **kwargs):
            self.builds += 1
            wait_for(lambda: self.followers >= self.expected, what=f"{self.expected} followers")
            return real_build(*args, **kwargs)

        monkeypatch.setattr(inventory_flight, "_follow", follow)
        monkeypatch.setattr(inventory, "build", build)


@pytest.fixture
def gate(monkeypatch) -> Gate:
    return Gate(monkeypatch)


def _in_threads(calls) -> tuple[list[threading.Thread], dict]:
    results: dict = {}

    def run(key, call):
        try:
            results[key] = call()
        except Exception as exc:  # the test asserts on what each caller got
            results[key] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(key, call)) for key, call in calls]
    for thread in threads:
        thread.start()
    return threads, results


def _get(path: str, identity=()):
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in identity}
    return lambda: Client().get(path, **headers)


def _rows(response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.content
    return [(row["namespace"], row["pvc"]) for ns in response.json()["namespaces"] for row in ns["pvcs"]]


def test_eight_concurrent_inventory_requests_cost_the_upstream_calls_of_one(world, gate, auth_on, monkeypatch):
    # Eight long-request slots in this one process, as two web processes of five threads have.
    monkeypatch.setattr(edge, "_slots", threading.BoundedSemaphore(8))
    rendered = []
    monkeypatch.setattr(api_views, "inventory_group_json",
                        lambda group: rendered.append(group.name) or serializers.inventory_group_json(group))
    alone = _rows(_get("/v1/inventory", cast.ADMIN)())
    rendered.clear()
    one_build = dict(world.calls)
    world.calls.clear()
    gate.followers, gate.builds, gate.expected = 0, 0, 7

    leader, results = _in_threads([("leader", _get("/v1/inventory", cast.ADMIN))])
    wait_for(lambda: cache.get(LOCK) is not None, what="the leader's build")
    followers, more = _in_threads(
        [(f"admin-{i}", _get("/v1/inventory", cast.ADMIN)) for i in range(4)]
        + [("ai-only", _get("/v1/inventory?namespace=ai", cast.ADMIN)),
           ("media-only", _get("/v1/inventory?namespace=media", cast.ADMIN)),
           ("scoped", _get("/v1/inventory", cast.SCOPED))])
    for thread in leader + followers:
        thread.join(timeout=60)
    results.update(more)
    assert gate.builds == 1
    assert dict(world.calls) == one_build
    assert all(_rows(results[key]) == alone for key in ("leader", "admin-0", "admin-1", "admin-2", "admin-3"))
    assert _rows(results["ai-only"]) == [("ai", "llm-cache"), ("ai", "notebooks")]
    assert _rows(results["media-only"]) == [("media", "photos")]
    assert _rows(results["scoped"]) == [("ai", "llm-cache"), ("ai", "notebooks")]
    assert len({results[key].json()["generated_at"] for key in results}) == 1
    assert sorted(rendered) == ["ai", "media"]  # each namespace's JSON rendered once, for all eight


def test_the_answer_put_together_from_namespaces_is_the_whole_answer_byte_for_byte(world, auth_on):
    with time_machine.travel(NOW, tick=False):
        whole = inventory.build()
        for path, identity, keep in [("/v1/inventory", cast.ADMIN, {"ai", "media"}),
                                     ("/v1/inventory?namespace=media", cast.ADMIN, {"media"}),
                                     ("/v1/inventory", cast.SCOPED, {"ai"})]:
            response = _get(path, identity)()
            expected = replace(whole, items=[i for i in whole.items if i.namespace in keep])
            assert response.status_code == 200 and response["Content-Type"] == "application/json"
            assert response.content == JSONRenderer().render(serializers.InventoryResponse(expected).data), path


def test_requests_after_a_build_finished_build_again(world):
    first = inventory_flight.build()
    calls = dict(world.calls)
    world.calls.clear()
    second = inventory_flight.build()
    assert dict(world.calls) == calls
    assert [i.pvc for i in second.items] == [i.pvc for i in first.items]


def test_a_failed_build_fails_its_followers_with_the_same_error_without_building_again(world, gate):
    world.fail["list_pvcs"] = UpstreamUnavailable("kubernetes", "the apiserver is down")
    gate.expected = 2
    threads, results = _in_threads([(i, inventory_flight.build) for i in range(3)])
    for thread in threads:
        thread.join(timeout=60)
    assert gate.builds == 1
    assert world.calls["list_pvcs"] == 1
    for outcome in results.values():
        assert isinstance(outcome, UpstreamUnavailable)
        assert (outcome.status, outcome.code, outcome.detail) == (503, "kubernetes_unavailable",
                                                                   "the apiserver is down")


def test_followers_of_a_leader_that_died_build_once_its_lease_runs_out(world, gate):
    dead = inventory_flight.Flight("a-leader-that-was-killed", time.time_ns())
    cache.set(LOCK, dead, timeout=inventory_flight.LEASE_SECONDS)  # and never renewed
    gate.expected = 3  # the next leader waits until the other caller follows it too
    threads, results = _in_threads([(i, inventory_flight.build) for i in range(2)])
    wait_for(lambda: gate.followers >= 2, what="both callers following the dead leader")
    assert gate.builds == 0
    with time_machine.travel(timedelta(seconds=inventory_flight.LEASE_SECONDS + 1)):
        for thread in threads:
            thread.join(timeout=60)
    assert gate.builds == 1
    assert [sorted(i.pvc for i in found.items) for found in results.values()] == [
        ["llm-cache", "notebooks", "photos"]] * 2
    assert world.calls["list_pvcs"] == 1
