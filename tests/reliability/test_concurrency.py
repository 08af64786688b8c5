"""Many writers at once against real gunicorn on the sandbox, auth on (a bearer token):
policy updates are never lost, of many identical restores or backups exactly one runs and the
others get a clear 409 and leave nothing behind (Longhorn and restic), and the first backups into
a new restic repository initialise it once.

Soteria here runs as in tests/support/soteria.py (gunicorn, 2 worker processes) with
SOTERIA_BACKUP_DRIVER=auto and SOTERIA_WEB_THREADS=24: enough threads that every request of a
burst reaches the conflict checks at once. With the default 4 threads, the busy guard
(soteria_site/web/edge.py) answers the excess long requests 503 `busy` with Retry-After before
they get there; that refusal has its own tests (tests/security). Sizes: tests.support.reliability.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from sandbox import faults, s3, seed
from tests.support.cast import AUTOMATION, SECURE_ENV
from tests.support.concurrent_calls import at_once, batch, job_finished, labelled, outcome, statuses
from tests.support.http import call
from tests.support.kube import kube
from tests.support.polling import wait_for
from tests.support.reliability import size
from tests.support.restic import local_pvc
from tests.support.soteria import start_soteria, stop_soteria

WRITERS = 16
UPDATES = size(4, 50)
RESTORES = 10
BACKUPS = 20
NEW_REPOSITORY_PVCS = size(3, 8)
WAIT_FOR_SNAPSHOTS = size(False, True)
JOB_SECONDS = 180
# How long the emulated Longhorn takes for a backup or a restore while a burst runs: the
# burst's last request still finds the winner's backup running, as with a real volume of data.
LONGHORN_OP_SECONDS = 8.0


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    """Its own policy Secret and restic repository, neither of which exists yet: the first
    writers race to create the Secret, the first backups to initialise the repository."""
    secret = f"policies-{uuid.uuid4().hex[:8]}"
    server = start_soteria(sandbox, tmp_path_factory.mktemp("concurrency-data"), workers=2,
                           SOTERIA_WEB_THREADS=24, SOTERIA_BACKUP_DRIVER="auto", SOTERIA_JOB_TTL_SECONDS=3600,
                           **SECURE_ENV, SOTERIA_POLICY_SECRET_NAME=secret,
                           SOTERIA_RESTIC_REPOSITORY=f"s3:{sandbox.s3_endpoint}/conc-{uuid.uuid4().hex[:10]}/repo")
    yield server
    stop_soteria(server)
    if any(s.metadata.name == secret for s in kube(sandbox).list_namespaced_secret("soteria").items):
        kube(sandbox).delete_namespaced_secret(secret, "soteria")


@pytest.fixture
def slow_longhorn(sandbox):
    before = faults.config(sandbox)["op_seconds"]
    faults.set_op_seconds(sandbox, LONGHORN_OP_SECONDS)
    yield
    faults.set_op_seconds(sandbox, before)


def api(server, method, path, body=None):
    return call(server.url, method, path, headers=AUTOMATION, json=body, timeout=120)


def longhorn_volumes(cfg) -> dict[str, str]:
    """Every Longhorn volume's name -> the backup URL it was restored from ('' for none)."""
    with urllib.request.urlopen(f"{cfg.longhorn_url}/v1/volumes", timeout=30) as response:
        return {v["name"]: v.get("fromBackup") or "" for v in json.loads(response.read())["data"]}


# --- policies ------------------------------------------------------------------------------------
def test_concurrent_policy_writers_lose_no_update(server, sandbox):
    """16 writers each update their own policy UPDATES times, all at once, starting with no
    policy Secret at all: every update is answered as applied (200/201 echoing the value) or
    refused with a clear error, and at the end every writer's last applied value is what the
    Secret holds."""
    run = uuid.uuid4().hex[:6]
    namespaces = [f"pol-{run}-{i:02d}" for i in range(WRITERS)]

    def writer(namespace):
        def go():
            applied, refused = [], []
            for update in range(1, UPDATES + 1):
                reply = api(server, "POST", "/v1/policies", {"namespace": namespace, "interval_hours": update,
                                                              "retain": update, "enabled": True})
                if reply.status in (200, 201):
                    body = reply.json()
                    assert (body["interval_hours"], body["retain"]) == (update, update), body
                    assert reply.status == (201 if not applied else 200), (update, reply.status)
                    applied.append(update)
                else:
                    assert reply.status in (409, 503) and reply.json()["error"] in ("policy_conflict", "busy"), \
                        (reply.status, reply.text)
                    refused.append(update)
            return applied, refused
        return go

    try:
        outcomes = dict(zip(namespaces, at_once([writer(ns) for ns in namespaces]), strict=True))
        listed = api(server, "GET", "/v1/policies")
        assert listed.status == 200, listed.text
        stored = {p["namespace"]: p for p in listed.json()["policies"] if p["namespace"] in namespaces}
        lost = {ns: (stored.get(ns, {}).get("interval_hours"), applied[-1])
                for ns, (applied, _) in outcomes.items()
                if not applied or (stored.get(ns, {}).get("interval_hours"), stored.get(ns, {}).get("retain"))
                != (applied[-1], applied[-1])}
        assert lost == {}, f"lost updates (stored, last applied): {lost}"
        refused = sum(len(r) for _, r in outcomes.values())
        applied = sum(len(a) for a, _ in outcomes.values())
        print(f"\npolicy writers: {WRITERS} x {UPDATES}: {applied} applied, {refused} refused, 0 lost")
        # Refusals are allowed (and explained), but the store's retries must make them rare.
        assert applied >= 0.9 * WRITERS * UPDATES, outcomes
    finally:
        for namespace in namespaces:
            api(server, "DELETE", f"/v1/policies/{namespace}")


