"""Restore drills end to end on the fakes: admission by Leases, the worker's run with the
verification Job really reading a directory, cleanup, the sweeper, and the inventory
(backups/services/drills.py)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from prometheus_client import REGISTRY

from backups import drivers, manifests
from backups.drivers import drill_jobs
from backups.services import claims, drill_cleanup, drill_records, drill_results, drills, inventory
from backups.types import DRILL_LABEL
from soteria_site.core import kubernetes, leases, workloads
from soteria_site.core.errors import Conflict, InvalidInput, NotFound, UpstreamUnavailable
from soteria_site.core.kubernetes import LONGHORN_CSI_DRIVER, Pv, Pvc
from tests.support.drills import FakeWorkloads, manifest_of, record_manifest, restores_finish_at_once, write_tree
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

FILES = {"config.yaml": b"model: llama\n", "weights/part-0": b"\x00\x01" * 4096, "weights/part-1": b"\x02" * 3000,
         "README": b"cache of the model\n"}
SOURCE_PVCS = {("ai", "llm-cache"), ("ai", "vector-db"), ("ai", "pending")}


@pytest.fixture
def world(cluster, settings, monkeypatch, tmp_path):
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    settings.SOTERIA_DRILL_NAMESPACE = "soteria-drills"
    settings.SOTERIA_DRILL_MAX_CONCURRENT = 2
    settings.SOTERIA_DRILL_HEARTBEAT_SECONDS = 15
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 30, "snap-old"), ("Completed", 2, "snap-new"),
                                                ("Error", 1, "snap-failed")])
    cluster.add_pvc("ai", "vector-db", backups=[("Completed", 5, None)])
    cluster.add_pvc("ai", "pending", bound=False)
    cluster.add_pvc("ai", "never-backed-up")
    cluster.namespaces.add("soteria-drills")
    restores_finish_at_once(cluster, monkeypatch)
    monkeypatch.setattr(drills, "_collect_manifests", lambda namespace, pvc: None)
    cluster.enqueued = []
    monkeypatch.setattr(drills, "_enqueue", lambda p: cluster.enqueued.append(p.id))
    cluster.source = write_tree(tmp_path / "source", FILES)
    cluster.restored = tmp_path / "restored"
    shutil.copytree(cluster.source, cluster.restored)
    cluster.jobs = FakeWorkloads(cluster.restored).install(monkeypatch)
    return cluster


def with_manifest(world, key: str = "snap-new") -> None:
    """The backup's manifest Job recorded the source tree."""
    record_manifest("ai", "llm-cache", key, manifest_of(world.source), NOW - timedelta(hours=2))


def counted(driver: str, result: str) -> float:
    return REGISTRY.get_sample_value("soteria_restore_drills_total", {"driver": driver, "result": result}) or 0.0


def recorded(drill_id: str, pvc: str = "llm-cache") -> dict:
    return next(d for d in drill_records.load("ai", pvc).drills if d["id"] == drill_id)


def scratch_left(world) -> list[str]:
    """What a drill created that still exists: claims, PVs, Longhorn volumes, Jobs."""
    pvcs = [f"pvc {ns}/{name}" for (ns, name) in world.pvcs if (ns, name) not in SOURCE_PVCS | {("ai", "never-backed-up")}]
    pvs = [f"pv {name}" for name, pv in world.pvs.items() if (pv.claim_namespace, pv.claim_name) not in SOURCE_PVCS
           | {("ai", "never-backed-up")}]
    volumes = [f"volume {name}" for name in world.volumes if not name.startswith("pvc-ai-")]
    jobs = [f"job {ns}/{name}" for (ns, name) in world.jobs.jobs]
    return pvcs + pvs + volumes + jobs


def lease_holders(world) -> dict[str, str]:
    return {name: lease.holder for (ns, name), lease in world.leases.items()}


# --- Starting a drill ------------------------------------------------------------------------
def test_a_dry_run_creates_nothing_and_names_the_backup_the_scratch_claim_and_the_manifest(world):
    with_manifest(world)
    before = dict(world.mutating_calls)
    planned = drills.start("ai", "llm-cache", "alice", dry_run=True)
    assert world.mutating_calls == before and world.jobs.created == [] and world.enqueued == []
    assert planned.backup.snapshot == "snap-new" and planned.has_manifest and planned.manifest_key == "snap-new"
    assert planned.drill_namespace == "soteria-drills" and planned.scratch_pvc.startswith("soteria-drill-llm-cache-")
    targets = {c.target for c in planned.calls}
    assert f"soteria-drills/{planned.scratch_pvc}" in targets
    verify = next(c for c in planned.calls if c.call == "kubernetes.createJob")
    assert verify.args["compares"] == "manifest snap-new"
    assert drill_results.history("ai", "llm-cache") == []


