"""Longhorn's inventory from its custom resources, at the seam: a fake Kubernetes API answering
paginated lists of volumes.longhorn.io, backups.longhorn.io and backupvolumes.longhorn.io."""

import json
import tracemalloc
from datetime import datetime, timezone

import pytest
from werkzeug.wrappers import Response

from backups.clients import longhorn_crd
from backups.clients.longhorn import BackupStatus, BackupVolume, Volume
from soteria_site.core.errors import UpstreamError
from soteria_site.core.metrics import UPSTREAM_REQUESTS
from tests.support.fakes import json_response

BASE = "/apis/longhorn.io/v1beta2/namespaces/longhorn-system"


def volume_cr(name, *, target=None, last_backup="", last_backup_at="", junk=0, **status):
    spec = {"size": "2147483648", "numberOfReplicas": 2, "accessMode": "rwo", "staleReplicaTimeout": 30,
            "dataEngine": "v1", "fromBackup": "", "nodeID": "", "diskSelector": [], "image": "longhornio/engine"}
    if target is not None:
        spec["backupTargetName"] = target
    return {
        "apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
        "metadata": {"name": name, "namespace": "longhorn-system", "creationTimestamp": "2026-11-01T10:00:00Z",
                     "labels": {"longhornvolume": name}, "managedFields": [{"manager": "x" * junk}]},
        "spec": spec,
        "status": {"state": "detached", "robustness": "unknown", "lastBackup": last_backup,
                   "lastBackupAt": last_backup_at, "restoreRequired": False, "restoreInitiated": False,
                   "conditions": [{"type": "Scheduled", "status": "True", "reason": "", "message": "",
                                   "lastProbeTime": "", "lastTransitionTime": "2026-11-01T10:00:00Z"}],
                   "kubernetesStatus": {"pvName": name, "pvStatus": "Bound", "namespace": "ai",
                                        "pvcName": f"claim-{name}", "workloadsStatus": None},
                   "actualSize": 0, "currentImage": "longhornio/engine", **status},
    }


def backup_cr(name, volume, *, state="Completed", target=None, label=True, snapshot=None, junk=0, **status):
    labels = {"backup-volume": volume} if label else {}
    if target:
        labels["backup-target"] = target
    snapshot = snapshot or f"snap-{name}"
    return {
        "apiVersion": "longhorn.io/v1beta2", "kind": "Backup",
        "metadata": {"name": name, "namespace": "longhorn-system", "labels": labels,
                     "annotations": {"junk": "y" * junk}},
        "spec": {"snapshotName": snapshot, "labels": {"policy": "nightly"}, "backupMode": "incremental"},
        "status": {"state": state, "progress": 100 if state == "Completed" else 40, "snapshotName": snapshot,
                   "url": f"s3://bucket@us-east-1/?backup={name}&volume={volume}", "error": "", "size": "1024",
                   "volumeName": volume, "labels": {"KubernetesStatus": "{}"}, "messages": None,
                   "snapshotCreatedAt": "2026-11-02T10:00:00Z", "backupCreatedAt": "2026-11-02T10:01:00Z",
                   "ownerID": "node-1", "replicaAddress": "tcp://10.0.0.1:10000", **status},
    }


def backup_volume_cr(name, volume_name=None, last_backup_name="", last_backup_at="", label=None):
    spec = {"backupTargetName": "default"} if volume_name else {}
    if volume_name:
        spec["volumeName"] = volume_name
    return {
        "apiVersion": "longhorn.io/v1beta2", "kind": "BackupVolume",
        "metadata": {"name": name, "namespace": "longhorn-system",
                     "labels": {"backup-volume": label} if label else {}},
        "spec": spec,
        "status": {"size": "2147483648", "createdAt": "2026-11-01T10:00:00Z", "lastBackupName": last_backup_name,
                   "lastBackupAt": last_backup_at, "storageClassName": "longhorn", "dataStored": "1024",
                   "messages": None},
    }


def paginated(kube_api, plural, items, page_size_seen=None, base=BASE):
    """Serve `items` in pages of the client's `limit`, chaining them with `continue` tokens."""
    requests = []

    def handler(request):
        limit = int(request.args["limit"])
        start = int(request.args.get("continue") or 0)
        requests.append({"limit": limit, "continue": request.args.get("continue"),
                         "labelSelector": request.args.get("labelSelector")})
        end = start + limit
        meta = {"resourceVersion": "42"}
        if end < len(items):
            meta["continue"] = str(end)
        return json_response({"apiVersion": "longhorn.io/v1beta2", "kind": "List", "metadata": meta,
                              "items": items[start:end]})

    kube_api.route("GET", f"{base}/{plural}", handler)
    return requests


def _ok(operation):
    return UPSTREAM_REQUESTS.labels("kubernetes", operation, "ok")._value.get()


