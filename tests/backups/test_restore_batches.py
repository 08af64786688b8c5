"""A namespace restore is recorded (a Lease naming its PVCs) before it is queued, so that a batch
whose worker is killed midway is carried on by the restore sweep: every PVC of it ends restored
exactly once, and nothing of the dead run is left. At the client seam."""

import random
import string
from datetime import datetime, timedelta, timezone

import pytest

from backups import tasks
from backups.services import restore, restore_batches, restore_leases

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("policy_secret_settings")]
LATER = timedelta(seconds=61)  # past 4 heartbeats of 15 s
PVCS = ("a", "b", "c")


class Killed(BaseException):
    """The process dies here: nothing after it runs, and no cleanup of Soteria's catches it."""


@pytest.fixture
def world(cluster, settings):
    settings.SOTERIA_NAMESPACE_CONCURRENCY = 1  # one PVC after another: the kill falls at a known PVC
    for pvc in PVCS:
        cluster.add_pvc("ai", pvc, backups=[("Completed", 3, None)])
    cluster.namespaces.add("ai-restore")
    return cluster


@pytest.fixture
def queue(monkeypatch):
    """What was queued, to run by hand as the worker would."""
    queued = []
    monkeypatch.setattr(restore, "_enqueue", lambda *task: queued.append(task))
    return queued


def _post(client):
    response = client.post("/v1/restores/namespace", {"namespace": "ai", "target_namespace": "ai-restore",
                                                       "target_prefix": "r-"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert {r["status"] for r in response.json()["results"]} == {"queued"}


def _killed_at_the_second_claim(world, task) -> None:
    """The worker runs the batch and dies as it creates its second claim; a dead process
    releases nothing and creates nothing more."""
    real = world.create_pvc
    made = []

    def create_pvc(namespace, body):
        if made:
            raise Killed()
        made.append(body["metadata"]["name"])
        return real(namespace, body)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("soteria_site.core.leases.release", lambda *a, **k: None)
        patch.setattr("soteria_site.core.kubernetes.create_pvc", create_pvc)
        with pytest.raises(Killed):
            tasks.restore_planned(*task)


def _restored(world) -> set[str]:
    return {name for (namespace, name) in world.pvcs if namespace == "ai-restore"}


def _batch_lease(world) -> str:
    [name] = [name for (_, name), lease in world.leases.items() if lease.labels.get("soteria.io/purpose") == "restore-batch"]
    return name


def _now():
    return datetime.now(timezone.utc)


def test_a_batch_is_recorded_while_queued_and_its_record_goes_when_it_is_done(client, world, queue):
    _post(client)
    [task] = queue
    [record] = world.leases.values()
    assert record.labels["soteria.io/purpose"] == "restore-batch" and "soteria.io/restore-batch" in record.annotations
    assert record.holder == task[4] and record.duration_seconds >= 3600
    outcome = tasks.restore_planned(*task)
    assert outcome["restored"] == ["ai-restore/r-a", "ai-restore/r-b", "ai-restore/r-c"]
    assert world.leases == {}


def test_a_batch_killed_midway_is_carried_on_and_each_pvc_restored_once(client, world, queue):
    _post(client)
    [task] = queue
    _killed_at_the_second_claim(world, task)
    assert _restored(world) == {"r-a"}
    volumes_before = len(world.volumes)
    assert restore.resume_batches() == {}  # alive until its Lease expires

    later = _now() + LATER
    swept = restore_leases.sweep(now=later)  # the claim in flight at the kill is undone first
    # r-b died making its claim; r-c, already handed to the pool, died there too.
    assert swept["interrupted"] == ["ai-restore/r-b", "ai-restore/r-c"]
    report = restore.resume_batches(now=later)
    assert report == {"resumed": [_batch_lease(world)]}
    _, resumed = queue
    assert resumed[:4] == ("ai", task[1], None, task[3])  # planned again from the record, same batch
    assert restore.resume_batches(now=later) == {}  # queued once: the Lease is the queue's now

    outcome = tasks.restore_planned(*resumed)
    assert outcome["restored"] == ["ai-restore/r-a", "ai-restore/r-b", "ai-restore/r-c"] and outcome["failed"] == {}
    assert outcome["notes"] == {"ai-restore/r-a": "restored before the batch's process died"}
    assert _restored(world) == {"r-a", "r-b", "r-c"}
    # Each claim was made from the backup chosen the first time, and on a volume of its own.
    assert {world.pvcs[("ai-restore", f"r-{p}")].volume_name for p in PVCS}.isdisjoint({None})
    assert len(world.volumes) == volumes_before  # the dead run's two volumes went; two made now
    assert world.leases == {}

    # The queue hands the dead run's task over again (django-q2 does after `retry`): nothing happens.
    calls = dict(world.mutating_calls)
    assert tasks.restore_planned(*task)["restored"] == []
    assert {k: v - calls.get(k, 0) for k, v in world.mutating_calls.items() if v != calls.get(k, 0)} == \
        {"create_lease": 1, "delete_lease": 1}
    assert world.leases == {}


def test_a_batch_waits_while_a_restore_of_it_still_holds_its_claim(client, world, queue):
    _post(client)
    [task] = queue
    _killed_at_the_second_claim(world, task)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restore_leases, "_expired", lambda lease, now: False)  # r-b's restore not yet expired
        assert restore.resume_batches(now=_now() + LATER) == {"waiting": [_batch_lease(world)]}
    assert len(queue) == 1
    later = _now() + LATER  # expired: undone by the restore sweep, then the batch is carried on
    restore_leases.sweep(now=later)
    assert list(restore.resume_batches(now=later)) == ["resumed"]
    tasks.restore_planned(*queue[1])
    assert _restored(world) == {"r-a", "r-b", "r-c"} and world.leases == {}


def test_a_batch_another_process_runs_is_not_run_twice(client, world, queue):
    _post(client)
    [task] = queue
    namespace, by, plans, batch_id, _ = task
    calls = dict(world.mutating_calls)
    assert tasks.restore_planned(namespace, by, plans, batch_id, "another-holder")["restored"] == []
    assert world.mutating_calls == calls and _restored(world) == set()
    assert len(world.leases) == 1  # still the queued task's to run
    tasks.restore_planned(*task)
    assert _restored(world) == {"r-a", "r-b", "r-c"}


def test_a_target_made_by_someone_else_meanwhile_is_a_conflict_when_carried_on(client, world, queue):
    _post(client)
    [task] = queue
    _killed_at_the_second_claim(world, task)
    world.add_pvc("ai-restore", "r-c")  # not Soteria's
    later = _now() + LATER
    restore_leases.sweep(now=later)
    restore.resume_batches(now=later)
    outcome = tasks.restore_planned(*queue[1])
    assert outcome["restored"] == ["ai-restore/r-a", "ai-restore/r-b"]
    assert list(outcome["failed"]) == ["ai-restore/r-c"] and "already exists" in outcome["failed"]["ai-restore/r-c"]


def test_a_batch_that_cannot_run_any_more_ends_with_each_pvc_failed(client, world, queue, settings):
    _post(client)
    [task] = queue
    settings.SOTERIA_NAMESPACE_BATCH_MAX = 2  # the namespace grew past the limit since the plan
    outcome = tasks.restore_planned(*task)
    assert sorted(outcome["failed"]) == ["ai-restore/r-a", "ai-restore/r-b", "ai-restore/r-c"]
    assert all(why.startswith("batch_too_large:") for why in outcome["failed"].values())
    assert _restored(world) == set() and world.leases == {}  # done: not queued again


def test_a_batch_that_meets_a_passing_upstream_failure_is_queued_again(client, world, queue, monkeypatch):
    from soteria_site.core.errors import UpstreamUnavailable

    _post(client)
    [task] = queue

    def down(namespace):
        raise UpstreamUnavailable("kubernetes", "connection refused")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restore.claims, "list_batch", down)
        with pytest.raises(UpstreamUnavailable):
            tasks.restore_planned(*task)
    assert restore.resume_batches(now=_now() + LATER) == {"resumed": [_batch_lease(world)]}
    tasks.restore_planned(*queue[1])
    assert _restored(world) == {"r-a", "r-b", "r-c"} and world.leases == {}