def test_a_dry_run_says_when_the_backup_has_no_manifest(world):
    with_manifest(world, key="snap-old")  # of another backup
    planned = drills.start("ai", "llm-cache", "alice", dry_run=True)
    assert not planned.has_manifest
    assert next(c for c in planned.calls if c.call == "kubernetes.createJob").args["compares"].startswith("nothing")


def test_a_start_takes_the_pvc_lease_and_a_slot_records_the_drill_running_and_queues_it(world):
    planned = drills.start("ai", "llm-cache", "alice")
    assert lease_holders(world) == {drills.lease_name("ai", "llm-cache"): planned.id,
                                    drills.slot_name(0): planned.id}
    assert world.enqueued == [planned.id]
    drill = recorded(planned.id)
    assert drill["result"] == "running" and drill["backup"] == planned.backup.name and drill["slot"] == 0
    assert drill["requested_by"] == "alice" and drill["scratch"]["pvc"] == planned.scratch_pvc
    assert not world.jobs.created and scratch_left(world) == []  # the worker creates, not the request


def test_a_second_drill_of_the_same_pvc_is_409_and_leaves_the_first_alone(world):
    first = drills.start("ai", "llm-cache", "alice")
    with pytest.raises(Conflict) as caught:
        drills.start("ai", "llm-cache", "bob")
    assert caught.value.code == "drill_in_progress" and caught.value.extra["running"] == first.id
    assert [d["id"] for d in drill_results.history("ai", "llm-cache")] == [first.id]
    assert lease_holders(world) == {drills.lease_name("ai", "llm-cache"): first.id, drills.slot_name(0): first.id}
    assert world.enqueued == [first.id]


def test_with_every_slot_taken_another_pvc_is_429_and_its_lease_is_released(world, settings):
    settings.SOTERIA_DRILL_MAX_CONCURRENT = 1
    first = drills.start("ai", "llm-cache", "alice")
    with pytest.raises(drills.AtCapacity) as caught:
        drills.start("ai", "vector-db", "alice")
    assert caught.value.status == 429 and caught.value.code == "drill_capacity" and caught.value.extra["limit"] == 1
    assert drills.lease_name("ai", "vector-db") not in lease_holders(world)
    assert drill_results.history("ai", "vector-db") == [] and world.enqueued == [first.id]
    # Once the first has ended and given its Leases back, the other PVC may be drilled.
    drills.finish("ai", "llm-cache", first.id, result="error", reason="stopped")
    drills._release("ai", "llm-cache", first.id, 0)
    assert drills.start("ai", "vector-db", "alice").id in world.enqueued


def test_a_pvc_without_a_successful_backup_is_404(world):
    with pytest.raises(NotFound) as caught:
        drills.start("ai", "never-backed-up", "alice")
    assert caught.value.code == "no_backup" and world.leases == {}


def test_an_unbound_pvc_is_409(world):
    with pytest.raises(Conflict) as caught:
        drills.start("ai", "pending", "alice")
    assert caught.value.code == "pvc_not_bound" and world.leases == {}


def test_a_failed_enqueue_gives_the_leases_back(world, monkeypatch):
    def down(p):
        raise UpstreamUnavailable("kubernetes", "the queue's database is locked")

    monkeypatch.setattr(drills, "_enqueue", down)
    with pytest.raises(UpstreamUnavailable):
        drills.start("ai", "llm-cache", "alice")
    assert world.leases == {}
    # Told as it happened, not left "running" for the sweeper to call interrupted.
    [drill] = drill_results.history("ai", "llm-cache")
    assert drill["result"] == "error" and "could not be queued" in drill["reason"]
    assert "locked" in drill["reason"]