def test_volumes_come_back_as_the_rest_clients_dataclasses_with_their_backups(kube_api):
    paginated(kube_api, "volumes", [volume_cr("vol-b", last_backup="backup-2",
                                              last_backup_at="2026-11-02T10:01:00Z"), volume_cr("vol-a")])
    paginated(kube_api, "backups", [backup_cr("backup-2", "vol-b"), backup_cr("backup-1", "vol-b", state="Error",
                                                                               error="boom")])
    a, b = longhorn_crd.list_volumes()
    assert isinstance(b, Volume) and (a.name, b.name) == ("vol-a", "vol-b")
    assert a.backups == ()
    assert b.backups == (
        BackupStatus(name="backup-1", snapshot="snap-backup-1", state="Error", progress=40,
                     url="s3://bucket@us-east-1/?backup=backup-1&volume=vol-b", error="boom", size="1024"),
        BackupStatus(name="backup-2", snapshot="snap-backup-2", state="Completed", progress=100,
                     url="s3://bucket@us-east-1/?backup=backup-2&volume=vol-b", error="", size="1024"),
    )  # sorted by backup name, as the manager sorts backupStatus[]
    assert b.last_backup == "backup-2" and b.last_backup_at == datetime(2026, 11, 2, 10, 1, tzinfo=timezone.utc)
    assert (b.size, b.state, b.robustness, b.ready) == ("2147483648", "detached", "unknown", True)
    assert (b.pv_name, b.pvc_name, b.pvc_namespace) == ("vol-b", "claim-vol-b", "ai")
    assert (b.number_of_replicas, b.access_mode, b.stale_replica_timeout, b.data_engine) == (2, "rwo", 30, "v1")
    assert b.created == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)
    assert b.conditions == {"Scheduled": {"type": "Scheduled", "status": "True", "reason": "", "message": ""}}


def test_every_page_is_read_and_a_list_of_many_pages_counts_as_one_call(kube_api, monkeypatch):
    from soteria_site.core import kubernetes

    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 3)
    volumes = [volume_cr(f"vol-{i:02}") for i in range(10)]
    backups = [backup_cr(f"backup-{i:02}-{j}", f"vol-{i:02}") for i in range(10) for j in range(2)]
    volume_requests = paginated(kube_api, "volumes", volumes)
    backup_requests = paginated(kube_api, "backups", backups)
    before = {op: _ok(op) for op in ("longhorn.volumes.list", "longhorn.backups.list")}
    listed = longhorn_crd.list_volumes()
    assert [v.name for v in listed] == [f"vol-{i:02}" for i in range(10)]
    assert all(len(v.backups) == 2 for v in listed)
    assert [r["continue"] for r in volume_requests] == [None, "3", "6", "9"]
    assert len(backup_requests) == 7 and all(r["limit"] == 3 for r in volume_requests + backup_requests)
    assert all(r["labelSelector"] is None for r in backup_requests)  # one list of all backups, not one per volume
    assert {op: _ok(op) - before[op] for op in before} == {"longhorn.volumes.list": 1, "longhorn.backups.list": 1}


def test_backups_are_grouped_by_label_else_by_status_volume_name_and_strays_are_dropped(kube_api):
    paginated(kube_api, "volumes", [volume_cr("vol-a")])
    paginated(kube_api, "backups", [
        backup_cr("backup-1", "vol-a"),
        backup_cr("backup-2", "vol-a", label=False),      # pulled from the store, not labelled yet
        backup_cr("backup-3", "vol-gone"),                 # its volume was deleted: not in any volume
        backup_cr("backup-4", "vol-a", state="", progress=0, snapshotName="", snapshot="soteria-backup-ai-x-20261102-100000"),
    ])
    [volume] = longhorn_crd.list_volumes()
    assert [b.name for b in volume.backups] == ["backup-1", "backup-2", "backup-4"]
    # A backup the controller has not picked up yet is named by the snapshot it was asked for.
    assert volume.backups[2].snapshot == "soteria-backup-ai-x-20261102-100000" and volume.backups[2].state == ""


def test_from_18_only_backups_on_the_volumes_own_backup_target_count(kube_api):
    paginated(kube_api, "volumes", [volume_cr("vol-a", target="default"), volume_cr("vol-17")])
    paginated(kube_api, "backups", [
        backup_cr("backup-1", "vol-a", target="default"),
        backup_cr("backup-2", "vol-a", target="offsite"),  # another target: the manager leaves it out
        backup_cr("backup-3", "vol-17"),                   # 1.7: no target label, no volume target
        backup_cr("backup-4", "vol-17", target="default"),
    ])
    v17, a = longhorn_crd.list_volumes()  # sorted by name
    assert [b.name for b in a.backups] == ["backup-1"]
    assert (a.backup_target, v17.backup_target) == ("default", "")
    assert [b.name for b in v17.backups] == ["backup-3", "backup-4"]