# --- Longhorn ---------------------------------------------------------------------------------------
def _longhorn_pvc(cfg, namespace, pvc) -> str:
    created = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    volume = seed.make_pvc(cfg, namespace, pvc, files={"README.txt": f"{namespace}/{pvc}\n"},
                           backups=[{"state": "Completed", "created": created}])
    faults.wait_mirrored(cfg)
    return volume


def _backups(server, namespace, pvc) -> list[dict]:
    reply = api(server, "GET", f"/v1/backups?namespace={namespace}&pvc={pvc}")
    assert reply.status == 200, reply.text
    return reply.json()["backups"]


def test_concurrent_longhorn_restores_to_one_target_one_wins_no_orphans(server, sandbox, slow_longhorn):
    namespace = f"conc-lh-{uuid.uuid4().hex[:6]}"
    _longhorn_pvc(sandbox, namespace, "src")
    volumes_before = longhorn_volumes(sandbox)
    request = {"namespace": namespace, "pvc": "src", "target_pvc": "restored"}
    replies = at_once([lambda: api(server, "POST", "/v1/restores", request)] * RESTORES)
    print(f"\nLonghorn restores to one target, {RESTORES} at once: {outcome(replies)}")
    assert statuses(replies) == {200: 1, 409: RESTORES - 1}, [(r.status, r.text) for r in replies]
    assert {r.json()["error"] for r in replies if r.status == 409} <= {"target_exists", "restore_in_progress"}
    [winner] = [r.json() for r in replies if r.status == 200]
    new_volumes = {name: url for name, url in longhorn_volumes(sandbox).items() if name not in volumes_before}
    assert list(new_volumes) == [winner["volume"]], new_volumes
    left = labelled(sandbox, namespace, f"soteria.io/restored-from={namespace}.src")
    assert (left["pvcs"], left["pvs"]) == (["restored"], [winner["pv"]]), left
    reply = api(server, "GET", f"/v1/restores?namespace={namespace}")
    assert [r["pvc"] for r in reply.json()["restores"]] == ["restored"], reply.text


def test_concurrent_longhorn_backups_of_one_pvc_one_runs(server, sandbox, slow_longhorn):
    namespace = f"conc-lh-{uuid.uuid4().hex[:6]}"
    volume = _longhorn_pvc(sandbox, namespace, "data")
    before = {b["name"] for b in _backups(server, namespace, "data")}
    faults.reset_calls(sandbox)
    replies = at_once([lambda: api(server, "POST", "/v1/backup", {"namespace": namespace, "pvc": "data"})] * BACKUPS)
    print(f"\nLonghorn backups of one PVC, {BACKUPS} at once: {outcome(replies)}")
    assert statuses(replies) == {200: 1, 409: BACKUPS - 1}, [(r.status, r.text) for r in replies]
    assert {r.json()["error"] for r in replies if r.status == 409} == {"backup_in_progress"}
    [winner] = [r.json() for r in replies if r.status == 200]
    assert winner["volume"] == volume
    calls = faults.calls(sandbox)
    assert sum(n for key, n in calls.items() if key.endswith("snapshotBackup")) == 1, calls
    new = wait_for(lambda: [b for b in _backups(server, namespace, "data") if b["name"] not in before
                            and b["state"] == "Completed"], 60, what="the winner's backup to complete")
    assert [b["snapshot"] for b in new] == [winner["backup"]]
    assert len(_backups(server, namespace, "data")) == len(before) + 1


