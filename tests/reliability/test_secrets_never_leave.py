"""Secrets never leave: distinctive credentials are seeded, both drivers are driven end to end
through everything an operator or automation sees, and every output is searched for them.

Seeded (fresh each run, so nothing else can carry them): the bearer token, the Django
SECRET_KEY, and the restic credentials Secret (RESTIC_PASSWORD, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY) of a restic repository of this test's own. Soteria runs under gunicorn
with its worker (manage.py qcluster), SOTERIA_BACKUP_DRIVER=auto, in a namespace of this test's
own holding a Longhorn PVC and two restic PVCs.

Driven: probes, whoami, the schema, inventory, backups and restores on both drivers (and a
failed backup on each, a failed restore, unknown snapshots, a wrong token), policies, a drill's
plan, the worker's inventory refresh and policy evaluation, every console page and the admin.

Searched, for each value and its base64 forms: every HTTP answer (status, headers, body),
gunicorn's and the worker's stdout and stderr, the Kubernetes Events, the Jobs and Pods Soteria
made (their specs and statuses) and the Pods' logs, the ConfigMaps and the policy Secret it
wrote, /metrics, and Soteria's SQLite database (audit rows, task results). The per-Job copies
of the restic Secret are where the credentials belong; the Jobs must read them through
secretKeyRef, never as literal values.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import urllib.parse

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sandbox import faults, seed
from tests.support.cast import ADMIN, PROXY, SECURE_ENV
from tests.support.http import call
from tests.support.polling import wait_for
from tests.support.restic import local_pvc, provision
from tests.support.soteria import ROOT, Worker, start_soteria, stop_soteria

JOB_SECONDS = 180
NAMESPACE = f"secrets-{secrets.token_hex(3)}"
RESTIC_SECRET = "soteria-restic-secrets-test"
POLICY_SECRET = "soteria-policies-secrets-test"
EXCLUDES = ".soteria-excludes"  # the restic PVC that lacks this file fails its backup


def _distinctive(kind: str, length: int = 40) -> str:
    return f"{kind}{secrets.token_hex(length)}"[:length + len(kind)]


SEEDED = {
    "bearer token": _distinctive("BearerTok"),
    "Django SECRET_KEY": _distinctive("DjangoKey", 60),
    "restic password": _distinctive("ResticPw"),
    "S3 access key id": _distinctive("S3KeyId", 20),
    "S3 secret key": _distinctive("S3Secret"),
}


def _forms(value: str) -> set[str]:
    raw = value.encode()
    forms = {value, urllib.parse.quote(value)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode().rstrip("="))
    return forms


class Outputs:
    """Everything Soteria let out, by where it came from."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        self.items.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def leaks(self) -> list[str]:
        found = []
        for what, value in SEEDED.items():
            for form in _forms(value):
                found += [f"the {what} ({'as sent' if form == value else 'encoded'}) in {where}"
                          for where, text in self.items if form in text]
        return found


@pytest.fixture(scope="module")
def outputs():
    return Outputs()


@pytest.fixture(scope="module")
def apis(sandbox):
    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    return k8s.CoreV1Api(api), k8s.BatchV1Api(api), api