def test_for_the_inventory_completed_backups_are_counted_as_read_and_only_the_others_kept(kube_api):
    day1, day2 = datetime(2026, 11, 1, 10, tzinfo=timezone.utc), datetime(2026, 11, 2, 10, tzinfo=timezone.utc)
    taken = {"soteria-1": day1, "soteria-2": day2}
    paginated(kube_api, "volumes", [volume_cr("vol-a", target="default"), volume_cr("vol-b")])
    paginated(kube_api, "backups", [
        backup_cr("backup-2", "vol-a", target="default", snapshot="soteria-2"),
        backup_cr("backup-1", "vol-a", target="default", snapshot="soteria-1"),
        backup_cr("backup-3", "vol-a", target="default", snapshot="recurring-job"),  # undated: counted only
        backup_cr("backup-4", "vol-a", target="default", state="InProgress"),
        backup_cr("backup-5", "vol-a", target="offsite", snapshot="soteria-2"),      # another target's
    ])
    a, b = longhorn_crd.list_volumes(completed_time=taken.get)
    assert (a.completed_backups, a.last_completed_at) == (3, day2)
    assert [x.name for x in a.backups] == ["backup-4"]
    assert (b.completed_backups, b.last_completed_at, b.backups) == (0, None, ())
    # Without completed_time every backup is kept, as the manager's backupStatus[] lists them.
    a, _ = longhorn_crd.list_volumes()
    assert a.completed_backups is None and len(a.backups) == 4


def test_backup_volumes_match_by_spec_volume_name_from_18_and_by_name_before(kube_api):
    paginated(kube_api, "backupvolumes", [
        backup_volume_cr("vol-a-8521839b", "vol-a", "backup-9", "2026-11-02T10:01:00Z"),  # 1.9.1+
        backup_volume_cr("vol-b", None, "backup-1", "2026-11-01T10:01:00Z"),             # 1.7
        backup_volume_cr("vol-c-x1y2z3", None, label="vol-c"),                           # labelled only
    ])
    a, b, c = longhorn_crd.list_backup_volumes()
    assert a == BackupVolume(name="vol-a-8521839b", volume_name="vol-a", size="2147483648",
                             last_backup_name="backup-9",
                             last_backup_at=datetime(2026, 11, 2, 10, 1, tzinfo=timezone.utc),
                             created=datetime(2026, 11, 1, 10, tzinfo=timezone.utc), storage_class="longhorn",
                             backup_target="default")
    assert (b.name, b.volume_name, b.last_backup_name) == ("vol-b", "vol-b", "backup-1")
    assert (c.name, c.volume_name, c.last_backup_at) == ("vol-c-x1y2z3", "vol-c", None)


def test_reads_the_configured_longhorn_namespace(kube_api, settings):
    settings.SOTERIA_LONGHORN_NAMESPACE = "storage"
    paginated(kube_api, "backupvolumes", [backup_volume_cr("vol-a")],
              base="/apis/longhorn.io/v1beta2/namespaces/storage")
    assert [bv.name for bv in longhorn_crd.list_backup_volumes()] == ["vol-a"]


def test_a_refusal_is_a_kubernetes_error_naming_the_resource(kube_api):
    kube_api.route("GET", f"{BASE}/volumes", lambda r: json_response(
        {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
         "message": 'volumes.longhorn.io is forbidden: User "soteria" cannot list resource "volumes" in API group '
                    '"longhorn.io" in the namespace "longhorn-system"'}, status=403))
    with pytest.raises(UpstreamError) as info:
        longhorn_crd.list_volumes()
    assert info.value.upstream_status == 403 and "cannot list resource" in info.value.detail


def test_crds_that_are_not_served_say_so(kube_api):
    kube_api.route("GET", f"{BASE}/backupvolumes",
                   lambda r: Response("404 page not found\n", status=404, content_type="text/plain"))
    with pytest.raises(UpstreamError, match="does not serve backupvolumes.longhorn.io/v1beta2"):
        longhorn_crd.list_backup_volumes()


def _peak_listing(kube_api, volumes: int, per_volume: int) -> tuple[int, int, int]:
    """(peak traced bytes, bytes held afterwards, bytes of JSON served) of one list_volumes()."""
    paginated(kube_api, "volumes", [volume_cr(f"vol-{i}", junk=4096) for i in range(volumes)])
    backups = [backup_cr(f"backup-{i}-{j}", f"vol-{i}", junk=4096) for i in range(volumes) for j in range(per_volume)]
    paginated(kube_api, "backups", backups)
    served = len(json.dumps(backups))
    del backups
    tracemalloc.start()
    try:
        listed = longhorn_crd.list_volumes()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(len(v.backups) for v in listed) == volumes * per_volume
    return peak, held, served


def test_fields_soteria_does_not_use_are_dropped_page_by_page(kube_api, monkeypatch):
    """Backups padded with 4 KB Soteria never reads (as managedFields, annotations and labels are
    in a real cluster): what is kept is a small part of what was served, and the peak follows
    one page, not the list (four times the pages, about the same peak)."""
    from soteria_site.core import kubernetes

    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 200)
    small_peak, _, _ = _peak_listing(kube_api, 10, 100)  # 5 pages of backups
    peak, held, served = _peak_listing(kube_api, 40, 100)  # 20 pages
    assert served > 16 * 2 ** 20
    assert held < served / 8, f"{held / 2 ** 20:.1f} MiB kept of {served / 2 ** 20:.1f} MiB served"
    assert peak < small_peak * 1.5, f"peak {peak / 2 ** 20:.1f} MiB at 20 pages, {small_peak / 2 ** 20:.1f} at 5"
