"""The RBAC tier: the sandbox's apiserver with --authorization-mode=RBAC, and Soteria acting as
an ordinary user granted exactly deploy/'s ClusterRole and Role, with the policy Secret deploy/ ships.

Both halves of "the smallest set": every use case works with these rules (sufficient), nothing
beyond them is allowed, and the apiserver's audit log shows every granted (group, resource, verb,
name) used by user `soteria` and allowed (each rule needed). The last test reads the audit trail
the tests above it leave, so it runs last and only after all of them passed.
"""

import base64
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from backups.clients import longhorn
from sandbox import cluster, faults, seed
from sandbox.config import SandboxConfig
from soteria_site.core import kubernetes
from soteria_site.core.errors import UpstreamError
from tests.support.http import post
from tests.support.kube import pod_template, workload_settled
from tests.support.polling import wait_for
from tests.support.ports import TEST_PORT_BASE

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
USER_BINDINGS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: soteria-user}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: soteria}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: soteria}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: soteria-user, namespace: soteria}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: soteria}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: soteria}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: soteria-user, namespace: longhorn-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: soteria-longhorn}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: soteria}]
"""
# The tests whose requests the audit check expects to find; each records itself when it passed.
USE_CASES = {"use_cases", "failed_restore_cleanup", "policy_secret", "restic", "drill"}
_passed: set[str] = set()


@pytest.fixture(scope="module")
def shipped() -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(REPO / "deploy")], capture_output=True, text=True,
                         check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _policy_secret(shipped) -> dict:
    return next(d for d in shipped if d["kind"] == "Secret" and d["metadata"]["name"] == "soteria-policies")


def _admin(cfg, *args, stdin=None) -> str:
    return subprocess.run([KUBECTL, "--kubeconfig", str(cfg.kubeconfig), *args], input=stdin, text=True,
                          check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def rbac_sandbox(shipped):
    cfg = SandboxConfig(state_dir=Path(tempfile.mkdtemp(prefix="soteria-rbac-")), port_base=TEST_PORT_BASE + 3000, rbac=True,
                        longhorn_op_seconds=0.3)
    try:
        cluster.up(cfg, seed=True)
        granted = [d for d in shipped if d["kind"] in ("ClusterRole", "Role")] + [_policy_secret(shipped)]
        _admin(cfg, "apply", "-f", "-", stdin=yaml.safe_dump_all(granted) + "---\n" + USER_BINDINGS)
        yield cfg
    finally:
        cluster.down(cfg)


@pytest.fixture
def as_soteria(rbac_sandbox, settings):
    settings.KUBECONFIG = str(rbac_sandbox.kube_dir / "kubeconfig-soteria")
    settings.SOTERIA_LONGHORN_URL = rbac_sandbox.longhorn_url
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    settings.SOTERIA_POLICY_SECRET_NAME = "soteria-policies"
    kubernetes.reset()
    longhorn.reset()
    return rbac_sandbox


def test_every_use_case_works_with_only_the_shipped_roles(client, as_soteria):
    assert client.get("/readyz").status_code == 200
    faults.reset_calls(as_soteria)
    inventory = client.get("/v1/inventory").json()
    assert {ns["name"] for ns in inventory["namespaces"]} >= {"ai", "media", "databases"}
    # Longhorn's side came from its custom resources (the Role in longhorn-system), not the manager.
    assert faults.calls(as_soteria) == {}
    assert any(p["backup_count"] for ns in inventory["namespaces"] for p in ns["pvcs"])
    assert post(client, "/v1/backup", {"namespace": "ai", "pvc": "notebooks"}).status_code == 200
    wait_for(lambda: any(b["state"] == "Completed" for b in
                         client.get("/v1/backups?namespace=ai&pvc=notebooks").json()["backups"]), what="backup")
    restore = post(client, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_namespace": "media",
                                            "target_pvc": "rbac-restore"})
    assert restore.status_code == 200, restore.content
    assert client.get("/v1/restores").status_code == 200
    assert post(client, "/v1/policies", {"namespace": "ai", "interval_hours": 12}).status_code == 201
    from policies import evaluate
    assert evaluate.evaluate(holder="rbac-test").leader is True  # creates the Lease
    assert evaluate.evaluate(holder="rbac-test").leader is True  # renews it
    # The inventory refresh takes its Lease, builds and publishes; another replica reads it.
    from backups.services import inventory_share
    from policies import services as policy_services
    refreshed = policy_services.share_inventory(holder="rbac-test")
    assert refreshed.source == "built" and inventory_share.read().rows == refreshed.cached.rows
    _passed.add("use_cases")


def test_a_failed_restore_can_clean_up_after_itself(client, as_soteria, monkeypatch):
    def refuse(namespace, body):
        raise UpstreamError("kubernetes", "refused for the test")
    monkeypatch.setattr(kubernetes, "create_pvc", refuse)
    response = post(client, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "rbac-cleanup"})
    assert response.status_code == 502 and response.json()["cleanup"]["succeeded"] is True
    # The worker's restore sweep lists the restores' Leases: nothing of this one is left to undo.
    from backups.services import restore_leases

    assert restore_leases.sweep()["interrupted"] == []
    _passed.add("failed_restore_cleanup")


def test_the_shipped_policy_secret_is_needed_and_reapplying_it_keeps_the_policies(as_soteria, shipped):
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    storage = storages["policies"]
    storage.save("rbac-probe.json", ContentFile(b"{}"))  # an update of the shipped Secret
    _admin(as_soteria, "apply", "-f", "-", stdin=yaml.safe_dump(_policy_secret(shipped)))
    assert storage.exists("rbac-probe.json"), "kubectl apply of deploy/'s Secret wiped what Soteria wrote"

    saved = kubernetes.get_secret("soteria", "soteria-policies")
    _admin(as_soteria, "-n", "soteria", "delete", "secret", "soteria-policies")
    try:
        # The restic driver's rule lets Soteria create Secrets (each Job's copy of the restic
        # Secret), so a write recreates a missing policy Secret, labelled as Soteria's own.
        storage.save("rbac-probe.json", ContentFile(b"{}"))
        recreated = kubernetes.get_secret("soteria", "soteria-policies")
        assert recreated.labels.get("app.kubernetes.io/managed-by") == "soteria"
    finally:  # put it back as it was (create: no last-applied record that names the data keys)
        _admin(as_soteria, "-n", "soteria", "delete", "secret", "soteria-policies", "--ignore-not-found")
        restored = {**_policy_secret(shipped), "data": {k: base64.b64encode(v).decode()
                                                        for k, v in saved.data.items()}}
        _admin(as_soteria, "create", "-f", "-", stdin=yaml.safe_dump(restored))
    storage.delete("rbac-probe.json")
    _passed.add("policy_secret")


def test_nothing_beyond_the_roles_is_allowed(as_soteria):
    refused = {
        "a Secret outside Soteria's namespace": lambda: kubernetes.get_secret("ai", "anything"),
        "another Secret in Soteria's namespace": lambda: kubernetes.get_secret("soteria", "soteria-auth"),
        "deleting a Secret": lambda: kubernetes.delete_secret("media", "rbac-probe"),
        "a Lease outside Soteria's namespace": lambda: kubernetes.find_lease("ai", "x"),
        "a ConfigMap outside Soteria's namespace": lambda: kubernetes.find_config_map("ai", "x"),
        "deleting a PVC": lambda: kubernetes.delete_pvc("media", "rbac-restore"),
        "Longhorn's volumes outside Longhorn's namespace": lambda: list(kubernetes.custom_object_pages(
            "probe", "longhorn.io", "v1beta2", "soteria", "volumes")),
        "Longhorn's settings": lambda: list(kubernetes.custom_object_pages(
            "probe", "longhorn.io", "v1beta2", "longhorn-system", "settings")),
    }
    for what, call in refused.items():
        with pytest.raises(UpstreamError) as info:
            call()
        assert info.value.upstream_status == 403, what


def test_a_restore_drill_works_with_only_the_shipped_roles(client, as_soteria, settings, monkeypatch):
    """A Longhorn drill, run as the worker would: its Leases, its record, the scratch claim it
    restores into and deletes, the verification Job, and the inventory's drill fields."""
    from backups.services import drills

    settings.SOTERIA_DRILL_NAMESPACE = "soteria"
    queued = []
    monkeypatch.setattr(drills, "_enqueue", queued.append)
    started = post(client, "/v1/restore-drills", {"namespace": "ai", "pvc": "llm-cache"})
    assert started.status_code == 202, started.content
    assert drills.run(queued[0].id, "ai", "llm-cache")["result"] in ("passed", "unverified")
    drill = client.get("/v1/restore-drills?namespace=ai&pvc=llm-cache").json()["drills"][0]
    assert drill["cleanup"]["succeeded"] is True, drill
    row = next(p for ns in client.get("/v1/inventory?namespace=ai").json()["namespaces"] for p in ns["pvcs"]
               if p["pvc"] == "llm-cache")
    assert row["verify_result"] == drill["result"]
    assert drills.sweep() == {"interrupted": [], "deleted": []}
    _passed.add("drill")