@pytest.fixture(scope="module")
def world(sandbox, apis, tmp_path_factory):
    """The namespace with its PVCs, the restic Secret, Soteria and its worker."""
    core, _, _ = apis
    seed.ensure_basics(sandbox, [NAMESPACE])
    files = local_pvc(sandbox, NAMESPACE, "files")
    (files / EXCLUDES).write_text("")
    local_pvc(sandbox, NAMESPACE, "broken")
    pv, claim = seed.pv_and_pvc(sandbox, NAMESPACE, "db", "1Gi", "longhorn")
    core.create_persistent_volume(pv)
    core.create_namespaced_persistent_volume_claim(NAMESPACE, claim)
    volume = pv["metadata"]["name"]
    faults.longhorn_seed(sandbox, {"volumes": [{
        "name": volume, "size": "1Gi", "state": "attached", "files": {"README.txt": "db\n"},
        "kubernetesStatus": {"pvName": volume, "pvStatus": "Bound", "namespace": NAMESPACE, "pvcName": "db"}}]})
    seed.wait_bound(sandbox, [(NAMESPACE, "db")])
    faults.wait_mirrored(sandbox, timeout=120)
    core.create_namespaced_secret("soteria", {"metadata": {"name": RESTIC_SECRET}, "stringData": {
        "RESTIC_PASSWORD": SEEDED["restic password"], "AWS_ACCESS_KEY_ID": SEEDED["S3 access key id"],
        "AWS_SECRET_ACCESS_KEY": SEEDED["S3 secret key"]}})
    env = {**SECURE_ENV, "SOTERIA_AUTH_BEARER_TOKENS": f"ci:{SEEDED['bearer token']}",
           "SOTERIA_SECRET_KEY": SEEDED["Django SECRET_KEY"], "SOTERIA_BACKUP_DRIVER": "auto",
           "SOTERIA_RESTIC_SECRET_NAME": RESTIC_SECRET, "SOTERIA_POLICY_SECRET_NAME": POLICY_SECRET,
           "SOTERIA_RESTIC_REPOSITORY": f"s3:{sandbox.s3_endpoint}/soteria-restic/{NAMESPACE}",
           "SOTERIA_RESTIC_BACKUP_ARGS": f"--exclude-file=/data/{EXCLUDES}", "SOTERIA_JOB_TTL_SECONDS": "3600",
           "SOTERIA_LOG_LEVEL": "debug"}
    server = start_soteria(sandbox, tmp_path_factory.mktemp("secrets-data"), **env)
    worker = Worker(server)
    yield server, worker, volume
    worker.stop()
    stop_soteria(server)
    _clean_up(sandbox, core, volume)


def _clean_up(sandbox, core, volume) -> None:
    """Whatever this test made in the shared sandbox, best effort (the namespace takes the rest)."""
    from kubernetes.client.exceptions import ApiException

    restored = [pv.metadata.name for pv in core.list_persistent_volume().items
                if pv.spec.claim_ref and pv.spec.claim_ref.namespace == NAMESPACE]
    for call_ in ((core.delete_namespace, NAMESPACE), (core.delete_namespaced_secret, RESTIC_SECRET, "soteria"),
                  (core.delete_namespaced_secret, POLICY_SECRET, "soteria"),
                  *((core.delete_persistent_volume, name) for name in restored)):
        try:
            call_[0](*call_[1:])
        except ApiException:
            pass
    import urllib.request
    for name in {volume, *restored}:
        try:
            urllib.request.urlopen(urllib.request.Request(f"{sandbox.longhorn_url}/v1/volumes/{name}",
                                                          method="DELETE"), timeout=10).read()
        except OSError:
            pass


class Session:
    """Requests as automation (the token) or as the admin's browser behind the proxy; every
    answer is kept."""

    def __init__(self, server, outputs: Outputs):
        self.url, self.outputs = server.url, outputs
        self.token = [("Authorization", f"Bearer {SEEDED['bearer token']}")]

    def _keep(self, method, path, reply):
        head = "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
        self.outputs.add(f"the answer to {method} {path}", f"{reply.status}\n{head}\n\n{reply.text}")
        return reply

    def api(self, method, path, body=None, expect=200, headers=None):
        reply = call(self.url, method, path, headers=headers if headers is not None else self.token, json=body)
        assert reply.status == expect, (method, path, reply.status, reply.text[:1000])
        return self._keep(method, path, reply)

    def page(self, path, expect=200):
        reply = call(self.url, "GET", path, headers=list(ADMIN), peer=PROXY)
        assert reply.status == expect, (path, reply.status, reply.text[:500])
        return self._keep("GET", path, reply)


def _backups(session, pvc):
    return session.api("GET", f"/v1/backups?namespace={NAMESPACE}&pvc={pvc}").json()["backups"]


def _backed_up(session, pvc, expect_state="Completed"):
    name = session.api("POST", "/v1/backup", {"namespace": NAMESPACE, "pvc": pvc, "tags": ["run=secrets"]}
                       ).json()["backup"]

    def ended():
        return next((b for b in _backups(session, pvc) if expect_state == b["state"]
                     and name in (b["name"], b["snapshot"], b["labels"].get("soteria.io/job"))), None)
    return wait_for(ended, JOB_SECONDS, f"backup {name} of {pvc} to be {expect_state}", interval=0.5)