# --- restic -------------------------------------------------------------------------------------------
def _restic(cfg, server, home, *args, cwd=None) -> str:
    """The host's restic on the module's repository, with the sandbox's credentials; its stdout."""
    env = {**s3.restic_env(cfg), "RESTIC_REPOSITORY": server.env["SOTERIA_RESTIC_REPOSITORY"],
           "RESTIC_PASSWORD": seed.RESTIC_PASSWORD, "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(home),
           "RESTIC_CACHE_DIR": str(home / "restic-cache")}
    done = subprocess.run(["restic", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def first_restic_backups(server, sandbox):
    """Before anything else uses the module's restic repository, which does not exist yet: the
    first backups of NEW_REPOSITORY_PVCS PVCs, all at once. (namespace, [(pvc, reply)])"""
    namespace = f"conc-init-{uuid.uuid4().hex[:6]}"
    pvcs = [f"data-{i}" for i in range(NEW_REPOSITORY_PVCS)]
    for pvc in pvcs:
        local_pvc(sandbox, namespace, pvc)
    replies = at_once([lambda pvc=pvc: api(server, "POST", "/v1/backup", {"namespace": namespace, "pvc": pvc})
                       for pvc in pvcs])
    return namespace, list(zip(pvcs, replies, strict=True))


def test_first_backups_into_a_new_restic_repository_initialise_it_once(first_restic_backups, server, sandbox,
                                                                       tmp_path):
    """One `restic init`, so the repository has one key (two concurrent ones would each write a
    key and a config, and one key would not open the config). At full size every Job's snapshot
    is checked too; in the suite the Jobs are deleted instead (their run is what costs time)."""
    namespace, backups = first_restic_backups
    replies = [reply for _, reply in backups]
    print(f"\nfirst restic backups into a new repository, {len(replies)} at once: {outcome(replies)}")
    assert statuses(replies) == {200: len(replies)}, [(r.status, r.text) for r in replies]
    assert len(json.loads(_restic(sandbox, server, tmp_path, "key", "list", "--json", "--no-lock"))) == 1
    jobs = {pvc: reply.json()["backup"] for pvc, reply in backups}
    if not WAIT_FOR_SNAPSHOTS:
        for job in jobs.values():
            batch(sandbox).delete_namespaced_job(job, namespace, propagation_policy="Background")
        return
    _jobs_done(sandbox, namespace, list(jobs.values()))
    for pvc, job in jobs.items():
        listed = _backups(server, namespace, pvc)
        assert [(b["state"], b["labels"].get("soteria.io/job")) for b in listed] == [("Completed", job)], listed


def _restic_pvc(cfg, server, home, namespace, pvc) -> None:
    """A local-path PVC with files and one snapshot of them, taken as the backup Jobs take theirs
    (from inside the volume, with the PVC's tags)."""
    root = local_pvc(cfg, namespace, pvc)
    _restic(cfg, server, home, "backup", ".", "--host", "soteria", "--tag", f"soteria.io/namespace={namespace}",
            "--tag", f"soteria.io/pvc={pvc}", cwd=root)


def _jobs_done(cfg, namespace, names):
    wait_for(lambda: all(job_finished(cfg, namespace, n) for n in names), JOB_SECONDS,
             what=f"Jobs {names} to finish", interval=0.5)


def test_concurrent_restic_restores_to_one_target_one_wins_no_orphans(first_restic_backups, server, sandbox,
                                                                      tmp_path):
    namespace = f"conc-rs-{uuid.uuid4().hex[:6]}"
    _restic_pvc(sandbox, server, tmp_path, namespace, "src")
    request = {"namespace": namespace, "pvc": "src", "target_pvc": "restored"}
    replies = at_once([lambda: api(server, "POST", "/v1/restores", request)] * RESTORES)
    print(f"\nrestic restores to one target, {RESTORES} at once: {outcome(replies)}")
    assert statuses(replies) == {200: 1, 409: RESTORES - 1}, [(r.status, r.text) for r in replies]
    assert {r.json()["error"] for r in replies if r.status == 409} <= {"target_exists", "restore_in_progress"}
    [winner] = [r.json() for r in replies if r.status == 200]
    assert winner["driver"] == "restic"
    assert labelled(sandbox, namespace, f"soteria.io/restored-from={namespace}.src")["pvcs"] == ["restored"]
    job = kube(sandbox).read_namespaced_persistent_volume_claim("restored", namespace).metadata.annotations[
        "soteria.io/restore-job"]
    left = labelled(sandbox, namespace, "app.kubernetes.io/managed-by=soteria,soteria.io/operation=restore")
    assert (left["jobs"], len(left["secrets"])) == ([job], 1), left
    _jobs_done(sandbox, namespace, [job])


def test_concurrent_restic_backups_of_one_pvc_one_runs(first_restic_backups, server, sandbox):
    namespace = f"conc-rs-{uuid.uuid4().hex[:6]}"
    local_pvc(sandbox, namespace, "data")
    replies = at_once([lambda: api(server, "POST", "/v1/backup", {"namespace": namespace, "pvc": "data"})] * BACKUPS)
    print(f"\nrestic backups of one PVC, {BACKUPS} at once: {outcome(replies)}")
    assert statuses(replies) == {200: 1, 409: BACKUPS - 1}, [(r.status, r.text) for r in replies]
    assert {r.json()["error"] for r in replies if r.status == 409} == {"backup_in_progress"}
    [winner] = [r.json() for r in replies if r.status == 200]
    assert winner["driver"] == "restic"
    left = labelled(sandbox, namespace, "app.kubernetes.io/managed-by=soteria,soteria.io/operation=backup")
    assert (left["jobs"], len(left["secrets"])) == ([winner["backup"]], 1), left
    _jobs_done(sandbox, namespace, [winner["backup"]])
    snapshots = [b for b in _backups(server, namespace, "data") if b["state"] == "Completed"]
    assert [b["labels"].get("soteria.io/job") for b in snapshots].count(winner["backup"]) == 1
