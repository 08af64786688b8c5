"""The Longhorn emulator against reference/longhorn-api.md: envelope, volumes, errors, settings."""

from __future__ import annotations

import re

import pytest

from tests.support.emulator import error_body
from tests.support.polling import wait_for

GO_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$")


# Envelope ---------------------------------------------------------------------------
def test_discovery_links_are_built_from_the_request_host(lh):
    response = lh.get("/v1", headers={"Host": "longhorn-backend.longhorn-system.svc:9500"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-API-Schemas"] == "http://longhorn-backend.longhorn-system.svc:9500/v1/schemas"
    body = response.json()
    assert body["type"] == "apiVersion" and body["id"] == "v1" and body["actions"] == {}
    assert body["links"]["volumes"] == "http://longhorn-backend.longhorn-system.svc:9500/v1/volumes"
    assert body["links"]["backupvolumes"] == "http://longhorn-backend.longhorn-system.svc:9500/v1/backupvolumes"
    root = lh.get("/").json()
    assert root["type"] == "collection" and root["resourceType"] == "apiVersion"
    assert root["data"][0]["id"] == "v1" and root["links"]["latest"] == f"{lh.url}/v1"


def test_forwarded_headers_change_the_links(lh):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "longhorn.example.com"}
    body = lh.get("/v1/volumes", headers=headers).json()
    assert body["links"]["self"] == "https://longhorn.example.com/v1/volumes"
    assert body["createTypes"] == {"volume": "https://longhorn.example.com/v1/volumes"}


def test_created_volume_is_a_full_resource(lh):
    response = lh.post("/v1/volumes", {"name": "vol-a", "size": "2Gi", "numberOfReplicas": 2})
    assert response.status_code == 200  # not 201
    volume = response.json()
    assert volume["id"] == volume["name"] == "vol-a" and volume["type"] == "volume"
    assert volume["size"] == "2147483648"
    assert GO_TIME.match(volume["created"]), volume["created"]
    assert volume["links"]["self"] == f"{lh.url}/v1/volumes/vol-a"
    assert volume["actions"]["snapshotBackup"] == f"{lh.url}/v1/volumes/vol-a?action=snapshotBackup"
    assert volume["frontend"] == "blockdev" and volume["dataEngine"] == "v1" and volume["accessMode"] == "rwo"
    assert volume["numberOfReplicas"] == 2 and len(volume["replicas"]) == 2
    assert volume["backupStatus"] == [] and volume["restoreStatus"] == [] and volume["lastBackup"] == ""
    assert volume["kubernetesStatus"] == {"pvName": "", "pvStatus": "", "namespace": "", "pvcName": "",
                                          "lastPVCRefAt": "", "workloadsStatus": None, "lastPodRefAt": ""}
    assert set(volume["conditions"]) >= {"Scheduled", "Restore", "TooManySnapshots"}
    assert volume["conditions"]["Restore"]["status"] == "False"
    assert "backupTargetName" not in volume  # 1.8+
    detached = lh.wait_volume("vol-a", lambda v: v["state"] == "detached")
    assert detached["robustness"] == "unknown" and detached["ready"] is True
    assert {"pvCreate", "pvcCreate", "snapshotCRCreate"} <= set(detached["actions"])
    assert "snapshotCreate" not in detached["actions"]  # engine calls only when attached


def test_volume_list_is_a_sorted_collection_with_create_types(lh):
    for name in ("vol-c", "vol-a", "vol-b"):
        lh.create_volume(name)
    response = lh.get("/v1/volumes")
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["type"] == "collection" and body["resourceType"] == "volume"
    assert body["links"] == {"self": f"{lh.url}/v1/volumes"}
    assert body["createTypes"] == {"volume": f"{lh.url}/v1/volumes"}
    assert [v["name"] for v in body["data"]] == ["vol-a", "vol-b", "vol-c"]
    assert all(v["type"] == "volume" for v in body["data"])


def test_empty_collections_still_carry_data(lh):
    assert lh.get("/v1/volumes").json()["data"] == []
    assert lh.get("/v1/backupvolumes").json()["data"] == []


def test_get_of_a_missing_volume_is_404_with_an_empty_body(lh):
    response = lh.get("/v1/volumes/nope")
    assert response.status_code == 404 and response.content == b""


def test_get_with_an_action_query_just_returns_the_volume(lh):
    lh.create_volume("vol-a")
    response = lh.get("/v1/volumes/vol-a?action=snapshotBackup")
    assert response.status_code == 200 and response.json()["name"] == "vol-a"


# Errors -------------------------------------------------------------------------------
def test_duplicate_volume_is_a_500_error_body(lh):
    lh.create_volume("vol-a")
    response = lh.post("/v1/volumes", {"name": "vol-a", "size": "1Gi", "numberOfReplicas": 3})
    error_body(response, 500, 'unable to create volume vol-a: volumes.longhorn.io "vol-a" already exists')
    # Written after the status line, as the manager does: no JSON content type.
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "X-API-Schemas" not in response.headers


@pytest.mark.parametrize("body, message", [
    (b"{not json", "invalid character 'n' looking for beginning of value"),
    (b"", "EOF"),
    (b'{"name": "v", "size": 1073741824}', "json: cannot unmarshal number into Go struct field Volume.size of type string"),
    (b'{"name": "v", "size": "1Gi", "numberOfReplicas": "3"}',
     "json: cannot unmarshal string into Go struct field Volume.numberOfReplicas of type int"),
    (b'["v"]', "json: cannot unmarshal array into Go value of type api.Volume"),
    (b'{"name": "v", "size": "lots"}', "failed to parse size error parsing size 'lots'"),
])
def test_bad_bodies_are_500s_with_go_messages(lh, body, message):
    response = lh.http.post(f"{lh.url}/v1/volumes", data=body)
    error_body(response, 500, message)


def test_unknown_fields_are_ignored_and_names_match_case_insensitively(lh):
    response = lh.post("/v1/volumes", {"NAME": "vol-a", "size": "1Gi", "numberOfReplicas": 3, "whatever": 1})
    assert response.status_code == 200 and response.json()["name"] == "vol-a"


def test_routing_errors_look_like_gorilla_mux(lh):
    missing = lh.get("/v1/nothing")
    assert missing.status_code == 404 and missing.text == "404 page not found\n"
    assert missing.headers["Content-Type"] == "text/plain; charset=utf-8"
    wrong_method = lh.http.put(f"{lh.url}/v1/volumes")
    assert wrong_method.status_code == 405 and wrong_method.content == b""
    lh.create_volume("vol-a")
    assert lh.action("volumes", "vol-a", "noSuchAction").status_code == 405
    assert lh.post("/v1/volumes/vol-a").status_code == 405  # POST without ?action
    redirect = lh.get("/v1/volumes/", allow_redirects=False)
    assert redirect.status_code == 301 and redirect.headers["Location"].endswith("/v1/volumes")


def test_volume_names_are_corrected_or_rejected_like_the_webhooks(lh):
    long_name = "restore-" + "x" * 40
    created = lh.create_volume(long_name)
    assert len(created["name"]) == 40 and created["name"].startswith("restore-xxx")
    assert re.fullmatch(r"restore-x+-[0-9a-f]{8}", created["name"])
    assert lh.create_volume("Upper-Case")["name"] == "upper-case"
    response = lh.post("/v1/volumes", {"name": "a", "size": "1Gi", "numberOfReplicas": 3})
    error_body(response, 500, 'admission webhook "validator.longhorn.io" denied the request: invalid name a')
    response = lh.post("/v1/volumes", {"name": "bad_name", "size": "1Gi", "numberOfReplicas": 3})
    error_body(response, 500, "invalid volume name")
    response = lh.post("/v1/volumes", {"name": "vol-x", "size": "1Gi", "accessMode": "rwop"})
    error_body(response, 500, "invalid access mode: rwop")


def test_create_applies_the_mutator_defaults(lh):
    volume = lh.post("/v1/volumes", {"name": "vol-a", "size": "1000"}).json()
    assert volume["size"] == str(2 * 1024 * 1024)  # rounded up to 2 MiB
    assert volume["numberOfReplicas"] == 3 and volume["dataLocality"] == "disabled"
    assert volume["backupCompressionMethod"] == "lz4" and volume["snapshotMaxCount"] == 250


def test_delete_passes_deleting_then_the_volume_is_gone(lh):
    lh.post("/sandbox/config", {"op_seconds": 3.0})  # steps of 0.3 s, long enough to observe
    lh.create_volume("vol-a")
    response = lh.delete("/v1/volumes/vol-a")
    assert response.status_code == 200 and response.content == b""
    assert lh.volume("vol-a")["state"] == "deleting"
    wait_for(lambda: lh.get("/v1/volumes/vol-a").status_code == 404, what="volume gone")


def test_delete_of_a_missing_volume_is_a_404_error(lh):
    error_body(lh.delete("/v1/volumes/nope"), 404, 'failed to delete volume: volumes.longhorn.io "nope" not found')


# Attach, detach, snapshots ------------------------------------------------------------
def test_snapshot_crs_work_on_detached_volumes(lh):
    lh.ready_volume("vol-a")
    created = lh.action("volumes", "vol-a", "snapshotCRCreate", {"labels": {"k": "v"}}).json()
    assert created["type"] == "snapshotCR" and re.fullmatch(r"snap-[0-9a-f]{16}", created["name"])
    assert created["volume"] == "vol-a" and created["labels"] == {"k": "v"}
    name = created["name"]
    ready = wait_for(lambda: (lambda s: s if s["readyToUse"] else None)(
        lh.action("volumes", "vol-a", "snapshotCRGet", {"name": name}).json()), what="snapshot ready")
    assert ready["creationTime"] and ready["children"] == {"volume-head": True}
    listed = lh.action("volumes", "vol-a", "snapshotCRList").json()
    assert listed["resourceType"] == "snapshotCR" and [s["name"] for s in listed["data"]] == [name]
    deleted = lh.action("volumes", "vol-a", "snapshotCRDelete", {"name": name})
    assert deleted.status_code == 200 and deleted.json()["type"] == "empty"
    error_body(lh.action("volumes", "vol-a", "snapshotCRGet", {"name": name}), 404,
               f'failed to get snapshot CR: snapshot.longhorn.io "{name}" not found')


def test_engine_snapshots_need_an_attached_volume(lh):
    lh.ready_volume("vol-a")
    error_body(lh.action("volumes", "vol-a", "snapshotCreate", {}), 500,
               "failed to create snapshot: cannot get client for volume vol-a on node sandbox-node: engine is not running")
    error_body(lh.action("volumes", "vol-a", "attach", {"hostId": "elsewhere"}), 404, 'node.longhorn.io "elsewhere" not found')
    lh.action("volumes", "vol-a", "attach", {"hostId": "sandbox-node", "attachmentID": "test"})
    attached = lh.wait_volume("vol-a", lambda v: v["state"] == "attached")
    assert attached["robustness"] == "healthy" and attached["ready"] is True
    assert attached["controllers"][0]["endpoint"] == "/dev/longhorn/vol-a"
    assert {"snapshotCreate", "snapshotList"} <= set(attached["actions"])
    snap = lh.action("volumes", "vol-a", "snapshotCreate", {"labels": {"a": "b"}}).json()
    assert snap["type"] == "snapshot" and re.fullmatch(r"[0-9a-f-]{36}", snap["name"])  # a UUID
    listed = lh.action("volumes", "vol-a", "snapshotList").json()
    assert sorted(s["name"] for s in listed["data"]) == sorted([snap["name"], "volume-head"])
    got = lh.action("volumes", "vol-a", "snapshotGet", {"name": snap["name"]}).json()
    assert got["usercreated"] is True and got["labels"] == {"a": "b"}
    lh.action("volumes", "vol-a", "detach", {"attachmentID": "test"})
    lh.wait_volume("vol-a", lambda v: v["state"] == "detached")


def test_actions_on_a_missing_volume(lh):
    error_body(lh.action("volumes", "ghost", "snapshotBackup", {"name": "s"}), 404,
               "failed to get the parameters: failed to get target node ID: failed to get volume 'ghost': "
               'volume.longhorn.io "ghost" not found')
    error_body(lh.action("volumes", "ghost", "snapshotCRCreate", {}), 404,
               'failed to create snapshot CR: failed to get volume: volume.longhorn.io "ghost" not found')
    error_body(lh.action("volumes", "ghost", "pvCreate", {}), 404, "failed to get volume")
    assert lh.action("volumes", "ghost", "snapshotCRList").json()["data"] == []  # lists by label


# Settings and backup targets -------------------------------------------------------------
def test_settings_report_version_and_backup_target(lh):
    version = lh.get("/v1/settings/current-longhorn-version").json()
    assert version["type"] == "setting" and version["value"] == "v1.7.2" and version["definition"]["readOnly"]
    target = lh.get("/v1/settings/backup-target").json()
    assert target["value"] == "s3://backupbucket@us-east-1/"
    names = [s["name"] for s in lh.get("/v1/settings").json()["data"]]
    assert "backup-target" in names and names == sorted(names)
    error_body(lh.get("/v1/settings/nope"), 500, "setting nope is not supported")
    targets = lh.get("/v1/backuptargets").json()
    assert targets["resourceType"] == "backupTarget"
    (default,) = targets["data"]
    assert default["name"] == "default" and default["pollInterval"] == "5m0s" and default["available"] is True
    assert lh.get("/v1/backuptargets/default").status_code == 405  # a 1.8 route
