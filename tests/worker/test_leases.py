"""Leadership through a Lease (soteria_site.core.leases) at the client seam: one holder at a time,
renewed by its holder, taken over once it expires, and a lost race is no leadership."""

from dataclasses import replace
from datetime import timedelta

from soteria_site.core import kubernetes, leases
from soteria_site.core.errors import Conflict
from tests.support.fake_cluster import NOW

LEASE = ("soteria", "evaluator")


def _acquire(holder, at=NOW, duration=60):
    return leases.acquire("evaluator", namespace="soteria", duration_seconds=duration, holder=holder, now=at)


def test_the_first_caller_creates_the_lease_and_holds_it(cluster):
    assert _acquire("replica-a")
    lease = cluster.leases[LEASE]
    assert (lease.holder, lease.duration_seconds, lease.renewed, lease.transitions) == ("replica-a", 60, NOW, 0)


def test_the_holder_renews_its_lease(cluster):
    _acquire("replica-a")
    later = NOW + timedelta(seconds=50)
    assert _acquire("replica-a", at=later)
    lease = cluster.leases[LEASE]
    assert (lease.holder, lease.renewed, lease.transitions) == ("replica-a", later, 0)


def test_another_caller_is_refused_until_the_lease_expires_then_takes_it_over(cluster, monkeypatch):
    _acquire("replica-a")
    assert not _acquire("replica-b", at=NOW + timedelta(seconds=60))
    assert cluster.leases[LEASE].holder == "replica-a"
    sent = []
    fake_replace = kubernetes.replace_lease
    monkeypatch.setattr(kubernetes, "replace_lease", lambda ns, name, body: sent.append(body) or fake_replace(
        ns, name, body))
    expired = NOW + timedelta(seconds=61)
    assert _acquire("replica-b", at=expired)
    lease = cluster.leases[LEASE]
    assert (lease.holder, lease.renewed, lease.transitions) == ("replica-b", expired, 1)
    assert sent[0]["spec"]["acquireTime"] == expired.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert not _acquire("replica-a", at=expired + timedelta(seconds=1))


def test_a_lease_never_renewed_counts_as_expired(cluster):
    _acquire("replica-a")
    cluster.leases[LEASE] = replace(cluster.leases[LEASE], renewed=None)
    assert _acquire("replica-b")
    assert cluster.leases[LEASE].holder == "replica-b"


def _beaten(*args):
    raise Conflict("the object has been modified")


def test_losing_the_race_to_create_the_lease_is_no_leadership(cluster, monkeypatch):
    monkeypatch.setattr(kubernetes, "create_lease", _beaten)
    assert not _acquire("replica-a")


def test_losing_the_race_to_renew_the_lease_is_no_leadership(cluster, monkeypatch):
    _acquire("replica-a")
    monkeypatch.setattr(kubernetes, "replace_lease", _beaten)
    assert not _acquire("replica-a", at=NOW + timedelta(seconds=10))


def test_the_holder_is_this_pod_by_default(cluster, monkeypatch):
    monkeypatch.setattr(leases.socket, "gethostname", lambda: "soteria-7d9f-abcde")
    assert leases.identity() == "soteria-7d9f-abcde"
    assert leases.acquire("evaluator", namespace="soteria", duration_seconds=60, now=NOW)
    assert cluster.leases[LEASE].holder == "soteria-7d9f-abcde"


# --- sealed annotations ----------------------------------------------------------------------------
def test_sealed_annotations_hold_and_any_change_breaks_the_seal(settings):
    annotations = leases.sealed({"soteria.io/restore-volume": "pvc-1", "soteria.io/restore-pv": "pvc-1"})
    assert leases.seal_holds(annotations)
    for changed in ({**annotations, "soteria.io/restore-volume": "pvc-production"},
                    {**annotations, "soteria.io/restore-job": "nightly-report"},
                    {k: v for k, v in annotations.items() if k != "soteria.io/restore-pv"},
                    {k: v for k, v in annotations.items() if k != leases.SEAL}):
        assert not leases.seal_holds(changed), changed


def test_a_seal_made_with_another_key_does_not_hold_unless_that_key_is_a_fallback(settings):
    old_key = settings.SECRET_KEY
    annotations = leases.sealed({"soteria.io/restore-batch": "record"})
    settings.SECRET_KEY = "another-" + "k" * 60
    assert not leases.seal_holds(annotations)
    settings.SECRET_KEY_FALLBACKS = [old_key]  # the key was rotated: what the old one sealed still holds
    assert leases.seal_holds(annotations)