def test_restic_use_cases_work_with_only_the_shipped_roles(client, as_soteria, settings, monkeypatch):
    """Backups (a good one and one restic fails), the inventory, one PVC's list with the failed
    Job's log, a restore, and a restore that fails and deletes its Job."""
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_RESTIC_REPOSITORY = as_soteria.restic_repository
    settings.SOTERIA_S3_ENDPOINT = as_soteria.s3_endpoint

    def listed():
        response = client.get("/v1/backups?namespace=media&pvc=transcode-cache")
        assert response.status_code == 200, response.content
        return response.json()["backups"]

    good = post(client, "/v1/backup", {"namespace": "media", "pvc": "transcode-cache"})
    assert good.status_code == 200, good.content
    wait_for(lambda: not any(b["name"] == good.json()["backup"] for b in listed())  # the Job has ended
             and any(b["labels"].get("soteria.io/job") == good.json()["backup"] for b in listed()), 120,
             what="restic snapshot", interval=0.5)
    settings.SOTERIA_RESTIC_BACKUP_ARGS = ["--no-such-flag"]
    bad = post(client, "/v1/backup", {"namespace": "media", "pvc": "transcode-cache"})
    assert bad.status_code == 200, bad.content
    wait_for(lambda: any(b["name"] == bad.json()["backup"] and "no-such-flag" in b["error"] for b in listed()), 120,
             what="the failed Job's error", interval=0.5)
    row = next(p for ns in client.get("/v1/inventory?namespace=media").json()["namespaces"] for p in ns["pvcs"]
               if p["pvc"] == "transcode-cache")
    assert row["driver"] == "restic" and row["health_reason"] == "last backup failed"
    restore = post(client, "/v1/restores", {"namespace": "media", "pvc": "transcode-cache",
                                             "target_pvc": "rbac-restic-restore"})
    assert restore.status_code == 200, restore.content
    assert client.get("/v1/restores?namespace=media").status_code == 200

    def refuse(namespace, body):
        raise UpstreamError("kubernetes", "refused for the test")
    monkeypatch.setattr(kubernetes, "create_pvc", refuse)
    failed = post(client, "/v1/restores", {"namespace": "media", "pvc": "transcode-cache",
                                            "target_pvc": "rbac-restic-cleanup"})
    assert failed.status_code == 502 and failed.json()["cleanup"]["succeeded"] is True
    assert [d.split()[0] for d in failed.json()["cleanup"]["deleted"]] == ["job"]
    _passed.add("restic")


