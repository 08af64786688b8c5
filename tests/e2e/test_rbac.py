"""The RBAC tier: the sandbox's apiserver with --authorization-mode=RBAC, and Soteria acting as
an ordinary user granted exactly deploy/rbac.yaml's roles. Every use-case works; nothing more is allowed."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from backups.clients import kubernetes, longhorn
from backups.errors import UpstreamError
from sandbox import cluster
from sandbox.config import SandboxConfig

from .conftest import post, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]
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
"""


@pytest.fixture(scope="module")
def rbac_sandbox():
    cfg = SandboxConfig(state_dir=Path(tempfile.mkdtemp(prefix="soteria-rbac-")), port_base=30440, rbac=True,
                        longhorn_op_seconds=0.3)
    try:
        cluster.up(cfg, seed=True)
        kubectl = [str(Path(sys.executable).with_name("kubectl")), "--kubeconfig", str(cfg.kubeconfig)]
        manifests = subprocess.run(kubectl[:1] + ["kustomize", str(REPO / "deploy")], capture_output=True, text=True,
                                   check=True).stdout
        roles = [d for d in yaml.safe_load_all(manifests) if d and d["kind"] in ("ClusterRole", "Role")]
        subprocess.run(kubectl + ["apply", "-f", "-"], input=yaml.safe_dump_all(roles) + "---\n" + USER_BINDINGS,
                       text=True, check=True, capture_output=True)
        yield cfg
    finally:
        cluster.down(cfg)


@pytest.fixture
def as_soteria(rbac_sandbox, settings):
    settings.KUBECONFIG = str(rbac_sandbox.kube_dir / "kubeconfig-soteria")
    settings.SOTERIA_LONGHORN_URL = rbac_sandbox.longhorn_url
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    kubernetes.reset()
    longhorn.reset()
    return rbac_sandbox


def test_every_use_case_works_with_only_the_shipped_roles(client, as_soteria):
    assert client.get("/readyz").status_code == 200
    inventory = client.get("/v1/inventory").json()
    assert {ns["name"] for ns in inventory["namespaces"]} >= {"ai", "media", "databases"}
    assert post(client, "/v1/backup", {"namespace": "ai", "pvc": "notebooks"}).status_code == 200
    wait_for(lambda: any(b["state"] == "Completed" for b in
                         client.get("/v1/backups?namespace=ai&pvc=notebooks").json()["backups"]), what="backup")
    restore = post(client, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_namespace": "media",
                                            "target_pvc": "rbac-restore"})
    assert restore.status_code == 200, restore.content
    assert client.get("/v1/restores").status_code == 200
    assert post(client, "/v1/policies", {"namespace": "ai", "interval_hours": 12}).status_code == 201
    from policies import evaluate
    assert evaluate.evaluate(holder="rbac-test").leader is True


def test_a_failed_restore_can_clean_up_after_itself(client, as_soteria, monkeypatch):
    def refuse(namespace, body):
        raise UpstreamError("kubernetes", "refused for the test")
    monkeypatch.setattr(kubernetes, "create_pvc", refuse)
    response = post(client, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "rbac-cleanup"})
    assert response.status_code == 502 and response.json()["cleanup"]["succeeded"] is True


def test_nothing_beyond_the_roles_is_allowed(as_soteria):
    with pytest.raises(UpstreamError) as info:
        kubernetes.get_secret("ai", "anything")  # secrets are readable only in Soteria's namespace
    assert info.value.upstream_status == 403
    with pytest.raises(UpstreamError) as info:
        kubernetes.find_lease("ai", "x")  # Leases only in Soteria's namespace
    assert info.value.upstream_status == 403
