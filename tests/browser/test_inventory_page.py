"""The inventory page: every namespace and PVC of the demo world, with the health an operator acts on."""

import re

import pytest
from playwright.sync_api import expect

SEEDED = {
    "ai": {"llm-cache": "fresh", "model-store": "stale", "notebooks": "never backed up"},
    "databases": {"analytics-warehouse": "not bound", "postgres-data": "last backup failed", "redis-data": "fresh"},
    "media": {"photos": "fresh", "transcode-cache": "unsupported driver"},
}


def _namespaces(page) -> list[str]:
    return page.locator("section[data-namespace]").evaluate_all("els => els.map(e => e.dataset.namespace)")


def _pvcs(page, namespace: str) -> list[str]:
    return page.locator(f'section[data-namespace="{namespace}"] tbody tr').evaluate_all(
        "rows => rows.map(r => r.dataset.pvc)")


def test_inventory_lists_namespaces_sorted_with_their_pvcs(page):
    page.goto("/")
    expect(page.get_by_role("heading", name="Inventory", exact=True)).to_be_visible()
    namespaces = _namespaces(page)
    assert namespaces == sorted(namespaces)
    # Every namespace is counted on every page; its rows may be on a later page (200 a page).
    counted = page.locator("tr[data-ns-count]").evaluate_all("rows => rows.map(r => r.dataset.nsCount)")
    assert set(SEEDED) <= set(counted) and counted == sorted(counted)
    for namespace, pvcs in SEEDED.items():
        page.goto(f"/?namespace={namespace}")
        expect(page.locator(f'section[data-namespace="{namespace}"] h2')).to_have_text(namespace)
        listed = _pvcs(page, namespace)
        # Other tests may add PVCs (restore targets); the seeded ones are all there, and rows are sorted.
        assert set(pvcs) <= set(listed) and listed == sorted(listed)


@pytest.mark.parametrize(("namespace", "pvc", "health"),
                         [(ns, pvc, health) for ns, pvcs in SEEDED.items() for pvc, health in pvcs.items()])
def test_each_seeded_pvc_shows_its_health_badge(page, namespace, pvc, health):
    page.goto(f"/?namespace={namespace}")
    row = page.locator(f'section[data-namespace="{namespace}"] tr[data-pvc="{pvc}"]')
    expect(row.get_by_role("link", name=pvc, exact=True)).to_be_visible()
    expect(row.locator(".badge")).to_have_text(health)


def test_unhealthy_badges_are_styled_apart_from_healthy_ones(page):
    def badge(namespace, pvc):
        page.goto(f"/?namespace={namespace}")
        return page.locator(f'section[data-namespace="{namespace}"] tr[data-pvc="{pvc}"] .badge')

    expect(badge("ai", "llm-cache")).to_have_class(re.compile(r"\bok\b"))
    for ns, pvc in (("ai", "model-store"), ("ai", "notebooks"), ("databases", "postgres-data")):
        expect(badge(ns, pvc)).to_have_class(re.compile(r"\bbad\b"))
    # The failed backup's error is one hover away.
    expect(badge("databases", "postgres-data")).to_have_attribute("title", re.compile("connection reset by peer"))


def test_namespace_filter_shows_only_that_namespace(page):
    page.goto("/")
    page.get_by_label("Namespace", exact=True).fill("media")
    page.get_by_label("Namespace", exact=True).press("Enter")
    expect(page).to_have_url(re.compile(r"\?namespace=media&"))
    expect(page.get_by_role("heading", name="Inventory: media")).to_be_visible()
    assert _namespaces(page) == ["media"]
    assert _pvcs(page, "media") == ["photos", "transcode-cache"]
    expect(page.get_by_label("Namespace", exact=True)).to_have_value("media")


def test_filter_on_a_namespace_without_pvcs_says_so(page):
    page.goto("/?namespace=browser-no-such-ns")
    expect(page.get_by_text("No PersistentVolumeClaims in browser-no-such-ns.")).to_be_visible()
    assert _namespaces(page) == []


def test_pvc_name_links_to_its_page(page):
    page.goto("/?namespace=media")
    page.locator('section[data-namespace="media"]').get_by_role("link", name="photos", exact=True).click()
    expect(page).to_have_url(re.compile(r"/pvc/media/photos/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("media / photos")