SWAP_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: soteria-swap-user}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: soteria-swap}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: soteria}]
"""


@pytest.fixture(scope="module")
def swap_role(rbac_sandbox, tmp_path_factory) -> dict:
    """deploy/ with its optional swap component (deploy/overlays/swap): that ClusterRole, bound
    to user soteria from here on (the tests above ran with the plain layout's rights only)."""
    import shutil

    copy = tmp_path_factory.mktemp("swap") / "deploy"
    shutil.copytree(REPO / "deploy", copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    (copy / "kustomization.yaml").write_text(yaml.safe_dump({**kustomization, "components": ["overlays/swap"]}))
    out = subprocess.run([KUBECTL, "kustomize", str(copy)], capture_output=True, text=True, check=True).stdout
    role = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "ClusterRole"
                and d["metadata"]["name"] == "soteria-swap")
    _admin(rbac_sandbox, "apply", "-f", "-", stdin=yaml.safe_dump(role) + "---\n" + SWAP_BINDING)
    return role


def test_a_swap_and_its_undo_work_with_the_swap_component_and_use_each_of_its_rules(client, as_soteria, swap_role,
                                                                                    settings):
    """A Deployment's and a StatefulSet's swap and undo (docs/swap.md) as user soteria; then
    every rule of the component was used and allowed, and it grants nothing more."""
    cfg, ns = as_soteria, "rbac-swap"
    settings.SOTERIA_SWAP_WAIT_SECONDS = 60
    for claim in ("web-data", "web-data-copy", "data-db-0", "data-db-0-copy"):
        seed.make_pvc(cfg, ns, claim)
    mount = [{"name": "data", "mountPath": "/data"}]
    workloads = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": pod_template(
             "web", [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}], mount)}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
         "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": pod_template("db", [], mount),
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                      "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn",
                      "resources": {"requests": {"storage": "1Gi"}}}}]}}]
    _admin(cfg, "apply", "-f", "-", stdin=yaml.safe_dump_all(workloads))
    for kind, name in (("Deployment", "web"), ("StatefulSet", "db")):
        wait_for(lambda k=kind, n=name: workload_settled(cfg, ns, k, n, 1), 60, what=f"{name} running")
    for pvc in ("web-data", "data-db-0"):
        swapped = post(client, "/v1/restores/swap", {"namespace": ns, "pvc": pvc, "restored_pvc": f"{pvc}-copy"})
        assert swapped.status_code == 200, swapped.content
        undone = post(client, "/v1/restores/swap/undo", {"namespace": ns, "pvc": pvc})
        assert undone.status_code == 200, undone.content
    assert kubernetes.get_pvc(ns, "data-db-0").volume_name == seed.volume_name(ns, "data-db-0")

    from backups.clients import workloads as apps_client

    refused = {
        "deleting a Deployment": lambda: kubernetes._call("probe", apps_client._apps().delete_namespaced_deployment,
                                                          "web", ns),
        "creating a Deployment": lambda: kubernetes._call("probe", apps_client._apps().create_namespaced_deployment,
                                                          ns, workloads[0]),
        "patching a PVC": lambda: kubernetes._call("probe", kubernetes._core().patch_namespaced_persistent_volume_claim,
                                                   "web-data", ns, [], _content_type="application/json-patch+json"),
        "DaemonSets": lambda: kubernetes._call("probe", apps_client._apps().list_namespaced_daemon_set, ns),
    }
    for what, call in refused.items():
        with pytest.raises(UpstreamError) as info:
            call()
        assert info.value.upstream_status == 403, what

    grants = _grants([swap_role])
    assert grants

    def unused() -> list[str]:
        events = [json.loads(line) for line in cfg.audit_log.read_text().splitlines() if line.strip()]
        return [str(g) for g in grants if not any(g.used_by(e) for e in events)]
    # The apiserver writes an event as its request completes: give the last ones a moment.
    left, deadline = unused(), time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = unused()
    assert not left, "granted by deploy/overlays/swap but never used by a swap (or not allowed): " + "; ".join(left)


