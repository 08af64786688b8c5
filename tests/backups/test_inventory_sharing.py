"""Two replicas, one inventory build per interval: the refresh Lease's holder builds and
publishes, the others copy its rows (backups.services.inventory_share)."""

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from backups.models import CachedInventory
from backups.services import inventory_cache, inventory_share
from policies import services
from soteria_site.core import leases
from soteria_site.core.errors import UpstreamUnavailable
from tests.support.fake_cluster import INVENTORY_LISTS, NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings", "frozen")]
NAMESPACE = "soteria"
INTERVAL = 300


@pytest.fixture(autouse=True)
def interval(settings):
    settings.SOTERIA_METRICS_REFRESH_SECONDS = INTERVAL


@pytest.fixture
def pvcs(cluster):
    for i in range(3):
        cluster.add_pvc("ai", f"data-{i}", longhorn_volume=f"pvc-{i}", backups=[("Completed", 2 + i, None)])
    return cluster


def builds(cluster) -> int:
    return cluster.calls["list_pvcs"]


def other_replica() -> None:
    """The next call plays another replica: its own database, empty until its first refresh."""
    CachedInventory.objects.all().delete()


def sharing(outcome: str) -> float:
    return REGISTRY.get_sample_value("soteria_inventory_sharing_total", {"outcome": outcome}) or 0


def test_the_lease_holder_builds_and_publishes_and_another_replica_copies_without_building(pvcs):
    built = services.share_inventory(now=NOW, holder="replica-a")
    assert built.source == "built" and len(built.cached.rows) == 3
    assert builds(pvcs) == 1
    other_replica()
    lists_before = {name: pvcs.calls[name] for name in INVENTORY_LISTS}

    copied = services.share_inventory(now=NOW + timedelta(seconds=20), holder="replica-b")
    assert copied.source == "copied"
    assert {name: pvcs.calls[name] for name in INVENTORY_LISTS} == lists_before, "the follower listed nothing"
    assert inventory_cache.latest().rows == built.cached.rows  # each field as the builder stored it
    assert inventory_cache.latest().generated_at == NOW

    # Its next tick in the same interval finds nothing newer: only the index is read.
    reads = pvcs.calls["find_config_map"]
    assert services.share_inventory(now=NOW + timedelta(seconds=60), holder="replica-b").source == "current"
    assert pvcs.calls["find_config_map"] == reads + 1


def test_a_single_replica_renews_the_lease_and_builds_every_interval(pvcs):
    for tick in range(3):
        result = services.share_inventory(now=NOW + timedelta(seconds=tick * INTERVAL), holder="replica-a")
        assert result.source == "built"
    assert builds(pvcs) == 3
    assert leases.held_by(inventory_share.LEASE_NAME, namespace=NAMESPACE, holder="replica-a",
                          now=NOW + timedelta(seconds=2 * INTERVAL))


def test_a_follower_takes_over_once_the_builders_lease_expires(pvcs):
    services.share_inventory(now=NOW, holder="replica-a")
    later = NOW + timedelta(seconds=inventory_share.lease_seconds() + 1)
    assert services.share_inventory(now=later, holder="replica-b").source == "built"
    assert builds(pvcs) == 2
    assert leases.held_by(inventory_share.LEASE_NAME, namespace=NAMESPACE, holder="replica-b", now=later)


def test_a_follower_builds_itself_when_the_lease_holder_publishes_nothing_for_three_intervals(pvcs):
    services.share_inventory(now=NOW, holder="replica-a")
    other_replica()
    assert services.share_inventory(now=NOW + timedelta(seconds=10), holder="replica-b").source == "copied"
    # replica-a keeps renewing its Lease, but its builds stop reaching the publication.
    for tick in (1, 2, 3):
        when = NOW + timedelta(seconds=tick * INTERVAL)
        assert leases.acquire(inventory_share.LEASE_NAME, namespace=NAMESPACE, holder="replica-a",
                              duration_seconds=inventory_share.lease_seconds(), now=when)
        result = services.share_inventory(now=when + timedelta(seconds=10), holder="replica-b")
        assert result.source == ("current" if tick < 3 else "behind")
    assert builds(pvcs) == 2
    assert inventory_cache.latest().generated_at == NOW + timedelta(seconds=3 * INTERVAL + 10)


def test_a_failed_publication_keeps_the_builders_rows_and_is_counted(pvcs):
    failed = sharing("publish_failed")
    pvcs.fail["create_config_map"] = UpstreamUnavailable("kubernetes", "apiserver down")
    result = services.share_inventory(now=NOW, holder="replica-a")
    assert result.source == "built" and len(inventory_cache.latest().rows) == 3
    assert sharing("publish_failed") == failed + 1