def test_a_kubernetes_error_while_taking_a_slot_gives_the_pvc_lease_back(world, monkeypatch):
    real = kubernetes.create_lease

    def slots_down(namespace, body):
        if "-slot-" in body["metadata"]["name"]:
            raise UpstreamUnavailable("kubernetes", "etcd is unhappy")
        return real(namespace, body)

    monkeypatch.setattr(kubernetes, "create_lease", slots_down)
    with pytest.raises(UpstreamUnavailable):
        drills.start("ai", "llm-cache", "alice")
    assert world.leases == {} and drill_results.history("ai", "llm-cache") == []


def test_a_dry_run_stores_nothing_not_even_manifests(world, monkeypatch):
    collected = []
    monkeypatch.setattr(drills, "_collect_manifests", lambda namespace, pvc: collected.append((namespace, pvc)))
    drills.start("ai", "llm-cache", "alice", dry_run=True)
    assert collected == []
    drills.start("ai", "llm-cache", "alice")
    assert collected == [("ai", "llm-cache")]


# --- Running it (the worker) -----------------------------------------------------------------
def test_a_drill_whose_restore_matches_the_manifest_passes_and_leaves_nothing_behind(world):
    with_manifest(world)
    passed = counted("longhorn", "passed")
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache") == {"id": planned.id, "result": "passed"}
    drill = recorded(planned.id)
    assert drill["result"] == "passed" and drill["differences"] == [] and drill["finished_at"]
    assert drill["restored"]["files"] == len(FILES) and drill["source"]["files"] == len(FILES)
    assert drill["cleanup"]["succeeded"] and any(d.startswith("volume ") for d in drill["cleanup"]["deleted"])
    assert scratch_left(world) == [] and world.leases == {}
    assert counted("longhorn", "passed") == passed + 1
    # The restore came from the chosen backup, into the drill namespace, labelled for the sweeper.
    assert world.created_volume_args["from_backup"] == planned.backup.url
    verify = world.jobs.created[0]
    assert verify["metadata"]["namespace"] == "soteria-drills"
    assert verify["metadata"]["labels"][DRILL_LABEL] == planned.id
    assert [pv["metadata"]["labels"][DRILL_LABEL] for pv in world.pv_bodies] == [planned.id]
    [event] = [e for e in world.events if e["reason"].startswith("RestoreDrill")]
    assert event["reason"] == "RestoreDrillPassed" and event["type"] == "Normal"


def test_a_restore_that_differs_from_the_manifest_fails_naming_the_paths(world):
    with_manifest(world)
    (world.restored / "config.yaml").write_bytes(b"model: LLAMA\n")  # same size, other content
    (world.restored / "weights/part-1").unlink()
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "failed"
    drill = recorded(planned.id)
    named = {d.split(":")[0] for d in drill["differences"]}
    assert {"config.yaml", "weights/part-1", "file count", "total size"} == named
    assert drill["reason"] == "4 differences from the backup's manifest"
    assert scratch_left(world) == [] and world.leases == {}
    [event] = [e for e in world.events if e["reason"].startswith("RestoreDrill")]
    assert event["reason"] == "RestoreDrillFailed" and event["type"] == "Warning" and "config.yaml" in event["message"]


def test_a_backup_without_a_manifest_is_unverified_when_it_reads_in_full(world):
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "unverified"
    assert "has no manifest" in recorded(planned.id)["reason"] and scratch_left(world) == []


def test_a_manifest_whose_every_file_changed_around_the_backup_compares_nothing_so_is_unverified(world):
    # Every file was written within the clock margin of the backup: the manifest left them all out.
    changed = manifests.Manifest(files=0, bytes=0, digest="", changed_files=len(FILES), changed_bytes=1)
    record_manifest("ai", "llm-cache", "snap-new", changed, NOW - timedelta(hours=2))
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "unverified"
    assert "changed around its point in time" in recorded(planned.id)["reason"]


def test_an_exception_mid_drill_still_cleans_up_and_records_an_error(world, monkeypatch):
    with_manifest(world)

    def broken(namespace, body):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(workloads, "create_job", broken)
    errors = counted("longhorn", "error")
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "error"
    drill = recorded(planned.id)
    assert drill["reason"] == "internal error: kaboom"
    assert drill["cleanup"]["succeeded"] and scratch_left(world) == [] and world.leases == {}
    assert counted("longhorn", "error") == errors + 1


