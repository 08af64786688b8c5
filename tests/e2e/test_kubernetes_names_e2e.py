"""Issue 13 end to end: PVCs named as Kubernetes allows (dots, 200 characters) on the real
apiserver and the Longhorn emulator: inventory, backup, restore byte for byte into a dotted or
long target, and policies (by id and by the contract's DELETE /v1/policies/?namespace=&pvc=)."""

from urllib.parse import urlencode

import pytest

from sandbox import faults, seed
from soteria_site.core.names import dns_subdomain_error, label_value_error
from tests.support.files import same_tree
from tests.support.http import post
from tests.support.kube import kube
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
NAMESPACE = "e2e-names"
DOTTED = "data.primary-2026"
LONG = "long-" + "x" * 180 + ".claim-0200"  # 200 characters, a valid DNS subdomain
FILES = {"README.txt": "names\n", "rows.csv": "".join(f"{i},{i * 7}\n" for i in range(300)),
         "deep/a/b.bin": "\x00\x01\x02" * 100}


def _query(**params) -> str:
    return urlencode(params)


def _row(client, pvc):
    body = client.get(f"/v1/inventory?{_query(namespace=NAMESPACE)}").json()
    return next((p for ns in body["namespaces"] for p in ns["pvcs"] if p["pvc"] == pvc), None)


def _completed(client, pvc):
    response = client.get(f"/v1/backups?{_query(namespace=NAMESPACE, pvc=pvc)}")
    assert response.status_code == 200, response.content
    return [b for b in response.json()["backups"] if b["state"] == "Completed"]


@pytest.mark.parametrize("pvc,target", [(DOTTED, f"restored.{DOTTED}"), (LONG, "r" * 12 + "." + LONG[:-13])])
def test_a_pvc_with_a_kubernetes_name_is_inventoried_backed_up_and_restored(client, live, pvc, target):
    assert len(pvc) <= 253 and not dns_subdomain_error(pvc) and not dns_subdomain_error(target)
    seed.make_pvc(live, NAMESPACE, pvc, files=FILES)
    faults.wait_mirrored(live)
    row = wait_for(lambda: _row(client, pvc), what="the PVC in the inventory")
    assert row["driver"] == "longhorn" and row["health_reason"] == "never backed up"

    response = post(client, "/v1/backup", {"namespace": NAMESPACE, "pvc": pvc})
    assert response.status_code == 200, response.content
    snapshot = response.json()["backup"]
    assert len(snapshot) <= 63 and snapshot.startswith(f"soteria-backup-{NAMESPACE}-")
    [backup] = wait_for(lambda: _completed(client, pvc), what="the backup to complete")
    assert backup["snapshot"] == snapshot
    row = wait_for(lambda: (r := _row(client, pvc)) and r["backup_count"] == 1 and r, what="inventory counts it")
    assert row["healthy"] is True and row["health_reason"] == "fresh"

    response = post(client, "/v1/restores", {"namespace": NAMESPACE, "pvc": pvc, "target_pvc": target})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["backup"] == backup["name"] and body["target_pvc"] == target

    def done():
        rows = client.get(f"/v1/restores?{_query(namespace=NAMESPACE)}").json()["restores"]
        return next((r for r in rows if r["pvc"] == target and r["state"] == "done"), None)
    restored = wait_for(done, what="the restore")
    assert restored["source"] == f"{NAMESPACE}/{pvc}"
    source_dir = live.longhorn_volumes_dir / seed.volume_name(NAMESPACE, pvc)
    assert same_tree(source_dir, live.longhorn_volumes_dir / body["volume"])
    claim = kube(live).read_namespaced_persistent_volume_claim(target, NAMESPACE)
    label = claim.metadata.labels["soteria.io/restored-from"]
    assert not label_value_error(label) and (label == f"{NAMESPACE}.{pvc}" or len(f"{NAMESPACE}.{pvc}") > 63)
    wait_for(lambda: kube(live).read_namespaced_persistent_volume_claim(target, NAMESPACE).status.phase == "Bound",
             what="the restored claim bound")
    # The apiserver took Soteria's Events on both claims, whatever their names' length.
    reasons = {(e.involved_object.name, e.reason) for e in kube(live).list_namespaced_event(NAMESPACE).items}
    assert {(pvc, "BackupStarted"), (pvc, "RestoreStarted"), (target, "RestoredFromBackup")} <= reasons


def _policy_ids(client) -> list[str]:
    return [p["id"] for p in client.get(f"/v1/policies?{_query(namespace=NAMESPACE)}").json()["policies"]
            if p["namespace"] == NAMESPACE]


def test_policies_on_dotted_and_long_pvcs_are_listed_and_deleted_by_id_and_by_query(client, live, policy_secret):
    for pvc in ("", DOTTED, LONG):
        response = post(client, "/v1/policies", {"namespace": NAMESPACE, "pvc": pvc, "interval_hours": 6})
        assert response.status_code == 201, response.content
        assert response.json()["id"] == (f"{NAMESPACE}.{pvc}" if pvc else NAMESPACE)
    assert _policy_ids(client) == sorted([NAMESPACE, f"{NAMESPACE}.{DOTTED}", f"{NAMESPACE}.{LONG}"])

    assert client.delete(f"/v1/policies/{NAMESPACE}.{DOTTED}").status_code == 200
    assert _policy_ids(client) == sorted([NAMESPACE, f"{NAMESPACE}.{LONG}"])
    response = client.delete(f"/v1/policies/?{_query(namespace=NAMESPACE, pvc=LONG)}")
    assert response.status_code == 200 and response.json()["id"] == f"{NAMESPACE}.{LONG}"
    assert _policy_ids(client) == [NAMESPACE]

    assert post(client, "/v1/policies", {"namespace": NAMESPACE, "pvc": DOTTED, "interval_hours": 6}).status_code == 201
    response = client.delete(f"/v1/policies/?{_query(namespace=NAMESPACE, pvc=DOTTED)}")
    assert response.status_code == 200 and response.json()["id"] == f"{NAMESPACE}.{DOTTED}"
    assert client.delete(f"/v1/policies/?{_query(namespace=NAMESPACE, pvc='')}").status_code == 200
    assert _policy_ids(client) == []