def _restored(session, sandbox, pvc, target):
    session.api("POST", "/v1/restores", {"namespace": NAMESPACE, "pvc": pvc, "target_pvc": target})
    if pvc != "db":
        provision(sandbox, NAMESPACE, target)

    def done():
        rows = session.api("GET", f"/v1/restores?namespace={NAMESPACE}").json()["restores"]
        row = next((r for r in rows if r["pvc"] == target), None)
        assert row is None or row["state"] != "failed", row
        return row if row and row["state"] == "done" else None
    return wait_for(done, JOB_SECONDS, f"restore into {target}", interval=0.5)


def _drive(session, sandbox, worker):
    """Everything a user and the worker do, on both drivers, failures included."""
    for path in ("/healthz", "/readyz", "/metrics"):
        session.api("GET", path, headers=[])
    for path in ("/v1/whoami", "/v1/openapi", f"/v1/inventory?namespace={NAMESPACE}", "/v1/inventory"):
        session.api("GET", path)
    session.api("GET", "/v1/whoami", headers=[("Authorization", "Bearer " + SEEDED["bearer token"][:-1])],
                expect=401)
    session.api("POST", "/v1/backup", {"namespace": NAMESPACE, "pvc": "db"}, headers=session.token * 2, expect=400)
    session.api("GET", "/v1/whoami", headers=[("Authorization", "Basic " + SEEDED["bearer token"])], expect=401)

    _backed_up(session, "db")  # Longhorn
    _backed_up(session, "files")  # restic, a Job
    failed = _backed_up(session, "broken", expect_state="Error")  # restic: the Job fails
    assert EXCLUDES in failed["error"], failed
    faults.inject(sandbox, "snapshotBackup", message="backup target unreachable", target="")
    session.api("POST", "/v1/backup", {"namespace": NAMESPACE, "pvc": "db"}, expect=502)
    faults.clear(sandbox)

    _restored(session, sandbox, "db", "db-copy")
    _restored(session, sandbox, "files", "files-copy")
    faults.inject(sandbox, "volume.create", message="no space left for replicas")
    session.api("POST", "/v1/restores", {"namespace": NAMESPACE, "pvc": "db", "target_pvc": "db-fails"}, expect=502)
    faults.clear(sandbox)
    session.api("POST", "/v1/restores", {"namespace": NAMESPACE, "pvc": "files", "snapshot": "deadbeef",
                                         "target_pvc": "files-never"}, expect=404)
    session.api("POST", "/v1/restores", {"namespace": NAMESPACE, "pvc": "files", "target_pvc": "files-copy"},
                expect=409)
    for pvc in ("db", "files"):
        session.api("POST", "/v1/restore-drills", {"namespace": NAMESPACE, "pvc": pvc, "dry_run": True})
        session.api("POST", "/v1/backup", {"namespace": NAMESPACE, "pvc": pvc, "dry_run": True})
    session.api("POST", "/v1/backup/namespace", {"namespace": NAMESPACE, "dry_run": True})
    session.api("POST", "/v1/restores/namespace", {"namespace": NAMESPACE, "target_prefix": "dry-",
                                                   "dry_run": True})

    session.api("POST", "/v1/policies", {"namespace": NAMESPACE, "pvc": "files", "interval_hours": 1000,
                                         "tags": ["from=policy"]}, expect=201)
    session.api("POST", "/v1/policies", {"namespace": NAMESPACE, "interval_hours": 1000, "retain": 3}, expect=201)
    for task in ("policies.tasks.refresh_inventory", "policies.tasks.evaluate_policies"):
        worker.run(task, timeout=JOB_SECONDS)
    for path in ("/v1/policies", f"/v1/restores?namespace={NAMESPACE}", f"/v1/restore-drills?namespace={NAMESPACE}",
                 f"/v1/inventory?namespace={NAMESPACE}"):
        session.api("GET", path)
    for pvc in ("db", "files", "broken"):
        _backups(session, pvc)

    for path in ("/", f"/pvc/{NAMESPACE}/db/", f"/pvc/{NAMESPACE}/files/", f"/pvc/{NAMESPACE}/broken/",
                 "/restores/", "/policies/", "/activity/", f"/namespace/{NAMESPACE}/restore", "/admin/",
                 "/admin/django_q/success/", "/admin/django_q/failure/", "/admin/django_q/schedule/",
                 "/admin/soteria_site/auditentry/", "/v1/inventory"):
        session.page(path)
    session.api("DELETE", f"/v1/policies/{NAMESPACE}.files")
    session.api("GET", "/metrics", headers=[])


