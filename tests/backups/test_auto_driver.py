"""SOTERIA_BACKUP_DRIVER=auto: Longhorn for Longhorn volumes, restic for every other claim."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backups import drivers
from backups.drivers import longhorn, restic
from backups.drivers.base import VolumeView
from backups.types import Claim
from soteria_site.core.kubernetes import LONGHORN_CSI_DRIVER, Pv, Pvc, StorageClass

NOW = datetime(2026, 4, 12, 15, 30, tzinfo=timezone.utc)


def claim(name: str, csi_driver: str | None, bound: bool = True, provisioner: str = "") -> Claim:
    pvc = Pvc(namespace="ai", name=name, uid=name, phase="Bound" if bound else "Pending", storage_class="sc",
              volume_name=f"pv-{name}" if bound else None, access_modes=("ReadWriteOnce",), requested="1Gi",
              capacity="1Gi")
    pv = Pv(name=f"pv-{name}", phase="Bound", storage_class="sc", capacity="1Gi", access_modes=("ReadWriteOnce",),
            csi_driver=csi_driver, volume_handle=f"vol-{name}" if csi_driver else None, fs_type="ext4",
            claim_namespace="ai", claim_name=name, reclaim_policy="Retain") if bound else None
    return Claim(pvc=pvc, pv=pv, storage_class=StorageClass("sc", provisioner) if provisioner else None)


@pytest.fixture
def auto(settings):
    settings.SOTERIA_BACKUP_DRIVER = "auto"
    return drivers.current()


def test_each_claim_gets_its_own_driver(auto):
    assert auto.name == "auto"
    assert drivers.for_claim(claim("lh", LONGHORN_CSI_DRIVER)) is longhorn.DRIVER
    assert drivers.for_claim(claim("nfs", "nfs.csi.k8s.io")) is restic.DRIVER
    assert drivers.for_claim(claim("hostpath", None)) is restic.DRIVER
    assert drivers.for_claim(claim("pending-lh", None, bound=False, provisioner=LONGHORN_CSI_DRIVER)) is longhorn.DRIVER
    assert drivers.for_claim(claim("pending", None, bound=False, provisioner="ebs.csi.aws.com")) is restic.DRIVER


def test_the_configured_driver_alone_handles_every_claim(settings):
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    assert drivers.for_claim(claim("lh", LONGHORN_CSI_DRIVER)) is restic.DRIVER
    settings.SOTERIA_BACKUP_DRIVER = "longhorn"
    assert drivers.for_claim(claim("nfs", "nfs.csi.k8s.io")) is longhorn.DRIVER


def test_describe_asks_each_driver_once_about_its_own_claims(auto, monkeypatch):
    asked = {}

    def fake(name):
        def describe(claims, now):
            asked[name] = [c.pvc.name for c in claims]
            return {c.key: VolumeView(volume=c.pvc.name, supported=True, driver=name) for c in claims}
        return describe

    monkeypatch.setattr(longhorn.DRIVER, "describe", fake("longhorn"))
    monkeypatch.setattr(restic.DRIVER, "describe", fake("restic"))
    views = auto.describe([claim("a", LONGHORN_CSI_DRIVER), claim("b", None), claim("c", LONGHORN_CSI_DRIVER)], NOW)
    assert asked == {"longhorn": ["a", "c"], "restic": ["b"]}
    assert {key[1]: view.driver for key, view in views.items()} == {"a": "longhorn", "b": "restic", "c": "longhorn"}


def test_restore_progress_goes_to_the_driver_that_restored_the_claim(auto, monkeypatch):
    from backups.types import RestoreProgress

    monkeypatch.setattr(longhorn.DRIVER, "restore_progress",
                        lambda pvcs: {(p.namespace, p.name): RestoreProgress("done", 100, "longhorn") for p in pvcs})
    monkeypatch.setattr(restic.DRIVER, "restore_progress",
                        lambda pvcs: {(p.namespace, p.name): RestoreProgress("restoring", None, "restic") for p in pvcs})
    by_restic = Pvc("ai", "r1", "u", "Bound", "sc", "pv", (), "1Gi", "1Gi", labels={"soteria.io/driver": "restic"})
    by_longhorn = Pvc("ai", "r2", "u", "Bound", "sc", "pv", (), "1Gi", "1Gi")
    progress = auto.restore_progress([by_restic, by_longhorn])
    assert progress[("ai", "r1")].detail == "restic" and progress[("ai", "r2")].detail == "longhorn"


def test_requests_are_counted_under_the_claims_own_driver(auto, monkeypatch):
    from backups.metrics import BACKUP_REQUESTS
    from backups.services import backup, claims
    from backups.types import BackupResult

    monkeypatch.setattr(claims, "get_claim", lambda namespace, name: claim(name, "nfs.csi.k8s.io"))
    monkeypatch.setattr(restic.DRIVER, "backup", lambda c, labels, by, dry_run, now: BackupResult(
        driver="restic", namespace="ai", pvc=c.pvc.name, volume="pv", backup="job", requested_by=by, dry_run=dry_run))
    before = BACKUP_REQUESTS.labels("restic", "dry_run")._value.get()
    assert backup.backup_pvc("ai", "nfs-data", [], "brad", dry_run=True).driver == "restic"
    assert BACKUP_REQUESTS.labels("restic", "dry_run")._value.get() == before + 1