@dataclass(frozen=True)
class Grant:
    role: str  # ClusterRole or Role
    role_name: str
    namespace: str | None  # a Role's namespace
    group: str
    resource: str
    verb: str
    name: str | None

    def __str__(self) -> str:
        what = f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.role} {self.role_name}: {what}{where}" + (f" named {self.name}" if self.name else "")

    def used_by(self, event: dict) -> bool:
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        annotations = event.get("annotations") or {}
        return (event["user"]["username"] == "soteria" and event["verb"] == self.verb
                and annotations.get("authorization.k8s.io/decision") == "allow"
                # allowed by this role's binding, not by another rule that happens to cover it
                and f'of {self.role} "{self.role_name}"' in annotations.get("authorization.k8s.io/reason", "")
                and ref.get("apiGroup", "") == self.group and resource == self.resource
                and (self.name is None or ref.get("name") == self.name)
                and (self.role == "ClusterRole" or ref.get("namespace") == self.namespace))


def _grants(shipped) -> list[Grant]:
    return [Grant(role["kind"], role["metadata"]["name"], role["metadata"].get("namespace"), group, resource, verb,
                  name)
            for role in shipped if role["kind"] in ("ClusterRole", "Role")
            for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"] for name in rule.get("resourceNames") or [None]]


def test_every_granted_rule_was_used_and_allowed(as_soteria, shipped):
    if USE_CASES - _passed:
        pytest.skip(f"reads the audit trail of the tests above; these did not pass: {sorted(USE_CASES - _passed)}")
    grants = _grants(shipped)
    assert grants

    def unused() -> list[Grant]:
        events = [json.loads(line) for line in as_soteria.audit_log.read_text().splitlines() if line.strip()]
        return [g for g in grants if not any(g.used_by(e) for e in events)]

    # The apiserver writes an event as its request completes: give the last ones a moment.
    left, deadline = unused(), time.monotonic() + 3
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = unused()
    assert not left, "granted by deploy/ but never used by Soteria (or not allowed): " + "; ".join(map(str, left))
