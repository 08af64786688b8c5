"""Every console page at 1280 px and at a phone's 390 px: no sideways scrolling, no serious or
critical accessibility violation (axe-core), visible keyboard focus, and a screenshot.

One browser page is shared by the module (each check opens its URL afresh). Screenshots go to
the test's temporary directory, or into docs/screenshots/ with SOTERIA_WRITE_SCREENSHOTS=1
(docs/console.md shows them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.support.browser import WIDTHS, check_page, screenshot_dir

POLICY = "browser-pages"


def _restore_plan(page):
    page.goto("/pvc/ai/llm-cache/")
    page.get_by_label("New PVC name").fill("browser-pages-plan")
    page.get_by_role("button", name="Review restore").click()
    expect(page.locator('[data-plan="restore"]')).to_be_visible()


def _policy_delete_plan(page):
    page.goto("/policies/")
    page.locator(f'tr[data-policy="{POLICY}"]').get_by_role("button", name="Delete").click()
    expect(page.locator('[data-plan="policy-delete"]')).to_be_visible()


def _backup_plan(page):
    page.goto("/pvc/ai/llm-cache/")
    page.get_by_label("Tags").fill("reason=maintenance")
    page.get_by_role("button", name="Review backup").click()
    expect(page.locator('[data-plan="backup"]')).to_be_visible()


PAGES = {
    "inventory": "/",
    "pvc": "/pvc/ai/llm-cache/",
    "backup-plan": _backup_plan,
    "restore-plan": _restore_plan,
    "restores": "/restores/",
    "policies": "/policies/",
    "policy-delete-plan": _policy_delete_plan,
    "activity": "/activity/",
    "namespace-backup-plan": "/namespace/ai/backup",
    "namespace-restore": "/namespace/ai/restore",
}


@pytest.fixture(scope="module")
def shared(browser, base_url):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    made = page.request.post("/v1/policies", data={"namespace": POLICY, "interval_hours": 24, "retain": 7})
    assert made.ok, made.text()
    yield page
    page.request.delete(f"/v1/policies/{POLICY}")
    context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def axe() -> Axe:
    return Axe()


def _open(page, name: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": WIDTHS[width]})
    how = PAGES[name]
    if callable(how):
        how(page)
    else:
        page.goto(how)
    expect(page.locator("main")).to_be_visible()


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_fits_has_no_serious_accessibility_violation_and_is_photographed(shared, axe, screenshots, name, width):
    _open(shared, name, width)
    check_page(shared, axe, screenshots, name, width)


def test_every_field_of_every_page_has_a_label(shared):
    for name in PAGES:
        _open(shared, name, 1280)
        unlabelled = shared.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name)""")
        assert unlabelled == [], f"{name}: {unlabelled}"


def test_keyboard_focus_is_visible_and_skips_to_the_content(shared):
    _open(shared, "pvc", 1280)
    shared.keyboard.press("Tab")
    skip = shared.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    shared.keyboard.press("Enter")
    for _ in range(12):  # on to the first form field, through the links of the content
        shared.keyboard.press("Tab")
        if shared.evaluate("document.activeElement.tagName") == "INPUT":
            break
    style = shared.evaluate("""() => { const s = getComputedStyle(document.activeElement);
        return [document.activeElement.name, s.outlineStyle, parseFloat(s.outlineWidth)]; }""")
    assert style[0] == "tags" and style[1] != "none" and style[2] >= 2, style
