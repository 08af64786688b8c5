"""The console's swap page over the fake cluster: plan, confirmation, steps, undo (docs/swap.md)."""

import pytest

from tests.support.fake_workloads import DEPLOYMENT, FakeApps, deployment

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = "/restores/swap/"


@pytest.fixture
def apps(cluster, monkeypatch):
    cluster.add_pvc("shop", "data", size="1Gi")
    cluster.add_pvc("shop", "data-restored", size="1Gi")
    fake = FakeApps(cluster).install(monkeypatch)
    fake.add(DEPLOYMENT, deployment("shop", "web", "data", replicas=2))
    return fake


def _claim(apps):
    return apps.obj(DEPLOYMENT, "shop", "web")["spec"]["template"]["spec"]["volumes"][1]["persistentVolumeClaim"][
        "claimName"]


def test_the_page_shows_the_plan_and_changes_nothing_without_the_confirmation(client, apps, cluster):
    page = client.get(PAGE, {"namespace": "shop", "restored_pvc": "data-restored", "source": "shop/data"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Plan:" in text and "Deployment shop/web" in text and 'id="swap"' in text
    assert text.count('data-step="') == 6
    unconfirmed = client.post(PAGE, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored"})
    assert "Nothing was changed" in unconfirmed.content.decode()
    assert apps.patches == [] and apps.scaled == []


def test_a_confirmed_swap_shows_each_step_and_offers_undo(client, apps):
    done = client.post(PAGE, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored", "confirm": "on"})
    text = done.content.decode()
    assert done.status_code == 200 and "Swapped:" in text and text.count(">done<") == 6
    assert 'id="undo"' in text and _claim(apps) == "data-restored"
    # Coming back to the page shows the swap in place and its undo, not a new plan.
    again = client.get(PAGE, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored"}).content.decode()
    assert "A swap is in place" in again and 'id="swap"' not in again and 'id="undo"' in again
    undone = client.post("/restores/swap/undo", {"namespace": "shop", "pvc": "data", "confirm": "on"})
    assert "Undone:" in undone.content.decode() and _claim(apps) == "data"


def test_a_refusal_is_shown_with_its_reason(client, apps):
    apps.obj(DEPLOYMENT, "shop", "web")["status"]["updatedReplicas"] = 1
    page = client.get(PAGE, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored"})
    assert page.status_code == 409 and 'data-error="workload_not_settled"' in page.content.decode()


def test_a_restore_into_another_namespace_cannot_be_swapped(client, apps):
    page = client.get(PAGE, {"namespace": "shop-restore", "restored_pvc": "data", "source": "shop/data"})
    assert "mounts only claims of its own namespace" in page.content.decode() and apps.patches == []
