"""Longhorn's inventory from its CRDs, on the sandbox: the same volumes, backups and backup
volumes as the manager's REST API answers, read through the real apiserver page by page."""

import pytest

from backups.clients import longhorn, longhorn_crd
from sandbox import faults
from soteria_site.core import kubernetes
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _comparable(volume):
    return (volume.name, volume.size, volume.state, volume.pv_name, volume.pvc_name, volume.pvc_namespace,
            volume.last_backup, volume.last_backup_at, volume.restore_required, volume.number_of_replicas,
            volume.access_mode, volume.from_backup, volume.backup_target,
            tuple((b.name, b.snapshot, b.state, b.progress, b.url, b.error, b.size) for b in volume.backups))


def test_the_crds_say_what_the_manager_says(live, monkeypatch):
    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 7)  # several pages of each, through the real apiserver
    faults.reset_calls(live)
    from_crds = longhorn_crd.list_volumes()
    longhorn_crd.list_backup_volumes()
    assert faults.calls(live) == {}  # not one call to the manager
    assert len(from_crds) >= 6 and any(v.backups for v in from_crds)

    def same() -> bool:  # a backup still running elsewhere may move between the two reads: read again
        faults.wait_mirrored(live)
        crds = ([_comparable(v) for v in longhorn_crd.list_volumes()], longhorn_crd.list_backup_volumes())
        rest = ([_comparable(v) for v in longhorn.list_volumes()], longhorn.list_backup_volumes())
        return crds == rest

    wait_for(same, what="the CRDs and the manager to agree")