def _kubernetes_outputs(outputs, apis):
    core, batch, api = apis
    plain = api.sanitize_for_serialization
    for event in core.list_event_for_all_namespaces().items:
        outputs.add(f"Event {event.metadata.namespace}/{event.metadata.name}", json.dumps(plain(event)))
    for job in batch.list_namespaced_job(NAMESPACE).items:
        outputs.add(f"Job {job.metadata.name}", json.dumps(plain(job)))
    for pod in core.list_namespaced_pod(NAMESPACE).items:
        outputs.add(f"Pod {pod.metadata.name}", json.dumps(plain(pod)))
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            try:
                log = core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, container=container.name)
            except k8s.exceptions.ApiException as exc:  # a container that never ran
                log = exc.body or ""
            outputs.add(f"the log of {pod.metadata.name}/{container.name}", log)
    for namespace in (NAMESPACE, "soteria"):
        for cm in core.list_namespaced_config_map(namespace).items:
            outputs.add(f"ConfigMap {namespace}/{cm.metadata.name}", json.dumps(plain(cm)))
    policies = core.read_namespaced_secret(POLICY_SECRET, "soteria")
    outputs.add("the policy Secret", json.dumps({k: base64.b64decode(v).decode() for k, v in policies.data.items()}))


def _jobs_take_credentials_by_reference(batch) -> int:
    """Every container of Soteria's Jobs: credentials from secretKeyRef (or a secretRef), no literal."""
    jobs = batch.list_namespaced_job(NAMESPACE).items
    for job in jobs:
        for container in [*(job.spec.template.spec.init_containers or []), *job.spec.template.spec.containers]:
            for env in container.env or []:
                assert env.value not in SEEDED.values(), f"Job {job.metadata.name} {container.name}: {env.name}"
                if env.name in ("RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                    assert env.value is None and env.value_from.secret_key_ref.name, (job.metadata.name, env)
            for source in container.env_from or []:
                assert source.config_map_ref is None or source.secret_ref is not None, (job.metadata.name, source)
    return len(jobs)


def test_no_secret_leaves_soteria(world, sandbox, apis, outputs):
    server, worker, _ = world
    core, batch, _ = apis
    session = Session(server, outputs)
    _drive(session, sandbox, worker)

    # The seeded credentials were the ones in use: the Jobs' own copies of the restic Secret hold them.
    copies = [s for s in core.list_namespaced_secret(NAMESPACE).items if s.data and "RESTIC_PASSWORD" in s.data]
    assert copies and all(base64.b64decode(s.data["RESTIC_PASSWORD"]).decode() == SEEDED["restic password"]
                          for s in copies)
    control = Outputs()  # and the search finds them as Kubernetes stores them (base64)
    control.add("a Job's copy of the restic Secret", json.dumps(apis[2].sanitize_for_serialization(copies[0])))
    assert {"restic password", "S3 access key id", "S3 secret key"} == \
        {what for what in SEEDED if any(what in leak for leak in control.leaks())}
    assert _jobs_take_credentials_by_reference(batch) >= 3  # two backups (one failed) and a restore

    _kubernetes_outputs(outputs, apis)
    worker.stop()
    for name in ("gunicorn.log", "worker.log"):
        outputs.add(f"{name} (stdout and stderr)", (server.data_dir / name).read_bytes())
    outputs.add("Soteria's SQLite database", (server.data_dir / "soteria.sqlite3").read_bytes())
    # A start-up that fails (a system check) prints the configuration it refused: not the secrets.
    checked = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, capture_output=True,
                             env=server.env, timeout=120)
    outputs.add("manage.py check --deploy", checked.stdout + checked.stderr)

    captured = " ".join(where for where, _ in outputs.items)
    for kind in ("the answer to POST /v1/restores", "Event ", "Job ", "Pod ", "the log of ", "ConfigMap ",
                 "worker.log", "gunicorn.log"):
        assert kind in captured, f"nothing captured from {kind!r}"
    leaks = outputs.leaks()
    assert not leaks, "secrets left Soteria:\n" + "\n".join(sorted(set(leaks)))
