"""Kubernetes' own naming rules at the client seam: every valid PVC name (a DNS-1123
subdomain: dots, up to 253 characters) is accepted by the API, the services and the console;
namespaces stay DNS labels; names Soteria derives from long ones fit their limits."""

import pytest
import time_machine

from backups.forms import RestoreForm
from policies.forms import PolicyForm
from soteria_site.core.names import dns_subdomain_error, label_value_error
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db(transaction=True)
DOTTED = "data.primary-2026"
LONG = "l" * 190 + ".part-" + "x" * 4  # 200 characters
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters


def _post(client, path, body):
    return client.post(path, body, content_type="application/json")


# Kubernetes limits the whole name to 253, not each dot-separated part to 63.
@pytest.mark.parametrize("pvc", [DOTTED, LONG, LONGEST, "a", "0.9", "a-b.c-d.e", "a" * 64 + ".b"])
def test_a_backup_of_any_valid_pvc_name_is_taken(client, cluster, frozen, pvc):
    cluster.add_pvc("ai", pvc, longhorn_volume="pvc-0b1c")
    response = _post(client, "/v1/backup", {"namespace": "ai", "pvc": pvc})
    assert response.status_code == 200, response.content
    snapshot = response.json()["backup"]
    assert len(snapshot) <= 63 and snapshot.startswith("soteria-backup-ai-")
    assert snapshot.endswith("-20260412-153000") and not dns_subdomain_error(snapshot)
    assert ("pvc-0b1c", snapshot) in cluster.snapshots
    listed = client.get("/v1/backups", {"namespace": "ai", "pvc": pvc})
    assert listed.status_code == 200 and listed.json()["pvc"] == pvc
    [event] = cluster.events
    assert event["involvedObject"]["name"] == pvc and len(event["metadata"]["name"]) <= 253


@pytest.mark.parametrize("pvc,why", [
    ("a" * 254, "longer than 253"),
    ("Data", "not a valid Kubernetes name"),
    ("data..primary", "not a valid Kubernetes name"),
    ("data.-primary", "not a valid Kubernetes name"),
    (".data", "not a valid Kubernetes name"),
    ("data.", "not a valid Kubernetes name"),
    ("data_primary", "not a valid Kubernetes name"),
    ("data/primary", "not a valid Kubernetes name"),
    ("", "may not be blank"),
])
def test_an_invalid_pvc_name_is_400_naming_the_field_before_any_call(client, cluster, pvc, why):
    cluster.add_pvc("ai", "x")
    for path, body, field in [
        ("/v1/backup", {"namespace": "ai", "pvc": pvc}, "pvc"),
        ("/v1/restores", {"namespace": "ai", "pvc": pvc, "target_pvc": "r"}, "pvc"),
        ("/v1/restores", {"namespace": "ai", "pvc": "x", "target_pvc": pvc}, "target_pvc"),
        ("/v1/policies", {"namespace": "ai", "pvc": pvc, "interval_hours": 6}, "pvc"),
    ]:
        if path == "/v1/policies" and pvc == "":
            continue  # a blank pvc is the namespace-wide policy
        response = _post(client, path, body)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["error"] == "invalid_input" and response.json()["field"] == field
        assert why in response.json()["detail"], response.json()
    assert sum(cluster.calls.values()) == 0


@pytest.mark.parametrize("namespace", ["a.b", "n" * 64, "Ai"])
def test_namespaces_stay_dns_labels(client, cluster, namespace):
    response = _post(client, "/v1/backup", {"namespace": namespace, "pvc": "x"})
    assert response.status_code == 400 and response.json()["field"] == "namespace"


def test_the_services_accept_a_dotted_pvc_too(cluster, frozen):
    from backups.services import backup as backup_service
    from backups.services import claims

    cluster.add_pvc("ai", DOTTED)
    assert claims.get_claim("ai", DOTTED).pvc.name == DOTTED
    result = backup_service.backup_pvc("ai", DOTTED, [], "tester")
    assert result.backup == "soteria-backup-ai-data.primary-2026-20260412-153000"