def test_longhorn_unavailable_mid_drill_is_an_error_and_cleans_up(world):
    with_manifest(world)
    planned = drills.start("ai", "llm-cache", "alice")
    world.fail["list_volumes"] = UpstreamUnavailable("longhorn", "connection refused")  # while waiting
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "error"
    assert recorded(planned.id)["reason"] == "connection refused"
    assert scratch_left(world) == [] and world.leases == {}


def test_a_restore_longhorn_reports_failed_fails_the_drill(world, monkeypatch):
    with_manifest(world)
    from backups.clients import longhorn

    created = longhorn.create_volume

    def faulted(name, **kwargs):
        created(name, **kwargs)
        world.volumes[name] = replace(world.volumes[name], restore_error="backup target unreachable")
        return world.volumes[name]

    monkeypatch.setattr(longhorn, "create_volume", faulted)
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "failed"
    assert recorded(planned.id)["reason"] == "the restore failed: backup target unreachable"
    assert world.jobs.created == [] and scratch_left(world) == []


def test_a_verification_job_that_prints_no_manifest_fails_the_drill(world):
    with_manifest(world)
    world.jobs.mounted = world.restored / "not-mounted"  # the reader finds no directory and exits 2
    world.jobs.ends_as = workloads.FAILED
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "failed"
    assert "could not read the restored claim" in recorded(planned.id)["reason"]
    assert scratch_left(world) == []


def test_a_redelivered_task_is_skipped(world):
    with_manifest(world)
    planned = drills.start("ai", "llm-cache", "alice")
    drills._patch("ai", "llm-cache", planned.id, worker_started_at="2026-04-12T15:29:00Z")
    assert drills.run(planned.id, "ai", "llm-cache") == {"id": planned.id, "skipped": True}
    assert world.jobs.created == [] and "create_volume" not in world.calls
    assert recorded(planned.id)["result"] == "running"


def test_a_task_for_a_finished_drill_is_skipped(world):
    with_manifest(world)
    planned = drills.start("ai", "llm-cache", "alice")
    drills.run(planned.id, "ai", "llm-cache")
    created = len(world.jobs.created)
    assert drills.run(planned.id, "ai", "llm-cache") == {"id": planned.id, "skipped": True}
    assert len(world.jobs.created) == created and recorded(planned.id)["result"] == "passed"


def test_finish_counts_a_drill_once_however_often_it_is_called(world):
    planned = drills.start("ai", "llm-cache", "alice")
    failed, errors = counted("longhorn", "failed"), counted("longhorn", "error")
    assert drills.finish("ai", "llm-cache", planned.id, result="failed", reason="first")["result"] == "failed"
    assert drills.finish("ai", "llm-cache", planned.id, result="error", reason="second") == {}
    assert counted("longhorn", "failed") == failed + 1 and counted("longhorn", "error") == errors
    assert recorded(planned.id)["reason"] == "first"


def test_a_cleanup_that_fails_is_said_in_the_reason(world):
    with_manifest(world)
    world.fail["delete_pv"] = UpstreamUnavailable("kubernetes", "apiserver down")
    planned = drills.start("ai", "llm-cache", "alice")
    assert drills.run(planned.id, "ai", "llm-cache")["result"] == "passed"
    drill = recorded(planned.id)
    assert not drill["cleanup"]["succeeded"] and "cleanup FAILED" in drill["reason"]
    assert "apiserver down" in drill["reason"]


# --- The sweeper -----------------------------------------------------------------------------
def worker_dies_midway(world, planned) -> dict:
    """What the worker had done when it died: the scratch restore and the verification Job
    exist, recorded in the drill's scratch map."""
    claim = claims.get_claim("ai", "llm-cache")
    driver = drivers.for_claim(claim)
    plan = replace(driver.plan_restore(claim, planned.backup.name, "", planned.drill_namespace, planned.scratch_pvc),
                   extra_labels={DRILL_LABEL: planned.id})
    scratch = {"namespace": planned.drill_namespace, "pvc": planned.scratch_pvc, "volume": plan.volume,
               "pv": plan.pv, "job": "", "drill": planned.id, "source": "ai/llm-cache", "backup": planned.backup.name}
    drills._patch("ai", "llm-cache", planned.id, worker_started_at="2026-04-12T15:30:00Z",
                  scratch=leases.sealed(scratch))
    driver.restore(plan, claim, "alice")
    world.jobs.add_job(planned.drill_namespace, "soteria-verify-x", drill_jobs.labels(planned.id, "longhorn",
                                                                                       planned.scratch_pvc))
    assert len(scratch_left(world)) == 4  # claim, PV, volume, Job
    return scratch


