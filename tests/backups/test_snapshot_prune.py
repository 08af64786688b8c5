"""Soteria deletes its own snapshots once their backups are over, and only its own."""

import pytest
import time_machine

from backups.drivers import longhorn_snapshots
from backups.models import OwnSnapshot
from backups.services import snapshot_cleanup
from backups.tasks import SCHEDULES
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db
VOLUME = "pvc-ai-llm-cache"
DONE = "soteria-backup-ai-llm-cache-20260412-120000"
FAILED = "soteria-backup-ai-llm-cache-20260412-130000"
UNKNOWN = "soteria-backup-ai-llm-cache-20260412-131000"
RUNNING = "soteria-backup-ai-llm-cache-20260412-140000"
ORPHAN_OLD = "soteria-backup-ai-llm-cache-20260412-150000"   # 30 minutes old, no backup
ORPHAN_NEW = "soteria-backup-ai-llm-cache-20260412-152930"   # 30 seconds old, no backup
FOREIGN = "snap-from-a-recurring-job"


@pytest.fixture
def volume(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3.5, DONE), ("Error", 2.5, FAILED),
                                                ("Unknown", 2.3, UNKNOWN), ("Completed", 3, FOREIGN)])
    for name in (DONE, FAILED, UNKNOWN, ORPHAN_OLD, ORPHAN_NEW, FOREIGN):
        cluster.add_snapshot(VOLUME, name)
    return cluster


def _post(client):
    return client.post("/v1/backup", {"namespace": "ai", "pvc": "llm-cache"}, content_type="application/json")


def test_a_backup_first_deletes_soteria_snapshots_whose_backups_are_over(client, volume, frozen):
    assert _post(client).status_code == 200
    deleted = {name for _, name in volume.deleted_snapshots}
    assert deleted == {DONE, FAILED, UNKNOWN, ORPHAN_OLD}
    remaining = {name for (_, name) in volume.snapshots}
    assert FOREIGN in remaining and ORPHAN_NEW in remaining
    assert volume.calls["list_snapshots"] == 1


def test_a_running_backups_snapshot_is_never_deleted(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache", backups=[("InProgress", 1.5, RUNNING)])
    cluster.add_snapshot(VOLUME, RUNNING)
    assert _post(client).status_code == 409
    assert longhorn_snapshots.prune_volume(cluster.volumes[VOLUME], NOW) == []
    assert cluster.deleted_snapshots == []


def test_longhorn_1_9_auto_cleanup_leaves_completed_backups_snapshots_to_longhorn(client, volume, frozen):
    volume.settings["current-longhorn-version"] = "v1.9.1"
    volume.settings["auto-cleanup-snapshot-after-on-demand-backup-completed"] = "true"
    assert _post(client).status_code == 200
    deleted = {name for _, name in volume.deleted_snapshots}
    assert DONE not in deleted
    assert {FAILED, UNKNOWN, ORPHAN_OLD} <= deleted


def test_ten_backups_in_a_row_leave_at_most_one_soteria_snapshot(client, cluster):
    cluster.add_pvc("ai", "llm-cache")
    for second in range(10):
        with time_machine.travel(NOW.replace(second=second), tick=False):
            assert _post(client).status_code == 200
        latest = cluster.volumes[VOLUME].backups[-1]
        cluster.set_backup_state(VOLUME, latest.snapshot, "Completed")
    own = [name for (_, name) in cluster.snapshots if name.startswith("soteria-backup-")]
    assert len(own) == 1


def test_the_schedule_deletes_remembered_snapshots_once_their_backups_are_over(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache")
    assert _post(client).status_code == 200
    taken = "soteria-backup-ai-llm-cache-20260412-153000"
    assert snapshot_cleanup.prune(NOW)["kept"] == 1  # the backup is running
    cluster.set_backup_state(VOLUME, taken, "Completed")
    assert snapshot_cleanup.prune(NOW) == {"checked": 1, "deleted": 1, "forgotten": 0, "kept": 0, "failed": 0}
    assert (VOLUME, taken) in cluster.deleted_snapshots
    assert not OwnSnapshot.objects.exists()
    assert snapshot_cleanup.prune(NOW) == {"checked": 0, "deleted": 0, "forgotten": 0, "kept": 0, "failed": 0}


def test_the_schedule_deletes_a_snapshot_left_without_a_backup_after_the_timeout(cluster, settings):
    cluster.add_pvc("ai", "llm-cache")
    longhorn_snapshots.remember(VOLUME, ORPHAN_OLD, NOW)
    cluster.add_snapshot(VOLUME, ORPHAN_OLD)
    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 3600
    assert snapshot_cleanup.prune(NOW)["kept"] == 1
    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 120
    assert snapshot_cleanup.prune(NOW)["deleted"] == 1


def test_the_schedule_forgets_snapshots_of_volumes_that_are_gone(cluster):
    longhorn_snapshots.remember("pvc-gone", ORPHAN_OLD, NOW)
    assert snapshot_cleanup.prune(NOW)["forgotten"] == 1
    assert cluster.deleted_snapshots == []


def test_only_soteria_snapshots_can_be_discarded():
    with pytest.raises(ValueError):
        longhorn_snapshots.discard(VOLUME, FOREIGN)


def test_the_prune_task_is_scheduled():
    assert any(spec.func == "backups.tasks.prune_snapshots" for spec in SCHEDULES)
