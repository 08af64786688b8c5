"""Policy evaluation at the client seam: what is due, what is not, leadership, jitter, retention."""

from datetime import timedelta

import pytest
import time_machine

from policies import evaluate, leader, services
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("policy_secret_settings")]


def _policy(namespace, pvc="", hours=6.0, enabled=True, retain=None, when=NOW - timedelta(days=30)):
    with time_machine.travel(when, tick=False):
        return services.save_policy(namespace, pvc, hours, enabled, retain, [], "tester")[0]


def _run(holder="replica-a", at=NOW):
    with time_machine.travel(at, tick=False):
        return evaluate.evaluate(now=at, holder=holder)


def test_due_pvcs_are_backed_up_with_policy_tags_and_others_are_not(cluster):
    cluster.add_pvc("ai", "old", backups=[("Completed", 10, None)])
    cluster.add_pvc("ai", "fresh", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "never")
    cluster.add_pvc("media", "photos", backups=[("Completed", 100, None)])  # no policy
    _policy("ai")
    report = _run()
    assert sorted(report.started) == ["ai/never", "ai/old"]
    assert cluster.last_backup_call["labels"] == {"policy": "ai"}
    assert "media/photos" not in report.due


def test_pvc_policy_overrides_the_namespace_policy_even_when_disabled(cluster):
    cluster.add_pvc("ai", "a", backups=[("Completed", 10, None)])
    cluster.add_pvc("ai", "b", backups=[("Completed", 10, None)])
    cluster.add_pvc("ai", "c", backups=[("Completed", 10, None)])
    _policy("ai", hours=6)
    _policy("ai", "b", hours=48)
    _policy("ai", "c", enabled=False)
    assert sorted(_run().started) == ["ai/a"]


def test_disabled_namespace_policy_backs_up_nothing(cluster):
    cluster.add_pvc("ai", "a", backups=[("Completed", 10, None)])
    _policy("ai", enabled=False)
    assert _run().started == {}


def test_pvcs_with_a_backup_in_progress_are_skipped(cluster):
    cluster.add_pvc("ai", "busy", backups=[("Completed", 10, None), ("InProgress", None, None)])
    _policy("ai")
    report = _run()
    assert report.started == {} and report.skipped == {"ai/busy": "backup in progress"}


def test_only_the_lease_holder_evaluates(cluster):
    cluster.add_pvc("ai", "old", backups=[("Completed", 10, None)])
    _policy("ai")
    first, second = _run("replica-a"), _run("replica-b")
    assert first.leader and not second.leader
    assert cluster.calls["backup_snapshot"] == 1


def test_a_dead_leader_is_replaced_once_its_lease_expires(cluster, settings):
    cluster.add_pvc("ai", "old", backups=[("Completed", 10, None)])
    _policy("ai")
    assert _run("replica-a").leader
    later = NOW + timedelta(seconds=leader.lease_seconds() + 1)
    assert _run("replica-b", at=later).leader
    assert not _run("replica-a", at=later + timedelta(seconds=1)).leader


def test_jitter_is_stable_and_spreads_a_namespace():
    offsets = [evaluate.jitter("ai", f"pvc-{i}", 24 * 3600) for i in range(20)]
    assert offsets == [evaluate.jitter("ai", f"pvc-{i}", 24 * 3600) for i in range(20)]
    assert len(set(offsets)) == 20
    assert all(timedelta(0) <= o < timedelta(hours=2.4) for o in offsets)
    assert max(offsets) - min(offsets) > timedelta(hours=1.2)


def test_a_new_namespace_policy_spreads_first_backups_over_the_jitter_window(cluster):
    for i in range(20):
        cluster.add_pvc("ai", f"pvc-{i}")
    _policy("ai", hours=24, when=NOW)
    started_at = {}
    for minutes in range(0, 160, 10):  # the window is 10% of 24 h = 144 min
        at = NOW + timedelta(minutes=minutes)
        for key in _run(at=at).started:
            started_at[key] = minutes
        for volume in cluster.volumes.values():  # finish what started so nothing stays in progress
            cluster.volumes[volume.name] = volume.__class__(**{**volume.__dict__, "backups": tuple(
                b.__class__(**{**b.__dict__, "state": "Completed"}) for b in volume.backups)})
    assert len(started_at) == 20
    assert len(set(started_at.values())) >= 8  # not all at once


def test_results_are_written_back_to_the_policy(cluster):
    cluster.add_pvc("ai", "old", backups=[("Completed", 10, None)])
    _policy("ai")
    _run()
    [policy] = services.list_policies()
    assert policy.last_run_at == NOW and policy.last_result == "started"


def test_retention_keeps_the_newest_n_of_the_policys_backups(cluster):
    mine = {"policy": "ai.db"}
    cluster.add_pvc("ai", "db", backups=[("Completed", h, f"snap-{h}", mine) for h in (1, 2, 3, 4, 5)]
                    + [("Completed", 6, "manual", {"reason": "upgrade"})])
    _policy("ai", "db", hours=24, retain=2)
    report = _run()
    assert sorted(report.retention_deleted["ai/db"]) == ["backup-pvc-ai-db-2", "backup-pvc-ai-db-3",
                                                         "backup-pvc-ai-db-4"]
    remaining = {b.name for b in cluster.backups["pvc-ai-db"]}
    assert remaining == {"backup-pvc-ai-db-0", "backup-pvc-ai-db-1", "backup-pvc-ai-db-5"}


def test_retention_never_deletes_the_last_successful_backup(cluster):
    mine = {"policy": "ai.db"}
    cluster.add_pvc("ai", "db", backups=[("Completed", 30, "old", mine), ("Error", None, None, mine)])
    _policy("ai", "db", hours=48, retain=1)
    _run()
    assert [b.name for b in cluster.backups["pvc-ai-db"] if b.state == "Completed"] == ["backup-pvc-ai-db-0"]


def test_retention_lists_backups_only_of_pvcs_with_more_than_it_keeps(cluster):
    mine = {"policy": "ai"}
    cluster.add_pvc("ai", "full", backups=[("Completed", h, f"snap-{h}", mine) for h in (1, 2, 3)])
    cluster.add_pvc("ai", "over", backups=[("Completed", h, f"snap-{h}", mine) for h in (1, 2, 3, 4)])
    _policy("ai", hours=24, retain=3)
    report = _run()
    assert report.retention_deleted == {"ai/over": ["backup-pvc-ai-over-3"]}
    assert cluster.calls["list_backups"] == 1  # only "over": "full" has no more than 3 to choose from


def test_each_pvc_gets_its_own_policy_else_its_namespaces_across_namespaces(cluster):
    for i in range(30):
        cluster.add_pvc(f"ns-{i % 3}", f"pvc-{i}", backups=[("Completed", 10, None)])
    _policy("ns-0", hours=6)
    _policy("ns-1", hours=48)
    _policy("ns-1", "pvc-1", hours=6)
    _policy("ns-2", "pvc-2", hours=6, enabled=False)
    report = _run()
    assert sorted(report.started) == sorted([f"ns-0/pvc-{i}" for i in range(0, 30, 3)] + ["ns-1/pvc-1"])
    policies = services.list_policies()
    index = evaluate.policy_index(policies)
    for i in range(30):
        assert evaluate.effective(index, f"ns-{i % 3}", f"pvc-{i}") is evaluate.effective(
            policies, f"ns-{i % 3}", f"pvc-{i}")