def test_a_drill_whose_lease_expired_is_cleaned_up_and_recorded_interrupted(world):
    planned = drills.start("ai", "llm-cache", "alice")
    worker_dies_midway(world, planned)
    errors = counted("longhorn", "error")
    with time_machine.travel(NOW + timedelta(seconds=4 * 15 + 1), tick=False):
        swept = drills.sweep()
    assert swept["interrupted"] == [planned.id]
    drill = recorded(planned.id)
    assert drill["result"] == "error" and drill["reason"].startswith("interrupted: the worker running the drill stopped")
    assert drill["cleanup"]["succeeded"] and scratch_left(world) == [] and world.leases == {}
    assert counted("longhorn", "error") == errors + 1
    # A slot is free again: another drill may start.
    assert drills.start("ai", "llm-cache", "bob").id in world.enqueued


def test_a_queued_drill_no_worker_took_up_is_interrupted_once_its_lease_expires(world):
    planned = drills.start("ai", "llm-cache", "alice")
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        assert drills.sweep() == {"interrupted": [planned.id], "deleted": []}
    assert recorded(planned.id)["reason"].startswith("interrupted: no worker took the drill up")


def test_a_drill_whose_lease_is_held_is_left_alone(world):
    planned = drills.start("ai", "llm-cache", "alice")
    worker_dies_midway(world, planned)
    with time_machine.travel(NOW + timedelta(seconds=4 * 15 - 1), tick=False):
        assert drills.sweep() == {"interrupted": [], "deleted": []}
    assert recorded(planned.id)["result"] == "running" and len(scratch_left(world)) == 4
    assert drills.lease_name("ai", "llm-cache") in lease_holders(world)


def test_labelled_orphans_of_no_running_drill_are_deleted(world):
    running = drills.start("ai", "llm-cache", "alice")
    worker_dies_midway(world, running)  # alive: its Lease is held
    labels = {DRILL_LABEL: "20260401-000000-dead00"}
    world.pvcs[("soteria-drills", "old-scratch")] = Pvc(
        namespace="soteria-drills", name="old-scratch", uid="u", phase="Bound", storage_class="longhorn",
        volume_name="pvc-old", access_modes=("ReadWriteOnce",), requested="1Gi", capacity="1Gi", labels=labels)
    world.pvs["pvc-old"] = Pv(name="pvc-old", phase="Bound", storage_class="longhorn", capacity="1Gi",
                              access_modes=("ReadWriteOnce",), csi_driver=LONGHORN_CSI_DRIVER,
                              volume_handle="pvc-old", fs_type="ext4", claim_namespace="soteria-drills",
                              claim_name="old-scratch", reclaim_policy="Retain", labels=labels)
    world.add_volume("pvc-old")
    world.jobs.add_job("soteria-drills", "soteria-verify-old", labels, workloads.FAILED)
    swept = drills.sweep()
    assert swept["interrupted"] == []
    assert sorted(swept["deleted"]) == ["job soteria-drills/soteria-verify-old", "pv pvc-old",
                                        "pvc soteria-drills/old-scratch", "volume pvc-old"]
    assert "pvc-old" not in world.volumes and ("soteria-drills", "old-scratch") not in world.pvcs
    assert len(scratch_left(world)) == 4  # the running drill's, untouched
    assert recorded(running.id)["result"] == "running"


def test_one_orphan_that_cannot_be_deleted_does_not_stop_the_sweep(world, monkeypatch):
    labels = {DRILL_LABEL: "20260401-000000-dead01"}
    for name in ("stuck", "free"):
        world.pvcs[("soteria-drills", name)] = Pvc(
            namespace="soteria-drills", name=name, uid=name, phase="Pending", storage_class="longhorn",
            volume_name=None, access_modes=("ReadWriteOnce",), requested="1Gi", capacity=None, labels=labels)
    world.jobs.add_job("soteria-drills", "soteria-verify-dead", labels, workloads.FAILED)
    real = kubernetes.delete_pvc

    def refuse_one(namespace, name):
        if name == "stuck":
            raise UpstreamUnavailable("kubernetes", "admission webhook timed out")
        real(namespace, name)

    monkeypatch.setattr(kubernetes, "delete_pvc", refuse_one)
    swept = drills.sweep()
    assert "pvc soteria-drills/free" in swept["deleted"] and "job soteria-drills/soteria-verify-dead" in swept["deleted"]
    assert swept["failed"] == ["pvc soteria-drills/stuck: admission webhook timed out"]
    assert ("soteria-drills", "free") not in world.pvcs and ("soteria-drills", "stuck") in world.pvcs


