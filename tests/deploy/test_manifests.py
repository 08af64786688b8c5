"""deploy/: builds with a modern kustomize, validates strictly, and runs what the code expects,
with and without the oauth2-proxy component (deploy/overlays/oauth2-proxy)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERLAY = "overlays/oauth2-proxy"


class Built(list):
    """The documents `kubectl kustomize` rendered, and the file holding its output."""

    def __init__(self, docs: list[dict], path: Path):
        super().__init__(docs)
        self.path = path


def _build(directory: Path, tmp: Path) -> Built:
    out = subprocess.run([str(BIN / "kubectl"), "kustomize", str(directory)], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    (tmp / "all.yaml").write_text(out)
    return Built([doc for doc in yaml.safe_load_all(out) if doc], tmp / "all.yaml")


def _validate(path: Path) -> None:
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "-k", "1.33.0", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """deploy/ as shipped."""
    return _build(ROOT / "deploy", tmp_path_factory.mktemp("deploy"))


@pytest.fixture(scope="module")
def overlaid(tmp_path_factory) -> Built:
    """deploy/ with the oauth2-proxy component enabled, as docs/deployment.md says to."""
    copy = tmp_path_factory.mktemp("overlay") / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    assert "components" not in kustomization, "the component is optional: off unless enabled"
    kustomization["components"] = [OVERLAY]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return _build(copy, copy.parent)


def _one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def _pod(docs: list[dict]) -> dict:
    return _one(docs, "Deployment")["spec"]["template"]["spec"]


def _container(docs: list[dict], name: str) -> dict:
    return next(c for c in _pod(docs)["containers"] if c["name"] == name)


def _environment(docs: list[dict], container: dict) -> dict[str, str]:
    """What the container sees: its ConfigMap's data, overridden by its own env values."""
    config = _one(docs, "ConfigMap")
    env = {}
    for source in container.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == config["metadata"]["name"]:
            env.update(config["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def _namespaces_admitted(policy: dict) -> list[tuple[str, list[int]]]:
    rules = []
    for rule in policy["spec"]["ingress"]:
        assert len(rule["from"]) == 1 and set(rule["from"][0]) == {"namespaceSelector"}
        labels = rule["from"][0]["namespaceSelector"]["matchLabels"]
        assert set(labels) == {"kubernetes.io/metadata.name"}
        rules.append((labels["kubernetes.io/metadata.name"], sorted(p["port"] for p in rule["ports"])))
    return rules


# --- deploy/ as shipped --------------------------------------------------------------
def test_kustomize_output_validates_strictly(built):
    _validate(built.path)


def test_secret_example_validates_and_holds_no_real_credentials():
    _validate(ROOT / "deploy" / "secret-example.yaml")
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "secret-example.yaml").read_text()))
    restic = next(d for d in docs if d["metadata"]["name"] == "soteria-restic")
    assert set(restic["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"}
    assert all("<" in v for d in docs for v in d["stringData"].values())


def test_pod_runs_web_and_worker_sharing_data_and_pids(built):
    pod = _pod(built)
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"web", "worker"}
    assert containers["web"]["command"][:3] == ["gunicorn", "-c", "soteria_site/gunicorn.conf.py"]
    assert containers["worker"]["command"] == ["python", "manage.py", "qcluster"]
    assert pod["shareProcessNamespace"] is True
    assert containers["web"]["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert containers["web"]["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for container in [*pod["containers"], *pod["initContainers"]]:
        assert {"name": "data", "mountPath": "/app/data"} in container["volumeMounts"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_configmap_sets_only_variables_soteria_reads(built, overlaid):
    settings_source = (ROOT / "soteria_site" / "settings.py").read_text()
    known = set(re.findall(r'"(SOTERIA_[A-Z_]+)"', settings_source))
    for docs in (built, overlaid):
        assert set(_one(docs, "ConfigMap")["data"]) - known == set()


def test_configmap_pins_the_header_family_and_ships_a_fail_closed_proxy_range(built):
    import ipaddress

    data = _one(built, "ConfigMap")["data"]
    assert data["SOTERIA_AUTH_HEADERS"] == "auto"
    # A placeholder, but a valid one (Soteria refuses to start on a bad CIDR) that no pod has.
    networks = [ipaddress.ip_network(n.strip()) for n in data["SOTERIA_TRUSTED_PROXIES"].split(",")]
    assert networks and all(n.subnet_of(ipaddress.ip_network("192.0.2.0/24")) for n in networks)


def test_service_is_annotated_for_prometheus(built):
    service = _one(built, "Service")
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [("http", "http")]


def test_network_policy_admits_the_web_port_from_ingress_and_monitoring_namespaces_only(built):
    policy = _one(built, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == \
        _one(built, "Deployment")["spec"]["selector"]["matchLabels"]
    assert _namespaces_admitted(policy) == [("ingress-nginx", [8080]), ("monitoring", [8080])]


def test_the_namespaces_come_from_the_patch_in_deploy_kustomization():
    """The manifest itself holds placeholders that match no namespace, so losing the patch fails closed."""
    raw = yaml.safe_load((ROOT / "deploy" / "networkpolicy.yaml").read_text())
    assert [ns for ns, _ in _namespaces_admitted(raw)] == ["INGRESS_NAMESPACE", "MONITORING_NAMESPACE"]
    kustomization = (ROOT / "deploy" / "kustomization.yaml").read_text()
    assert "value: ingress-nginx" in kustomization and "value: monitoring" in kustomization


def test_the_policy_secret_is_shipped_without_data_and_labelled_like_soteria_labels_it(built):
    from policies.store import OWNER_LABELS

    config = _one(built, "ConfigMap")["data"]
    secret = next(d for d in built if d["kind"] == "Secret")
    assert secret["metadata"]["name"] == config["SOTERIA_POLICY_SECRET_NAME"]
    assert not {"data", "stringData"} & set(secret), "kubectl apply would overwrite what Soteria wrote"
    assert OWNER_LABELS.items() <= secret["metadata"]["labels"].items()


def test_rbac_reads_secrets_only_by_name_and_grants_restic_jobs_only_what_they_need(built, overlaid):
    """Secrets: read and written only by name; the one unnamed rule is `create` (each restic Job's
    copy, deleted by the garbage collector with its Job). Jobs, pods and logs: only the verbs the
    restic driver uses (docs/restic.md)."""
    allowed = {"jobs": {"create", "list", "delete"}, "pods": {"list"}, "pods/log": {"get"}}
    for docs in (built, overlaid):
        rules = [rule for d in docs if d["kind"] in ("Role", "ClusterRole") for rule in d["rules"]]
        assert rules
        for rule in rules:
            if ("secrets" in rule["resources"] or "*" in rule["resources"]) and not rule.get("resourceNames"):
                assert rule["resources"] == ["secrets"] and rule["verbs"] == ["create"], rule
            for resource in set(rule["resources"]) & set(allowed):
                assert set(rule["verbs"]) <= allowed[resource], rule
            assert "*" not in rule["resources"] and "*" not in rule["verbs"] and "*" not in rule["apiGroups"], rule
        cluster_rules = [r for d in docs if d["kind"] == "ClusterRole" for r in d["rules"]]
        assert [r["verbs"] for r in cluster_rules if "secrets" in r["resources"]] == [["create"]]


def test_rbac_names_the_secrets_soteria_uses_and_grants_the_rest_only_in_its_namespace(built):
    config = _one(built, "ConfigMap")["data"]
    [role] = [d for d in built if d["kind"] == "Role" and d["metadata"]["namespace"] == "soteria"]
    named = {(r["resources"][0], n): sorted(r["verbs"]) for r in role["rules"] for n in r.get("resourceNames", [])}
    assert named == {("secrets", config["SOTERIA_POLICY_SECRET_NAME"]): ["get", "update"],
                     ("secrets", config["SOTERIA_RESTIC_SECRET_NAME"]): ["get"]}
    # Leases (the evaluator's, drills' and restores' named after PVCs; restores' listed by the
    # restore sweep), drill records, scratch claims.
    unnamed = {(r["apiGroups"][0], r["resources"][0]): sorted(r["verbs"]) for r in role["rules"]
               if not r.get("resourceNames")}
    assert unnamed == {("coordination.k8s.io", "leases"): ["create", "delete", "get", "list", "update"],
                       ("", "configmaps"): ["create", "get", "list", "update"],
                       ("", "persistentvolumeclaims"): ["delete"]}
    cluster_pvc_verbs = {v for d in built if d["kind"] == "ClusterRole" for r in d["rules"]
                         if "persistentvolumeclaims" in r["resources"] for v in r["verbs"]}
    assert "delete" not in cluster_pvc_verbs  # only scratch claims, only in Soteria's namespace


def test_everything_is_in_soterias_namespace_but_the_role_that_reads_longhorns_resources(built, overlaid):
    for docs in (built, overlaid):
        placed = {(d["kind"], d["metadata"]["name"]): d["metadata"].get("namespace") for d in docs
                  if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")}
        assert placed.pop(("Role", "soteria-longhorn")) == "longhorn-system"
        assert placed.pop(("RoleBinding", "soteria-longhorn")) == "longhorn-system"
        assert set(placed.values()) == {"soteria"}, placed
        subjects = [s for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding") for s in d["subjects"]]
        assert subjects and all(s == {"kind": "ServiceAccount", "name": "soteria", "namespace": "soteria"}
                                for s in subjects)


def test_longhorns_resources_are_only_listed_and_only_in_longhorns_namespace(built):
    from django.conf import settings

    role = next(d for d in built if d["kind"] == "Role" and d["metadata"]["name"] == "soteria-longhorn")
    assert role["metadata"]["namespace"] == settings.SOTERIA_LONGHORN_NAMESPACE
    assert _one(built, "ConfigMap")["data"]["SOTERIA_LONGHORN_NAMESPACE"] == role["metadata"]["namespace"]
    assert role["rules"] == [{"apiGroups": ["longhorn.io"], "resources": ["volumes", "backups", "backupvolumes"],
                              "verbs": ["list"]}]
    cluster_rules = [r for d in built if d["kind"] == "ClusterRole" for r in d["rules"]]
    assert not any("longhorn.io" in r["apiGroups"] for r in cluster_rules)


# --- with the swap component ---------------------------------------------------------
@pytest.fixture(scope="module")
def with_swap(tmp_path_factory) -> Built:
    """deploy/ with the optional swap component enabled (docs/swap.md)."""
    copy = tmp_path_factory.mktemp("swap") / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    kustomization["components"] = ["overlays/swap"]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return _build(copy, copy.parent)


def test_the_swap_rights_are_off_by_default_and_exactly_what_a_swap_uses(built, with_swap):
    _validate(with_swap.path)
    assert not [d for d in built if d["metadata"]["name"] == "soteria-swap"]
    role = next(d for d in with_swap if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "soteria-swap")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {*(("apps", r, v) for r in ("deployments", "statefulsets") for v in ("get", "list", "patch")),
                       ("apps", "deployments/scale", "patch"), ("apps", "statefulsets/scale", "patch"),
                       ("autoscaling", "horizontalpodautoscalers", "list"), ("", "persistentvolumes", "patch"),
                       ("", "persistentvolumeclaims", "delete")}
    binding = next(d for d in with_swap if d["kind"] == "ClusterRoleBinding" and d["metadata"]["name"] == "soteria-swap")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "soteria", "namespace": "soteria"}]


# --- with the oauth2-proxy component ---------------------------------------------------
def test_overlay_output_validates_strictly(overlaid):
    _validate(overlaid.path)


def test_overlay_web_container_listens_on_loopback_and_trusts_only_loopback(overlaid):
    env = _environment(overlaid, _container(overlaid, "web"))
    assert env["SOTERIA_LISTEN_ADDR"] == "127.0.0.1:8080"
    assert env["SOTERIA_TRUSTED_PROXIES"] == "127.0.0.1/32"
    assert env["SOTERIA_AUTH_HEADERS"] == "x-forwarded"
    assert env["SOTERIA_METRICS_LISTEN_ADDR"] == ":9090"
    assert [p["containerPort"] for p in _container(overlaid, "web")["ports"]] == [9090]


def test_overlay_probes_use_the_metrics_port(overlaid):
    web = _container(overlaid, "web")
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"metrics": 9090}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_overlay_service_exposes_oauth2_proxy_as_http_and_the_metrics_port(overlaid):
    service = _one(overlaid, "Service")
    proxy_ports = {p["name"]: p["containerPort"] for p in _container(overlaid, "oauth2-proxy")["ports"]}
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"http": "oauth2-proxy",
                                                                              "metrics": "metrics"}
    assert proxy_ports == {"oauth2-proxy": 4180}
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9090" and annotations["prometheus.io/path"] == "/metrics"


def test_overlay_network_policy_admits_the_proxy_from_ingress_and_metrics_from_monitoring(overlaid):
    assert _namespaces_admitted(_one(overlaid, "NetworkPolicy")) == [("ingress-nginx", [4180]),
                                                                     ("monitoring", [9090])]


def test_overlay_oauth2_proxy_is_pinned_and_passes_identity_to_loopback_only(overlaid):
    proxy = _container(overlaid, "oauth2-proxy")
    image, _, tag = proxy["image"].rpartition(":")
    assert image == "quay.io/oauth2-proxy/oauth2-proxy" and re.fullmatch(r"v7\.\d+\.\d+", tag)
    args = dict(a.removeprefix("--").partition("=")[::2] for a in proxy["args"])
    assert args["upstream"] == "http://127.0.0.1:8080/"
    assert args["pass-user-headers"] == "true" and args["skip-auth-strip-headers"] == "true"
    assert args["http-address"].endswith(":4180")
    assert not {"skip-auth-route", "skip-auth-regex", "trusted-ip", "skip-jwt-bearer-tokens"} & set(args)
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in proxy["env"]}
    assert set(secrets) == {"OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"}
    assert set(secrets.values()) == {"soteria-oauth2-proxy"}
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True


def test_overlay_secret_example_validates_and_holds_no_real_credentials(overlaid):
    path = ROOT / "deploy" / OVERLAY / "secret-example.yaml"
    _validate(path)
    secret = yaml.safe_load(path.read_text())
    assert secret["metadata"]["name"] == "soteria-oauth2-proxy"
    assert set(secret["stringData"]) == {"client-id", "client-secret", "cookie-secret"}
    assert all(v.startswith("<") and v.endswith(">") for v in secret["stringData"].values())
    assert not any(d["kind"] == "Secret" and d["metadata"]["name"] == "soteria-oauth2-proxy" for d in overlaid)
