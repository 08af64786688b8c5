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


def test_a_killed_restore_whose_volume_carries_its_sources_kubernetes_status_is_still_swept(world):
    """Longhorn gives a volume restored from a backup the source's kubernetesStatus (the PV and
    claim it had when backed up): that is not a claim using the new volume."""
    _killed_before_the_claim()
    [lease] = world.leases.values()
    volume = lease.annotations["soteria.io/restore-volume"]
    source = world.volumes[world.pvcs[("ai", "llm-cache")].volume_name]
    world.volumes[volume] = replace(world.volumes[volume], pv_name=source.pv_name or source.name,
                                    pvc_name="llm-cache", pvc_namespace="ai")
    report = restore_leases.sweep(now=_now() + LATER)
    assert report["interrupted"] == ["ai-restore/copy"] and "failed" not in report
    assert volume not in world.volumes and not world.leases


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


def _restic_lease(target_pvc: str, job: str = "") -> None:
    from soteria_site.core import leases

    assert leases.acquire(restore_leases.lease_name("ai-restore", target_pvc), namespace="soteria",
                          duration_seconds=4, holder="dead-restore", labels=restore_leases.LABELS,
                          annotations=leases.sealed({"soteria.io/source": "ai/llm-cache",
                                                     "soteria.io/restore-target": f"ai-restore/{target_pvc}",
                                                     "soteria.io/restore-driver": "restic",
                                                     "soteria.io/restore-volume": "", "soteria.io/restore-pv": "",
                                                     "soteria.io/restore-job": job or f"job-{target_pvc}"}))


def _restore_job(world, name: str, labels: dict | None = None) -> None:
    from backups.drivers import restic_jobs

    selector = dict(part.split("=") for part in restic_jobs.selector("restore").split(","))
    world.create_job("ai-restore", {"metadata": {"name": name, "labels": selector if labels is None else labels},
                                    "spec": {}})


def test_a_killed_restic_restore_loses_its_job_and_a_finished_one_keeps_it(world, monkeypatch):
    from soteria_site.core import workloads

    deleted = []
    _restore_job(world, "job-killed")
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


def _longhorn_lease(target_pvc: str, volume: str, seal: bool) -> None:
    from soteria_site.core import leases

    annotations = {"soteria.io/source": "ai/llm-cache", "soteria.io/restore-target": f"ai-restore/{target_pvc}",
                   "soteria.io/restore-driver": "longhorn", "soteria.io/restore-volume": volume,
                   "soteria.io/restore-pv": volume, "soteria.io/restore-job": ""}
    assert leases.acquire(restore_leases.lease_name("ai-restore", target_pvc), namespace="soteria",
                          duration_seconds=4, holder="someone", labels=restore_leases.LABELS,
                          annotations=leases.sealed(annotations) if seal else annotations)


def test_a_lease_soteria_did_not_seal_is_reported_and_nothing_it_names_is_deleted(world):
    """Anyone who may write Leases in Soteria's namespace could name any volume: a restore Lease
    without this Soteria's seal is reported and kept, and what it names is not touched."""
    volume = world.pvcs[("ai", "llm-cache")].volume_name
    _longhorn_lease("gone", volume, seal=False)
    report = restore_leases.sweep(now=_now() + LATER)
    [failure] = report["failed"]
    assert "not sealed with this Soteria's key" in failure and report["deleted"] == []
    assert volume in world.volumes and volume in world.pvs and len(world.leases) == 1


def test_a_sealed_lease_naming_a_volume_in_use_deletes_nothing_and_is_reported(world):
    """Even sealed, the sweep never deletes a volume or PV a claim uses."""
    volume = world.pvcs[("ai", "llm-cache")].volume_name
    _longhorn_lease("gone", volume, seal=True)
    report = restore_leases.sweep(now=_now() + LATER)
    assert report["deleted"] == [] and report["interrupted"] == ["ai-restore/gone"]
    [failure] = report["failed"]
    assert f"left alone: PV {volume} is bound to claim ai/llm-cache" in failure
    assert volume in world.volumes and volume in world.pvs and len(world.leases) == 1


def test_a_lease_naming_a_job_that_is_not_a_restore_job_deletes_nothing(world, monkeypatch):
    from soteria_site.core import workloads

    deleted = []
    _restore_job(world, "nightly-report", labels={"app": "reports"})
    monkeypatch.setattr(workloads, "delete_job", lambda namespace, name: deleted.append(f"{namespace}/{name}"))
    _restic_lease("reports", job="nightly-report")
    report = restore_leases.sweep(now=_now() + LATER)
    assert report == {"interrupted": ["ai-restore/reports"], "deleted": []}
    assert deleted == []
