"""Longhorn versions and backup targets: backupMode needs 1.7; several targets (1.8+) are
told apart by the volume's own backupTargetName."""

import logging
from dataclasses import replace

import pytest
import time_machine

from backups.clients.longhorn import BackupVolume
from backups.drivers import longhorn_features
from backups.drivers.longhorn import backup_facts
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def _post(client, pvc="llm-cache"):
    return client.post("/v1/backup", {"namespace": "ai", "pvc": pvc}, content_type="application/json")


@pytest.mark.parametrize("raw, parsed", [("v1.6.2", (1, 6, 2)), ("v1.9.0-rc1", (1, 9, 0)), ("1.8", (1, 8, 0)),
                                         ("master-head", None), ("", None), (None, None)])
def test_versions_are_read_from_current_longhorn_version(raw, parsed):
    assert longhorn_features.parse_version(raw) == parsed


def test_full_backups_are_refused_against_longhorn_1_6_with_a_clear_error(client, cluster, settings):
    settings.SOTERIA_LONGHORN_BACKUP_MODE = "full"
    cluster.settings["current-longhorn-version"] = "v1.6.4"
    cluster.add_pvc("ai", "llm-cache")
    response = _post(client)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "backup_mode_unsupported" and body["setting"] == "SOTERIA_LONGHORN_BACKUP_MODE"
    assert "1.7" in body["detail"] and "v1.6.4" in body["detail"]
    assert cluster.mutating_calls == {}


@pytest.mark.parametrize("version", ["v1.7.0", "v1.9.3", "master-head"])
def test_full_backups_go_ahead_from_1_7_and_when_the_version_is_unknown(client, cluster, settings, version):
    settings.SOTERIA_LONGHORN_BACKUP_MODE = "full"
    cluster.settings["current-longhorn-version"] = version
    cluster.add_pvc("ai", "llm-cache")
    assert _post(client).status_code == 200
    assert cluster.last_backup_call["mode"] == "full"


def test_the_version_is_asked_once_and_incremental_never_asks(client, cluster, settings):
    cluster.add_pvc("ai", "llm-cache")
    cluster.add_pvc("ai", "other")
    assert _post(client).status_code == 200
    assert cluster.calls["get_setting"] == 0
    settings.SOTERIA_LONGHORN_BACKUP_MODE = "full"
    cluster.volumes["pvc-ai-llm-cache"] = replace(cluster.volumes["pvc-ai-llm-cache"], backups=())
    for pvc in ("llm-cache", "other"):
        with time_machine.travel(NOW.replace(minute=40), tick=False):
            _post(client, pvc)
    assert cluster.calls["get_setting"] == 1


@pytest.mark.django_db(transaction=True)  # the probes run in threads, which read the shared cache
def test_readiness_logs_a_hint_for_full_backups_against_1_6_without_failing(client, cluster, settings,
                                                                             monkeypatch, caplog):
    from backups.clients import longhorn
    from soteria_site import health
    from soteria_site.core import kubernetes

    monkeypatch.setattr(health, "_states", {})

    monkeypatch.setattr(longhorn, "ping", lambda timeout=None: None)
    monkeypatch.setattr(kubernetes, "server_version", lambda timeout=None: "v1.20.2")
    settings.SOTERIA_LONGHORN_BACKUP_MODE = "full"
    cluster.settings["current-longhorn-version"] = "v1.6.0"
    with caplog.at_level(logging.WARNING, logger="soteria_site.health"):
        response = client.get("/readyz")
    assert response.json()["checks"]["longhorn"] == {"ok": True}
    assert any("backup_mode_unsupported" in r.getMessage() and "1.7" in r.getMessage() for r in caplog.records)


def _bv(name, target, hours):
    from datetime import timedelta

    return BackupVolume(name=name, volume_name="pvc-ai-llm-cache", size="1", last_backup_name="",
                        last_backup_at=NOW - timedelta(hours=hours), created=NOW, storage_class="longhorn",
                        backup_target=target)


def test_backups_are_listed_from_the_backup_volume_on_the_volumes_own_target(client, cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 5, None)])
    volume = "pvc-ai-llm-cache"
    cluster.volumes[volume] = replace(cluster.volumes[volume], backup_target="nfs-target")
    own, other = cluster.backups.pop(volume), []
    cluster.backup_volumes = {"bv-own": _bv("bv-own", "nfs-target", 5), "bv-other": _bv("bv-other", "default", 1)}
    cluster.backups = {"bv-own": own, "bv-other": other}
    body = client.get("/v1/backups", {"namespace": "ai", "pvc": "llm-cache"}).json()
    assert [b["name"] for b in body["backups"]] == [own[0].name]


def test_inventory_facts_ignore_another_targets_backup_volume(cluster):
    cluster.add_volume("pvc-ai-llm-cache")
    volume = replace(cluster.volumes["pvc-ai-llm-cache"], backup_target="nfs-target", last_backup_at=None)
    assert backup_facts(volume, _bv("bv-other", "default", 1), NOW).last_success_at is None
    assert backup_facts(volume, _bv("bv-own", "nfs-target", 1), NOW).last_success_at is not None


def test_inventory_picks_the_backup_volume_on_the_volumes_own_target(client, cluster):
    """Two targets each hold a backup volume of the same volume: the inventory dates the last
    backup from the one on the volume's own target, even when the other one is newer."""
    cluster.add_pvc("ai", "llm-cache")
    volume = "pvc-ai-llm-cache"
    cluster.volumes[volume] = replace(cluster.volumes[volume], backup_target="nfs-target", last_backup_at=None,
                                      backups=())
    cluster.backup_volumes = {"bv-own": _bv("bv-own", "nfs-target", 30), "bv-other": _bv("bv-other", "default", 1)}
    with time_machine.travel(NOW, tick=False):
        item = next(p for ns in client.get("/v1/inventory").json()["namespaces"] for p in ns["pvcs"])
    assert item["last_backup_age_hours"] == 30.0