def test_a_follower_keeps_its_rows_when_the_publication_cannot_be_read(pvcs):
    services.share_inventory(now=NOW, holder="replica-a")
    other_replica()
    services.share_inventory(now=NOW + timedelta(seconds=10), holder="replica-b")
    mine = inventory_cache.stored()
    services.share_inventory(now=NOW + timedelta(seconds=INTERVAL), holder="replica-a")
    inventory_cache.store(mine.generated_at, mine.rows, mine.duration_seconds)  # replica-b's database again
    pvcs.fail["find_config_map"] = UpstreamUnavailable("kubernetes", "apiserver down")
    result = services.share_inventory(now=NOW + timedelta(seconds=INTERVAL + 10), holder="replica-b")
    assert result.source == "unreadable" and inventory_cache.latest().rows == mine.rows
    assert inventory_cache.latest().generated_at == NOW
    assert builds(pvcs) == 2


def test_a_corrupt_part_is_unreadable_and_nothing_published_leaves_the_follower_building(pvcs):
    other_replica()
    assert leases.acquire(inventory_share.LEASE_NAME, namespace=NAMESPACE, holder="replica-a",
                          duration_seconds=inventory_share.lease_seconds(), now=NOW)
    # Nothing published and nothing of its own: a follower never stays without rows.
    assert services.share_inventory(now=NOW, holder="replica-b").source == "behind"
    cached = inventory_cache.stored()
    assert inventory_share.publish(cached, "replica-b")
    part = pvcs.config_maps[(NAMESPACE, inventory_share.part_name(0))]
    part.binary_data[inventory_share.PART_KEY] = "bm90IGd6aXA="  # "not gzip"
    with pytest.raises(inventory_share.Unreadable):
        inventory_share.read()


def big_inventory(n: int, generated_at) -> CachedInventory:
    rows = [{"namespace": "ai", "pvc": f"data-{i}-{i * 7919 % 10007}", "volume": f"pvc-{i}", "driver": "longhorn",
             "count": i} for i in range(n)]
    return CachedInventory(generated_at=generated_at, duration_seconds=1.5, rows=rows)


def test_a_large_inventory_is_cut_into_parts_and_read_back_whole(cluster, monkeypatch):
    monkeypatch.setattr(inventory_share, "PART_BYTES", 1024)
    cached = big_inventory(2000, NOW)
    assert inventory_share.publish(cached, "replica-a")
    index = cluster.config_maps[(NAMESPACE, inventory_share.INDEX)]
    assert int(index.data["parts"]) > 3
    published = inventory_share.read()
    assert published.rows == cached.rows and published.publisher == "replica-a"
    assert published.generated_at == NOW and published.duration_seconds == 1.5


def test_a_reader_never_joins_parts_of_two_publications(cluster, monkeypatch):
    monkeypatch.setattr(inventory_share, "PART_BYTES", 1024)
    first, second = big_inventory(2000, NOW), big_inventory(2100, NOW + timedelta(seconds=INTERVAL))
    assert inventory_share.publish(first, "replica-a")
    from soteria_site.core import kubernetes

    read_part = kubernetes.find_config_map
    raced = []

    def writer_between_parts(namespace, name):
        if name == inventory_share.part_name(2) and not raced:
            raced.append(name)  # a new publication begins while the reader is at part 2
            for k in range(3):
                body = {"metadata": {"name": inventory_share.part_name(k), "labels": {},
                                     "annotations": {inventory_share.GENERATION: "next"}},
                        "binaryData": {inventory_share.PART_KEY: ""}}
                cluster.config_maps[(namespace, inventory_share.part_name(k))] = cluster._config_map(namespace, body)
        return read_part(namespace, name)

    monkeypatch.setattr(kubernetes, "find_config_map", writer_between_parts)
    # The index still names the first generation, whose parts are half overwritten: refused,
    # never joined (after a second read of the index finds the same).
    with pytest.raises(inventory_share.Unreadable, match="changed twice"):
        inventory_share.read()
    assert raced
    # Once the writer has finished (parts, then the index), the reader gets the second whole.
    assert inventory_share.publish(second, "replica-a")
    assert inventory_share.read().rows == second.rows


def test_an_inventory_above_the_limit_is_not_published(cluster, monkeypatch):
    monkeypatch.setattr(inventory_share, "MAX_BYTES", 100)
    too_large = sharing("too_large")
    assert not inventory_share.publish(big_inventory(50, NOW), "replica-a")
    assert sharing("too_large") == too_large + 1
    assert (NAMESPACE, inventory_share.INDEX) not in cluster.config_maps
