"""Backups of detached volumes: Soteria waits through Longhorn's transient snapshot error
until the snapshot is ready, and on timeout reports the last error and deletes its snapshot."""

import os
import runpy
from pathlib import Path

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from backups.clients.longhorn import Snapshot
from backups.drivers import longhorn as driver_module
from backups.models import OwnSnapshot
from tests.support.clock import SleeplessClock
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db
ATTACHING = ("failed to take snapshot because the volume engine pvc-ai-llm-cache-e-0 is not running. "
             "Waiting for the volume to be attached")
SNAPSHOT = "soteria-backup-ai-llm-cache-20260412-153000"
SETTINGS = Path(__file__).resolve().parents[2] / "soteria_site" / "settings.py"


@pytest.fixture
def clock(monkeypatch):
    fake = SleeplessClock()
    monkeypatch.setattr(driver_module, "time", fake)
    with time_machine.travel(NOW, tick=False):
        yield fake


def _snap(ready, error=""):
    return Snapshot(name="", volume="", ready=ready, error=error, created=NOW)


def _post(client, body):
    return client.post("/v1/backup", body, content_type="application/json")


def test_backup_waits_through_the_attach_error_until_the_snapshot_is_ready(client, cluster, clock):
    cluster.add_pvc("ai", "llm-cache")
    cluster.snapshot_script[SNAPSHOT] = [_snap(False, ATTACHING)] * 5 + [_snap(False)] + [_snap(True)]
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 200, response.content
    assert cluster.calls["get_snapshot"] == 7
    assert cluster.calls["backup_snapshot"] == 1
    assert cluster.deleted_snapshots == []
    assert OwnSnapshot.objects.filter(name=SNAPSHOT).exists()


def test_backup_gives_up_at_the_timeout_with_504_the_last_longhorn_error_and_deletes_its_snapshot(
        client, cluster, clock, settings):
    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 30
    cluster.add_pvc("ai", "llm-cache")
    cluster.snapshot_script[SNAPSHOT] = [_snap(False, "first error"), _snap(False, ATTACHING)]
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 504, response.content
    body = response.json()
    assert body["error"] == "longhorn_timeout"
    assert ATTACHING in body["detail"] and "within 30s" in body["detail"]
    assert "deleted its snapshot" in body["detail"]
    assert body["longhorn_error"] == ATTACHING
    assert 30 <= clock.slept <= 33
    assert cluster.calls["backup_snapshot"] == 0
    assert cluster.deleted_snapshots == [("pvc-ai-llm-cache", SNAPSHOT)]
    assert not OwnSnapshot.objects.exists()


def test_a_ready_snapshot_with_a_leftover_error_still_counts_as_ready(client, cluster, clock):
    cluster.add_pvc("ai", "llm-cache")
    cluster.snapshot_script[SNAPSHOT] = [_snap(True, ATTACHING)]
    assert _post(client, {"namespace": "ai", "pvc": "llm-cache"}).status_code == 200
    assert cluster.calls["backup_snapshot"] == 1


@pytest.mark.parametrize("value, expected", [(None, 120), ("300", 300)])
def test_the_snapshot_timeout_is_read_from_the_environment_with_a_default_of_120(monkeypatch, tmp_path, value,
                                                                                  expected):
    for key in list(os.environ):
        if key.startswith("SOTERIA_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SOTERIA_DATA_DIR", str(tmp_path))
    if value:
        monkeypatch.setenv("SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS", value)
    loaded = runpy.run_path(str(SETTINGS), run_name="soteria_site.settings_under_test")
    assert loaded["SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS"] == expected


def test_a_bad_snapshot_timeout_stops_loading_with_the_variable_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SOTERIA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ImproperlyConfigured, match="SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS"):
        runpy.run_path(str(SETTINGS), run_name="soteria_site.settings_under_test")


def test_gunicorn_keeps_a_request_that_waits_the_whole_snapshot_timeout(monkeypatch, settings):
    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 600
    loaded = runpy.run_path(str(SETTINGS.parent / "gunicorn.conf.py"), run_name="gunicorn_conf_under_test")
    assert loaded["timeout"] > 600


def test_a_snapshot_not_found_at_first_is_waited_for_too(client, cluster, clock, monkeypatch):
    from soteria_site.core.errors import NotFound

    cluster.add_pvc("ai", "llm-cache")
    real = cluster.get_snapshot
    answers = iter([NotFound("snapshot not found"), NotFound("snapshot not found")])

    def flaky(volume, name):
        failure = next(answers, None)
        if failure:
            raise failure
        return real(volume, name)

    monkeypatch.setattr(cluster, "get_snapshot", flaky)
    cluster.install(monkeypatch)  # re-wire the seam to the flaky method
    assert _post(client, {"namespace": "ai", "pvc": "llm-cache"}).status_code == 200
    assert cluster.calls["get_snapshot"] == 3 and cluster.calls["backup_snapshot"] == 1


def test_the_per_pvc_lock_outlasts_the_snapshot_wait(settings):
    from backups.services import backup

    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 600
    assert backup._lock_seconds() > 600
    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 5
    assert backup._lock_seconds() == backup.LOCK_SECONDS
