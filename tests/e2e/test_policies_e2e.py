"""Issue 7 end to end: the policy Secret on the real apiserver, scheduling through django-q2,
leadership through a real Lease."""

import base64
import json
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from policies import evaluate, store
from sandbox import faults, seed
from tests.support.http import post
from tests.support.kube import forget_policy_lease, kube
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _secret_json(cfg, name):
    secret = kube(cfg).read_namespaced_secret(name, "soteria")
    return json.loads(base64.b64decode(secret.data["policies.json"])), secret


def test_policies_round_trip_through_the_secret(client, live, policy_secret):
    assert post(client, "/v1/policies", {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 6,
                                         "retain": 7, "tags": ["tier=gold"]}).status_code == 201
    assert post(client, "/v1/policies", {"namespace": "media", "interval_hours": 24}).status_code == 201
    stored, secret = _secret_json(live, policy_secret)
    assert stored["version"] == 1
    assert [(p["id"], p["interval_hours"], p["retain"], p["tags"]) for p in stored["policies"]] == [
        ("ai.llm-cache", 6.0, 7, ["tier=gold"]), ("media", 24.0, None, [])]
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "soteria"
    assert client.delete("/v1/policies/media").status_code == 200
    assert [p["id"] for p in _secret_json(live, policy_secret)[0]["policies"]] == ["ai.llm-cache"]
    assert [p["id"] for p in client.get("/v1/policies").json()["policies"]] == ["ai.llm-cache"]


def test_a_policy_write_keeps_the_secrets_annotations(client, live, policy_secret):
    """kubectl apply records its last-applied configuration in an annotation: a write must keep it."""
    kube(live).create_namespaced_secret("soteria", {"metadata": {"name": policy_secret, "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "platform"}}})
    assert post(client, "/v1/policies", {"namespace": "ai", "interval_hours": 6}).status_code == 201
    stored, secret = _secret_json(live, policy_secret)
    assert [p["id"] for p in stored["policies"]] == ["ai"]
    assert secret.metadata.annotations == {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                           "team": "platform"}


def test_sixteen_writers_fifty_updates_each_lose_nothing(live, policy_secret):
    from policies.services import save_policy

    save_policy("shared", "", 1, True, None, [], "test")
    errors = []

    def writer():
        from django.db import connections
        try:
            for _ in range(50):
                store.update(lambda current: [replace(p, interval_hours=p.interval_hours + 1) if p.id == "shared"
                                              else p for p in current])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [shared] = [p for p in _secret_json(live, policy_secret)[0]["policies"] if p["id"] == "shared"]
    assert shared["interval_hours"] == 1 + 16 * 50


@pytest.mark.parametrize("content", [b"{broken", b'{"version": 99, "policies": []}'])
def test_a_corrupt_secret_is_reported_and_never_overwritten(client, live, policy_secret, content):
    kube(live).create_namespaced_secret("soteria", {"metadata": {"name": policy_secret},
                                                    "data": {"policies.json": base64.b64encode(content).decode()}})
    assert client.get("/v1/policies").status_code == 503
    response = post(client, "/v1/policies", {"namespace": "ai", "interval_hours": 1})
    assert response.status_code == 503 and response.json()["error"] == "policy_store_unreadable"
    secret = kube(live).read_namespaced_secret(policy_secret, "soteria")
    assert base64.b64decode(secret.data["policies.json"]) == content


def _backups(client, namespace, pvc):
    return client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}").json()["backups"]


def _tick() -> list[str]:
    """One pass of django-q2's scheduler, then the queued tasks run as the cluster's worker would."""
    from django_q.brokers import get_broker
    from django_q.scheduler import scheduler
    from django_q.tasks import _sync

    broker = get_broker()
    scheduler(broker=broker)
    ran = []
    while tasks := broker.dequeue():
        for ack_id, pack in tasks:
            ran.append(_sync(pack))
            broker.acknowledge(ack_id)
    return ran


def test_the_scheduled_evaluation_backs_up_due_pvcs_once(client, live, policy_secret):
    from django_q.models import Schedule, Success

    from soteria_site.core import schedules

    old = "2020-01-01T00:00:00Z"
    seed.make_pvc(live, "e2e-pol", "due", backups=[{"state": "Completed", "created": old}])
    seed.make_pvc(live, "e2e-pol", "fresh", backups=[{"state": "Completed"}])
    seed.make_pvc(live, "e2e-pol", "off", backups=[{"state": "Completed", "created": old}])
    seed.make_pvc(live, "e2e-pol-2", "unmanaged", backups=[{"state": "Completed", "created": old}])
    faults.wait_mirrored(live)  # due times come from the inventory, which reads Longhorn's CRs
    post(client, "/v1/policies", {"namespace": "e2e-pol", "interval_hours": 24})
    post(client, "/v1/policies", {"namespace": "e2e-pol", "pvc": "off", "interval_hours": 24, "enabled": False})
    schedules.upsert()
    # Due a minute ago: django-q2 steps a missed schedule's next run forward one interval at a
    # time, so a date decades back costs millions of steps.
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=1))
    # The policy evaluation, the inventory refresh, the snapshot prune, the manifest collection,
    # the drill sweeper and the restore sweeper.
    assert len(_tick()) == 6
    assert Success.objects.filter(func="policies.tasks.evaluate_policies").count() == 1
    wait_for(lambda: any(b["state"] == "Completed" and b["labels"].get("policy") == "e2e-pol"
                         for b in _backups(client, "e2e-pol", "due")), what="policy backup")
    assert len([b for b in _backups(client, "e2e-pol", "due") if b["labels"].get("policy")]) == 1
    for pvc in ("fresh", "off"):
        assert not [b for b in _backups(client, "e2e-pol", pvc) if b["labels"].get("policy")]
    assert not [b for b in _backups(client, "e2e-pol-2", "unmanaged") if b["labels"].get("policy")]
    [policy] = [p for p in client.get("/v1/policies").json()["policies"] if p["id"] == "e2e-pol"]
    assert policy["last_result"] == "started" and policy["last_run_at"]
    # The next tick: the backup is running or done, so nothing is due again.
    Schedule.objects.filter(name="soteria:policy-evaluation").update(next_run=timezone.now() - timedelta(minutes=1))
    _tick()
    assert len([b for b in _backups(client, "e2e-pol", "due") if b["labels"].get("policy")]) == 1