@pytest.mark.parametrize("target", [DOTTED, "r" + LONG[1:], LONGEST])
def test_a_restore_into_a_dotted_or_long_target_labels_it_validly(client, cluster, target):
    cluster.add_pvc("ai", LONG, longhorn_volume="pvc-0b1c", backups=[("Completed", 3, None)])
    response = _post(client, "/v1/restores", {"namespace": "ai", "pvc": LONG, "target_pvc": target})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["target_pvc"] == target and len(body["volume"]) <= 40  # Longhorn's volume name limit
    pvc = cluster.pvcs[("ai", target)]
    assert pvc.annotations["soteria.io/source"] == f"ai/{LONG}"
    restored_from = pvc.labels["soteria.io/restored-from"]
    assert not label_value_error(restored_from) and restored_from.startswith("ai.lll")
    assert [r["source"] for r in client.get("/v1/restores?namespace=ai").json()["restores"]] == [f"ai/{LONG}"]


def test_long_sources_sharing_a_start_get_distinct_restored_from_labels(client, cluster):
    first, second = "s" * 100 + "-one", "s" * 100 + "-two"
    for name in (first, second):
        cluster.add_pvc("ai", name, longhorn_volume=f"pvc-{name[-3:]}", backups=[("Completed", 3, None)])
        assert _post(client, "/v1/restores", {"namespace": "ai", "pvc": name,
                                              "target_pvc": f"r-{name[-3:]}"}).status_code == 200
    labels = {cluster.pvcs[("ai", f"r-{n}")].labels["soteria.io/restored-from"] for n in ("one", "two")}
    assert len(labels) == 2


def test_a_namespace_restore_target_must_be_a_valid_pvc_name(client, cluster):
    cluster.add_pvc("ai", DOTTED, longhorn_volume="pvc-d", backups=[("Completed", 3, None)])
    cluster.add_pvc("ai", LONGEST, longhorn_volume="pvc-l", backups=[("Completed", 3, None)])
    cluster.namespaces.add("ai-restore")
    body = _post(client, "/v1/restores/namespace", {"namespace": "ai", "target_namespace": "ai-restore",
                                                    "target_prefix": "r-", "dry_run": True}).json()
    rows = {r["pvc"]: r for r in body["results"]}
    assert rows[DOTTED]["status"] == "planned" and rows[DOTTED]["target_pvc"] == f"r-{DOTTED}"
    assert rows[LONGEST]["status"] == "skipped" and rows[LONGEST]["error"] == "invalid_target_name"
    assert "longer than 253" in rows[LONGEST]["detail"]


def test_policy_backups_of_a_long_pvc_carry_a_valid_policy_label_and_retention_finds_them(cluster, settings):
    from policies import evaluate, services

    settings.SOTERIA_SECRET_NAMESPACE, settings.SOTERIA_POLICY_SECRET_NAME = "soteria", "soteria-policies"
    cluster.add_pvc("ai", LONG, longhorn_volume="pvc-0b1c", backups=[("Completed", 30, None)])
    with time_machine.travel(NOW, tick=False):
        policy, _ = services.save_policy("ai", LONG, 6, True, 1, [], "tester")
        report = evaluate.evaluate(now=NOW, holder="replica-a")
    assert list(report.started) == [f"ai/{LONG}"]
    label = cluster.last_backup_call["labels"]["policy"]
    assert len(policy.id) > 63 and len(label) <= 63 and not label_value_error(label)


def test_console_forms_and_urls_take_dotted_and_long_pvc_names(client, cluster):
    from django.urls import reverse

    assert RestoreForm({"snapshot": "latest", "target_namespace": "ai", "target_pvc": LONGEST}).is_valid()
    assert not RestoreForm({"snapshot": "latest", "target_namespace": "ai", "target_pvc": LONGEST + "x"}).is_valid()
    assert not RestoreForm({"snapshot": "latest", "target_namespace": "ai", "target_pvc": "a..b"}).is_valid()
    assert PolicyForm({"namespace": "ai", "pvc": LONGEST, "interval_hours": "6"}).is_valid()
    cluster.add_pvc("ai", LONGEST, longhorn_volume="pvc-l", backups=[("Completed", 3, None)])
    url = reverse("console:pvc", args=("ai", LONGEST))
    assert url == f"/pvc/ai/{LONGEST}/"
    page = client.get(url)
    assert page.status_code == 200 and LONGEST in page.content.decode()
    # The suggested restore target is a valid PVC name however long the source's is.
    suggested = page.context["restore_form"].initial["target_pvc"]
    assert len(suggested) <= 253 and not dns_subdomain_error(suggested)
    assert suggested.startswith("aaa") and "-restore-" in suggested
    assert reverse("console:backup", args=("ai", DOTTED)) == f"/pvc/ai/{DOTTED}/backup"