# --- History and the inventory -------------------------------------------------------------
def ended(world, result: str, at: datetime) -> str:
    with time_machine.travel(at, tick=False):
        planned = drills.start("ai", "llm-cache", "alice")
        drills.finish("ai", "llm-cache", planned.id, result=result, reason=result)
        drills._release("ai", "llm-cache", planned.id, 0)
    return planned.id


def test_history_is_newest_first_and_a_pvc_needs_its_namespace(world):
    first = ended(world, "passed", NOW)
    second = ended(world, "failed", NOW + timedelta(hours=1))
    third = ended(world, "error", NOW + timedelta(hours=2))
    assert [d["id"] for d in drill_results.history("ai", "llm-cache")] == [third, second, first]
    assert [d["id"] for d in drill_results.history("ai")] == [third, second, first]
    assert drill_results.history("media") == [] and drill_results.history(visible=frozenset({"media"})) == []
    with pytest.raises(InvalidInput) as caught:
        drill_results.history(pvc="llm-cache")
    assert caught.value.status == 400 and caught.value.extra["field"] == "namespace"


def test_the_inventory_shows_the_last_passed_drill_and_the_newest_result(world):
    passed_at = NOW + timedelta(hours=1)
    ended(world, "passed", passed_at)
    ended(world, "failed", NOW + timedelta(hours=2))
    with time_machine.travel(NOW + timedelta(hours=3), tick=False):
        item = next(i for i in inventory.build("ai").items if i.pvc == "llm-cache")
        other = next(i for i in inventory.build("ai").items if i.pvc == "vector-db")
    assert item.last_verified_at == passed_at.replace(tzinfo=timezone.utc) and item.verify_result == "failed"
    assert other.last_verified_at is None and other.verify_result == ""


def test_the_inventory_is_answered_when_the_records_cannot_be_read(world):
    ended(world, "passed", NOW)
    world.fail["list_config_maps"] = UpstreamUnavailable("kubernetes", "apiserver down")
    item = next(i for i in inventory.build("ai").items if i.pvc == "llm-cache")
    assert item.verify_result == "" and item.healthy is not None


def test_lease_names_of_long_pvc_names_fit_and_stay_distinct():
    name = drills.lease_name("a" * 63, "b" * 253)
    assert len(name) <= 253 and name.startswith("soteria-drill-")
    assert name != drills.lease_name("a" * 63, "b" * 252 + "c")


def test_a_drill_that_starts_while_the_sweeper_runs_keeps_its_scratch(world, monkeypatch):
    """The sweeper lists labelled objects and reads the records: a drill started and restoring
    between the two is running, not an orphan."""
    listed = world.jobs.list_jobs
    started = []

    def a_drill_starts_meanwhile(selector, namespace=None):
        if selector == DRILL_LABEL and not started:
            started.append(drills.start("ai", "llm-cache", "alice"))
            worker_dies_midway(world, started[0])  # its worker has got as far as the verification Job
        return listed(selector, namespace)

    monkeypatch.setattr(workloads, "list_jobs", a_drill_starts_meanwhile)
    assert drills.sweep() == {"interrupted": [], "deleted": []}
    assert len(scratch_left(world)) == 4 and recorded(started[0].id)["result"] == "running"


def test_a_drill_that_lost_its_lease_before_it_began_restores_nothing(world):
    """Its Lease expired while it waited in the queue and a new drill of the PVC took it over:
    the old one must not restore beside the new one (that would pass the concurrency cap)."""
    with_manifest(world)
    old = drills.start("ai", "llm-cache", "alice")
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        new = drills.start("ai", "llm-cache", "bob")
        assert drills.run(old.id, "ai", "llm-cache") == {"id": old.id, "result": "error"}
    assert "lost its Lease" in recorded(old.id)["reason"]
    assert "create_volume" not in world.calls and world.jobs.created == []
    assert lease_holders(world) == {drills.lease_name("ai", "llm-cache"): new.id, drills.slot_name(0): new.id}
    assert recorded(new.id)["result"] == "running"