def test_a_record_soteria_did_not_seal_is_reported_and_left_alone(world):
    """Anyone who may write Leases in Soteria's namespace could otherwise have any backup restored
    anywhere: a batch record without this Soteria's seal is never carried on."""
    from soteria_site.core import leases

    name = restore_batches.name_of("0123456789ab")
    leases.acquire(name, namespace="soteria", duration_seconds=4, holder="someone", labels=restore_batches.LABELS,
                   annotations={restore_batches.RECORD: "bm90IGd6aXA="}, now=_now() - LATER)
    report = restore.resume_batches()
    assert report == {"failed": [f"{name}: Lease soteria/{name} is not sealed with this Soteria's key "
                                 "(SOTERIA_SECRET_KEY); left alone"]}
    assert list(world.leases) == [("soteria", name)] and world.leases[("soteria", name)].holder == "someone"


def test_a_sealed_record_that_cannot_be_read_is_reported_and_left_alone(world):
    from soteria_site.core import leases

    name = restore_batches.name_of("0123456789ab")
    leases.acquire(name, namespace="soteria", duration_seconds=4, holder="someone", labels=restore_batches.LABELS,
                   annotations=leases.sealed({restore_batches.RECORD: "bm90IGd6aXA="}), now=_now() - LATER)
    [failure] = restore.resume_batches()["failed"]
    assert "holds no restore batch Soteria wrote (Not a gzipped file" in failure
    assert list(world.leases) == [("soteria", name)]


def _entries(count: int, length: int):
    rng = random.Random(count)
    word = lambda: "".join(rng.choices(string.ascii_lowercase, k=length))  # noqa: E731
    return [(f"{word()}-{i}", f"{word()}-{i}") for i in range(count)]


def test_a_record_of_500_pvcs_fits_one_lease_and_one_too_large_is_split(client, cluster, queue, monkeypatch):
    """500 PVCs of usual names are one batch; a namespace whose record would not fit a Lease's
    annotations is queued as several batches, each under the limit, naming every PVC once."""
    monkeypatch.setattr(restore_batches, "RECORD_LIMIT", 4_000)
    for pvc, _ in _entries(60, 150):
        cluster.add_pvc("big", pvc, backups=[("Completed", 3, None)])
    cluster.namespaces.add("big-restore")
    response = client.post("/v1/restores/namespace", {"namespace": "big", "target_namespace": "big-restore"},
                           content_type="application/json")
    assert response.json()["totals"]["queued"] == 60
    records = [lease.annotations[restore_batches.RECORD] for lease in cluster.leases.values()]
    assert len(records) == len(queue) > 1 and all(len(r) <= 4_000 for r in records)
    assert sorted(p.pvc for task in queue for p in task[2]) == sorted(p for (n, p) in cluster.pvcs if n == "big")
    for task in queue:
        tasks.restore_planned(*task)
    assert len([k for k in cluster.pvcs if k[0] == "big-restore"]) == 60 and cluster.leases == {}

    usual = [restore_batches.Entry(f"data-postgres-{i}", f"restored-data-postgres-{i}", f"backup-{i:016x}")
             for i in range(500)]
    batch = restore_batches.Batch("0123456789ab", "databases", "databases-restore", "someone", tuple(usual))
    assert len(restore_batches._encode(batch)) < 20_000
