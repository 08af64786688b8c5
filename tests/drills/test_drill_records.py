"""The per-PVC verification record (a ConfigMap): compare-and-swap writes that lose nothing
to a concurrent writer, bounded manifests and history, and reads that survive a damaged
record (backups/services/drill_records.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from backups.manifests import Manifest
from backups.services import drill_records, drill_results
from soteria_site.core import kubernetes
from soteria_site.core.errors import UpstreamError
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(cluster, settings):
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    return cluster


def drill(number: int, result: str = "passed", **more) -> dict:
    when = NOW + timedelta(minutes=number)
    return {"id": f"d{number}", "namespace": "ai", "pvc": "llm-cache", "driver": "longhorn", "backup": "b",
            "started_at": f"{when:%Y-%m-%dT%H:%M:%SZ}", "finished_at": f"{when:%Y-%m-%dT%H:%M:%SZ}",
            "result": result, "reason": "", **more}


def stored(records) -> dict:
    cm = records.config_maps[("soteria", drill_records.name_of("ai", "llm-cache"))]
    return {"manifests": json.loads(cm.data["manifests.json"]), "drills": json.loads(cm.data["drills.json"])}


def test_a_write_that_loses_the_race_is_applied_again_over_the_winners(records, monkeypatch):
    drill_records.update("ai", "llm-cache", lambda r: r.put_drill(drill(1)))
    replace = kubernetes.replace_config_map
    raced = []

    def concurrent_writer_first(namespace, name, body):
        if not raced:  # another writer (a manifest collection) replaces the record in between
            raced.append(name)
            drill_records.update("ai", "llm-cache", lambda r: r.add_manifest("snap-1", Manifest(3, 30, "d"), NOW))
        return replace(namespace, name, body)

    monkeypatch.setattr(kubernetes, "replace_config_map", concurrent_writer_first)
    applied = []
    drill_records.update("ai", "llm-cache", lambda r: (applied.append(1), r.put_drill(drill(2))))
    assert len(applied) == 2  # read again and re-applied after the Conflict
    after = stored(records)
    assert list(after["manifests"]) == ["snap-1"] and [d["id"] for d in after["drills"]] == ["d2", "d1"]
    assert records.calls["replace_config_map"] == 3  # the race's write, the lost one, the retry


def test_a_record_that_keeps_changing_gives_up_with_an_upstream_error(records, monkeypatch):
    from soteria_site.core.errors import Conflict

    drill_records.update("ai", "llm-cache", lambda r: r.put_drill(drill(1)))
    records.fail["replace_config_map"] = Conflict("the object has been modified")
    with pytest.raises(UpstreamError) as caught:
        drill_records.update("ai", "llm-cache", lambda r: r.put_drill(drill(2)))
    assert caught.value.status == 502 and "kept changing" in caught.value.detail
    assert records.calls["replace_config_map"] == drill_records.WRITE_ATTEMPTS
    assert [d["id"] for d in drill_records.load("ai", "llm-cache").drills] == ["d1"]


def test_only_the_newest_manifests_are_kept(records):
    for index in range(drill_records.MANIFESTS_KEPT + 2):
        drill_records.update("ai", "llm-cache", lambda r, i=index: r.add_manifest(
            f"snap-{i}", Manifest(i, i, "d"), NOW + timedelta(hours=i)))
    record = drill_records.load("ai", "llm-cache")
    kept = range(2, drill_records.MANIFESTS_KEPT + 2)
    assert sorted(record.manifests) == sorted(f"snap-{i}" for i in kept)
    assert record.manifest("snap-0") is None and record.manifest("snap-6").files == 6


def test_history_keeps_the_newest_drills_newest_first(records, settings):
    settings.SOTERIA_DRILL_HISTORY = 3
    for number in (2, 5, 1, 4, 3):
        drill_records.update("ai", "llm-cache", lambda r, n=number: r.put_drill(drill(n)))
    assert [d["id"] for d in drill_records.load("ai", "llm-cache").drills] == ["d5", "d4", "d3"]
    drill_records.update("ai", "llm-cache", lambda r: r.put_drill(drill(4, "failed")))  # replaced by id
    assert [(d["id"], d["result"]) for d in stored(records)["drills"]] == [("d5", "passed"), ("d4", "failed"),
                                                                         ("d3", "passed")]


@pytest.mark.parametrize("data", [
    {"drills.json": "{not json", "manifests.json": "{}"},
    {"drills.json": '{"a": 1}'},
    {"drills.json": "[1, \"two\"]", "manifests.json": '{"snap-0": "not an object"}'},
])
def test_a_damaged_record_reads_as_empty_and_is_rewritten(records, data):
    name = drill_records.name_of("ai", "llm-cache")
    kubernetes.create_config_map("soteria", {"metadata": {
        "name": name, "labels": {"app.kubernetes.io/managed-by": "soteria", "soteria.io/record": "verification"},
        "annotations": {"soteria.io/namespace": "ai", "soteria.io/pvc": "llm-cache"}}, "data": data})
    assert drill_records.load("ai", "llm-cache").drills == []
    assert drill_records.load_all()[("ai", "llm-cache")].drills == []
    assert drill_results.verification_by_pvc() == {}
    assert drill_results.history("ai") == []
    drill_records.update("ai", "llm-cache", lambda r: r.add_manifest("snap-1", Manifest(1, 1, "d"), NOW))
    drill_records.update("ai", "llm-cache", lambda r: r.put_drill(drill(1)))
    assert [d["id"] for d in drill_results.history("ai", "llm-cache")] == ["d1"]