def _sealed_scratch(planned, **fields) -> dict:
    return leases.sealed({"job": "", "drill": planned.id, "source": "ai/llm-cache", "backup": planned.backup.name,
                          **fields})


def test_a_drill_record_soteria_did_not_seal_restores_and_deletes_nothing_it_names(world):
    """The record is a ConfigMap in Soteria's namespace: a scratch map that is not this
    Soteria's (here: one whose seal does not hold) is neither restored into nor cleaned up."""
    planned = drills.start("ai", "llm-cache", "alice")
    live = world.pvcs[("ai", "llm-cache")].volume_name
    forged = {**_sealed_scratch(planned, namespace="ai", pvc="stolen", pv=live, volume=live), "namespace": "evil"}
    drills._patch("ai", "llm-cache", planned.id, scratch=forged)
    result = drills.run(planned.id, "ai", "llm-cache")
    drill = recorded(planned.id)
    assert result["result"] == "error" and drill["reason"] == drill_cleanup.NOT_SEALED
    assert not [k for k in world.pvcs if k[0] in ("evil", "ai") and k[1] == "stolen"]
    assert live in world.pvs and live in world.volumes and ("ai", "llm-cache") in world.pvcs

    planned = drills.start("ai", "llm-cache", "bob")  # and the sweeper: the same
    drills._patch("ai", "llm-cache", planned.id, worker_started_at="2026-04-12T15:30:00Z",
                  scratch={"namespace": "ai", "pvc": "llm-cache", "pv": live, "volume": live})
    with time_machine.travel(NOW + timedelta(seconds=4 * 15 + 1), tick=False):
        assert drills.sweep()["interrupted"] == [planned.id]
    cleanup = recorded(planned.id)["cleanup"]
    assert not cleanup["succeeded"] and cleanup["errors"] == [drill_cleanup.NOT_SEALED] and cleanup["deleted"] == []
    assert live in world.pvs and live in world.volumes and ("ai", "llm-cache") in world.pvcs


def test_a_drill_record_naming_a_live_claims_storage_never_gets_it_deleted(world):
    """The record names what a sweep deletes; whoever wrote it, the volume and PV of a claim in
    use are left alone and said in the cleanup's errors."""
    planned = drills.start("ai", "llm-cache", "alice")
    live = world.pvcs[("ai", "llm-cache")].volume_name
    drills._patch("ai", "llm-cache", planned.id, worker_started_at="2026-04-12T15:30:00Z",
                  scratch=_sealed_scratch(planned, namespace="soteria-drills", pvc="scratch", pv=live, volume=live))
    with time_machine.travel(NOW + timedelta(seconds=4 * 15 + 1), tick=False):
        swept = drills.sweep()
    assert swept["interrupted"] == [planned.id]
    cleanup = recorded(planned.id)["cleanup"]
    assert not cleanup["succeeded"] and cleanup["deleted"] == []
    pv_error, volume_error = cleanup["errors"]
    assert pv_error == f"left alone: PV {live} is bound to claim ai/llm-cache"
    assert volume_error.startswith(f"left alone: volume {live} is ")  # used by the claim, through its PV
    assert live in world.pvs and live in world.volumes


def test_a_drill_record_naming_a_live_claim_as_its_scratch_claim_gets_nothing_deleted(world):
    """A record that calls a live claim its scratch claim: the claim is not the drill's (it lacks
    the drill's label), so neither it nor its storage is deleted."""
    planned = drills.start("ai", "llm-cache", "alice")
    live = world.pvcs[("ai", "llm-cache")].volume_name
    drills._patch("ai", "llm-cache", planned.id, worker_started_at="2026-04-12T15:30:00Z",
                  scratch=_sealed_scratch(planned, namespace="ai", pvc="llm-cache", pv=live, volume=live))
    with time_machine.travel(NOW + timedelta(seconds=4 * 15 + 1), tick=False):
        drills.sweep()
    cleanup = recorded(planned.id)["cleanup"]
    assert cleanup["deleted"] == [] and cleanup["errors"][0] == \
        "left alone: claim ai/llm-cache is not this drill's scratch claim"
    assert ("ai", "llm-cache") in world.pvcs and live in world.pvs and live in world.volumes
