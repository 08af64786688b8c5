"""The Activity page's "Running now": backups and restores in progress with their progress and
elapsed time, also served alone as the fragment the page's script polls."""

from dataclasses import replace

import pytest
import time_machine
from django.core.cache import cache

from backups.clients.longhorn import BackupStatus
from backups.services import inventory_cache
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(cluster):
    cache.clear()
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3, None)])
    cluster.add_pvc("ai", "idle", backups=[("Completed", 3, None)])
    cluster.namespaces.add("ai-restore")
    return cluster


def test_nothing_running_says_so(client, world):
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
    page = client.get("/activity/").content.decode()
    assert "Running now (0)" in page and "No backup or restore is running." in page


def test_a_running_backup_shows_its_progress_and_elapsed_time(client, world):
    volume = world.volumes["pvc-ai-llm-cache"]
    running = BackupStatus(name="backup-running", snapshot="soteria-backup-ai-llm-cache-20260412-152000",
                           state="InProgress", progress=40, url="", error="", size="")
    world.volumes["pvc-ai-llm-cache"] = replace(volume, backups=volume.backups + (running,))
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
        fragment = client.get("/activity/running").content.decode()
    assert 'data-running="backup:ai/llm-cache"' in fragment
    assert 'value="40"' in fragment and "40%" in fragment
    assert '<td class="num nowrap" data-elapsed>10 min</td>' in fragment  # started 15:20, now 15:30
    assert "ai/idle" not in fragment
    assert world.calls["list_backups"] <= 2  # only the PVC the stored inventory shows busy is asked


def test_a_restore_in_progress_shows_on_the_activity_page(client, world):
    plan = client.post("/pvc/ai/llm-cache/restore", {"snapshot": "latest", "target_namespace": "ai-restore",
                                                     "target_pvc": "copy"})
    client.post("/pvc/ai/llm-cache/restore", {"snapshot": "latest", "target_namespace": "ai-restore",
                                              "target_pvc": "copy", "confirm": "on", "digest": plan.context["digest"]})
    with time_machine.travel(world.pvcs[("ai-restore", "copy")].created or NOW, tick=False):
        page = client.get("/activity/").content.decode()
    assert 'data-running="restore:ai-restore/copy"' in page
    assert "from ai/llm-cache" in page
    assert 'data-poll="/activity/running"' in page  # the script's hook; the page works without it
