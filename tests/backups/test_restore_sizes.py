"""Restored sizes: Longhorn restores a volume at the backup's volumeSize; the PV says so,
and a source that grew since the backup gets its restored volume expanded."""

import pytest

from soteria_site.core.errors import UpstreamError
from tests.support.clock import SleeplessClock

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
GI = 2**30


def _restore(client, dry_run=False):
    return client.post("/v1/restores", {"namespace": "ai", "pvc": "grown", "target_pvc": "copy",
                                        "dry_run": dry_run}, content_type="application/json")


@pytest.fixture
def grown(cluster):
    """A PVC of 20Gi now, whose only backup was taken when its volume had 10Gi."""
    cluster.add_pvc("ai", "grown", size="20Gi", backups=[("Completed", 5, None, {}, str(10 * GI))])
    return cluster


def test_the_dry_run_plan_shows_the_backup_size_and_the_expansion(client, grown):
    body = _restore(client, dry_run=True).json()
    assert body["backup_size"] == "10Gi" and body["source_size"] == "20Gi" and body["size"] == "20Gi"
    calls = {c["call"]: c["args"] for c in body["plan"]}
    assert calls["longhorn.createVolume"]["size"] == str(10 * GI)
    assert calls["longhorn.expand"] == {"size": str(20 * GI), "from": "10Gi", "to": "20Gi"}
    assert calls["kubernetes.createPersistentVolume"]["capacity"] == "20Gi"
    assert grown.mutating_calls == {}


def test_a_grown_source_gets_its_restored_volume_expanded_and_the_pv_matches(client, grown):
    response = _restore(client)
    assert response.status_code == 200, response.content
    body = response.json()
    assert grown.expanded == [(body["volume"], str(20 * GI))]
    assert int(grown.volumes[body["volume"]].size) == 20 * GI
    assert grown.pvs[body["pv"]].capacity == "20Gi"
    assert grown.pvcs[("ai", "copy")].requested == "20Gi"
    assert body["size_note"] == ""


def test_when_longhorn_refuses_the_expansion_the_pv_has_the_backup_size_and_the_answer_says_smaller(
        client, grown):
    grown.fail["expand_volume"] = UpstreamError("longhorn", "Longhorn failed volumes.expand: unable to expand "
                                                "volume: cannot expand volume before replica scheduling success")
    body = _restore(client).json()
    volume = grown.volumes[body["volume"]]
    assert int(volume.size) == 10 * GI  # what Longhorn restored
    assert grown.pvs[body["pv"]].capacity == "10Gi" == body["size"]
    assert grown.pvcs[("ai", "copy")].requested == "10Gi"
    assert "smaller" in body["size_note"] and "20Gi" in body["size_note"] and "10Gi" in body["size_note"]


def test_a_source_no_bigger_than_the_backup_is_restored_at_the_backup_size_without_expansion(client, cluster):
    cluster.add_pvc("ai", "grown", size="8Gi", backups=[("Completed", 5, None, {}, str(10 * GI))])
    body = _restore(client).json()
    assert cluster.expanded == []
    assert cluster.pvs[body["pv"]].capacity == "10Gi"
    assert int(cluster.volumes[body["volume"]].size) == 10 * GI


@pytest.mark.django_db(transaction=True)  # the batch runs in threads
def test_a_namespace_restore_reports_a_smaller_claim_in_its_task_result(client, grown, monkeypatch):
    from backups import tasks
    from backups.services import restore

    queued = []
    monkeypatch.setattr(restore, "_enqueue", lambda *task: queued.append(task))
    grown.fail["expand_volume"] = UpstreamError("longhorn", "Longhorn failed expand: no")
    grown.namespaces.add("ai-copy")
    body = client.post("/v1/restores/namespace", {"namespace": "ai", "target_namespace": "ai-copy"},
                       content_type="application/json").json()
    row = next(r for r in body["results"] if r["pvc"] == "grown")
    assert row["status"] == "queued" and row["detail"] == ""
    result = tasks.restore_planned(*queued[0])
    assert result["restored"] == ["ai-copy/grown"] and "smaller" in result["notes"]["ai-copy/grown"]


def test_the_expansion_waits_until_the_restoring_volume_is_attached(client, grown, monkeypatch):
    from dataclasses import replace

    from backups.drivers import longhorn_restore

    monkeypatch.setattr(longhorn_restore, "time", SleeplessClock())
    create, get = grown.create_volume, grown.get_volume
    seen = []

    def attaching(name, **kwargs):
        volume = create(name, **kwargs)
        grown.volumes[name] = replace(volume, state="attaching")
        return grown.volumes[name]

    def attached_after_three_looks(name):
        volume = get(name)
        if name == "pvc-ai-grown" or volume is None:  # the source
            return volume
        seen.append(volume.state)
        if len(seen) >= 3 and volume.state == "attaching":
            grown.volumes[name] = replace(volume, state="attached")
        return grown.volumes.get(name)

    monkeypatch.setattr(grown, "create_volume", attaching)
    monkeypatch.setattr(grown, "get_volume", attached_after_three_looks)
    grown.install(monkeypatch)
    body = _restore(client).json()
    assert grown.expanded == [(body["volume"], str(20 * GI))]
    assert seen == ["attaching"] * 3  # accepted, then two more looks before it was attached


def test_a_refusal_for_the_volumes_state_is_retried_until_longhorn_expands(client, grown, monkeypatch):
    from backups.drivers import longhorn_restore

    monkeypatch.setattr(longhorn_restore, "time", SleeplessClock())
    expand = grown.expand_volume
    refusals = iter([UpstreamError("longhorn", "unable to expand volume x: invalid volume state to expand: "
                                               "attaching")] * 2)

    def racy(name, size):
        refusal = next(refusals, None)
        if refusal:
            raise refusal
        return expand(name, size)

    monkeypatch.setattr(grown, "expand_volume", racy)
    grown.install(monkeypatch)
    body = _restore(client).json()
    assert grown.calls["expand_volume"] == 3
    assert body["size"] == "20Gi" and body["size_note"] == ""
