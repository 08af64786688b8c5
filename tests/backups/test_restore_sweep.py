"""Restores in flight hold a Lease naming what they create; the sweeper undoes the ones whose
process died (their Lease expired) and leaves finished ones alone. At the client seam."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from backups.services import restore, restore_leases
from soteria_site.core.errors import Conflict

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("policy_secret_settings")]
LATER = timedelta(seconds=61)  # past 4 heartbeats of 15 s


class Killed(BaseException):
    """The process dies here: nothing after it runs, and no cleanup of Soteria's catches it."""


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 5, None)])
    cluster.namespaces.add("ai-restore")
    return cluster


def _killed_before_the_claim() -> None:
    """A restore whose process dies after it made the volume and PV, before the claim."""
    def die(namespace, body):
        raise Killed()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restore_leases.leases, "release", lambda *a, **k: None)  # a dead process releases nothing
        patch.setattr("soteria_site.core.kubernetes.create_pvc", die)
        with pytest.raises(Killed):
            restore.restore_pvc("ai", "llm-cache", "copy", "tester", target_namespace="ai-restore")


def _now():
    return datetime.now(timezone.utc)


def test_a_killed_restore_is_swept_once_its_lease_expired(world):
    _killed_before_the_claim()
    [lease] = world.leases.values()
    volume, pv = lease.annotations["soteria.io/restore-volume"], lease.annotations["soteria.io/restore-pv"]
    assert volume in world.volumes and pv in world.pvs and ("ai-restore", "copy") not in world.pvcs
    assert restore_leases.sweep() == {"interrupted": [], "deleted": []}  # alive until it expires
    assert volume in world.volumes

    report = restore_leases.sweep(now=_now() + LATER)
    assert report == {"interrupted": ["ai-restore/copy"], "deleted": [f"pv {pv}", f"volume {volume}"]}
    assert volume not in world.volumes and pv not in world.pvs and not world.leases
    assert ("llm-cache", "RestoreInterrupted") in {(e["involvedObject"]["name"], e["reason"]) for e in world.events}


def test_a_new_restore_into_the_claim_sweeps_the_killed_one_first(world, monkeypatch):
    _killed_before_the_claim()
    [dead] = world.leases.values()
    dead_volume = dead.annotations["soteria.io/restore-volume"]
    with pytest.raises(Conflict) as info:  # still held: the killed restore's Lease has not expired
        restore.restore_pvc("ai", "llm-cache", "copy", "tester", target_namespace="ai-restore")
    assert info.value.code == "restore_in_progress"
    monkeypatch.setattr(restore_leases, "_expired", lambda lease, now: True)
    done = restore.restore_pvc("ai", "llm-cache", "copy", "tester", target_namespace="ai-restore")
    assert dead_volume not in world.volumes and done.plan.volume in world.volumes
    assert world.pvcs[("ai-restore", "copy")].volume_name == done.plan.pv and not world.leases


def test_a_finished_restore_whose_lease_was_left_keeps_everything(world):
    with pytest.MonkeyPatch.context() as patch:  # as when its release failed
        patch.setattr(restore_leases.leases, "release", lambda *a, **k: None)
        done = restore.restore_pvc("ai", "llm-cache", "copy", "tester", target_namespace="ai-restore")
    assert len(world.leases) == 1
    report = restore_leases.sweep(now=_now() + LATER)
    assert report == {"interrupted": [], "completed": ["ai-restore/copy"], "deleted": []}
    assert done.plan.volume in world.volumes and done.plan.pv in world.pvs and ("ai-restore", "copy") in world.pvcs
    assert not world.leases


def test_a_restore_releases_its_lease_when_it_ends(world):
    restore.restore_pvc("ai", "llm-cache", "copy", "tester", target_namespace="ai-restore")
    assert not world.leases


def _restic_lease(target_pvc: str) -> None:
    from soteria_site.core import leases

    assert leases.acquire(restore_leases.lease_name("ai-restore", target_pvc), namespace="soteria",
                          duration_seconds=4, holder="dead-restore", labels=restore_leases.LABELS,
                          annotations={"soteria.io/source": "ai/llm-cache",
                                       "soteria.io/restore-target": f"ai-restore/{target_pvc}",
                                       "soteria.io/restore-driver": "restic", "soteria.io/restore-volume": "",
                                       "soteria.io/restore-pv": "", "soteria.io/restore-job": f"job-{target_pvc}"})


def test_a_killed_restic_restore_loses_its_job_and_a_finished_one_keeps_it(world, monkeypatch):
    from soteria_site.core import workloads

    deleted = []
    monkeypatch.setattr(workloads, "delete_job", lambda namespace, name: deleted.append(f"{namespace}/{name}"))
    _restic_lease("killed")
    _restic_lease("done")  # its claim was made: the restore reached its end
    world.add_pvc("ai-restore", "done", storage_class="local-path", csi_driver=None)
    world.pvcs[("ai-restore", "done")] = replace(world.pvcs[("ai-restore", "done")],
                                                 annotations={"soteria.io/restore-job": "job-done"})
    report = restore_leases.sweep(now=_now() + LATER)
    assert report == {"interrupted": ["ai-restore/killed"], "completed": ["ai-restore/done"],
                      "deleted": ["job ai-restore/job-killed"]}
    assert deleted == ["ai-restore/job-killed"] and not world.leases