def test_two_evaluators_produce_one_backup(client, live, policy_secret):
    seed.make_pvc(live, "e2e-pol2", "due", backups=[{"state": "Completed", "created": "2020-01-01T00:00:00Z"}])
    faults.wait_mirrored(live)
    post(client, "/v1/policies", {"namespace": "e2e-pol2", "interval_hours": 1})
    forget_policy_lease(live)  # a previous test's evaluator may still hold it
    barrier = threading.Barrier(2)
    reports = {}

    def evaluator(name):
        from django.db import connections
        barrier.wait()
        reports[name] = evaluate.evaluate(holder=name)
        connections.close_all()

    threads = [threading.Thread(target=evaluator, args=(f"replica-{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leaders = [name for name, report in reports.items() if report.leader]
    assert len(leaders) == 1
    assert sum(len(r.started) for r in reports.values()) == 1
    wait_for(lambda: any(b["state"] == "Completed" and b["labels"].get("policy") == "e2e-pol2"
                         for b in _backups(client, "e2e-pol2", "due")), what="the policy backup")
    assert len(_backups(client, "e2e-pol2", "due")) == 2  # the seeded one and exactly one new
    lease = kube_lease(live)
    assert lease.spec.holder_identity == leaders[0]


def kube_lease(cfg):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    return client.CoordinationV1Api(api).read_namespaced_lease("soteria-policy-evaluator", "soteria")



def test_jitter_spreads_a_new_twenty_pvc_namespace_policy(client, live, policy_secret):
    from datetime import timedelta

    from policies import services

    for i in range(20):
        seed.make_pvc(live, "e2e-jitter", f"data-{i:02d}", wait=False)
    seed.wait_bound(live, [("e2e-jitter", f"data-{i:02d}") for i in range(20)])
    faults.wait_mirrored(live)
    policy, _ = services.save_policy("e2e-jitter", "", 24, True, None, [], "test")
    forget_policy_lease(live)
    started = {}
    for minutes in (0, 30, 60, 90, 120, 150):
        report = evaluate.evaluate(now=policy.created_at + timedelta(minutes=minutes), holder="jitter-test")
        for key in report.started:
            started.setdefault(key, minutes)
        wait_for(lambda: all(b["state"] == "Completed" for i in range(20)
                             for b in _backups(client, "e2e-jitter", f"data-{i:02d}")), what="backups done")
    assert len(started) == 20  # every PVC once, within 10% of the interval (144 min)
    waves = sorted(set(started.values()))
    assert len(waves) >= 4, started  # spread over the window, not all at once
    assert max(list(started.values()).count(w) for w in waves) <= 12
