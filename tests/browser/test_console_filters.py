"""The inventory's filters and search in the browser: they are GET parameters, so a reload or a
shared link shows the same view."""

import re

from playwright.sync_api import expect


def _pvcs(page) -> list[str]:
    return page.locator("section[data-namespace] tbody tr").evaluate_all("rows => rows.map(r => r.dataset.pvc)")


def test_filter_by_health_survives_a_reload(page):
    page.goto("/")
    page.get_by_label("Health").select_option("stale")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"reason=stale"))
    assert "model-store" in _pvcs(page)
    health = page.locator("section[data-namespace] tbody tr").evaluate_all(
        "rows => rows.map(r => r.querySelector('.badge').textContent)")
    assert set(health) == {"stale"}
    page.reload()
    expect(page.get_by_label("Health")).to_have_value("stale")
    assert "model-store" in _pvcs(page) and "llm-cache" not in _pvcs(page)


def test_search_by_pvc_name_with_counts(page):
    # A name only the demo's PVC (and restores of it) carries: "data" matches pages of other
    # tests' PVCs (200 a page).
    page.goto("/")
    page.get_by_label("PVC name contains").fill("redis")
    page.get_by_label("PVC name contains").press("Enter")
    expect(page).to_have_url(re.compile(r"q=redis"))
    names = _pvcs(page)
    assert "redis-data" in names and all("redis" in n for n in names)
    expect(page.locator("[data-matching]")).to_have_text(re.compile(rf"^{len(names)} PVCs? match"))
    # The namespaces' table counts every PVC and the matching ones.
    in_databases = page.locator('section[data-namespace="databases"] tbody tr').count()
    expect(page.locator('tr[data-ns-count="databases"] td').nth(4)).to_have_text(str(in_databases))
    page.get_by_role("link", name="Clear").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_label("PVC name contains")).to_have_value("")


def test_the_namespace_link_in_the_counts_filters_to_it(page):
    page.goto("/")
    page.locator('tr[data-ns-count="ai"]').get_by_role("link", name="ai").click()
    expect(page).to_have_url(re.compile(r"\?namespace=ai$"))
    expect(page.locator("section[data-namespace]")).to_have_count(1)
