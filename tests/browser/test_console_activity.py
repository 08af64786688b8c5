"""The Activity page's "Running now" panel refreshes itself (static/soteria/console.js polls a
small HTML fragment) without reloading the page."""

import re

from playwright.sync_api import expect


def test_running_now_refreshes_in_place_without_a_reload(page):
    page.goto("/activity/")
    panel = page.locator("[data-poll]")
    expect(panel.get_by_role("heading", name=re.compile(r"^Running now \(\d+\)$"))).to_be_visible()
    first = panel.locator("[data-checked-at]").inner_text()
    page.evaluate("window.notReloaded = true")
    expect(panel).to_have_attribute("data-polled", "1", timeout=15_000)
    expect(panel.locator("[data-checked-at]")).not_to_have_text(first, timeout=15_000)
    assert page.evaluate("window.notReloaded === true")  # the same document: swapped in place


def test_the_fragment_is_the_panel_alone(page):
    reply = page.request.get("/activity/running")
    assert reply.ok and reply.headers["content-type"].startswith("text/html")
    body = reply.text()
    assert body.lstrip().startswith("<div data-poll=") and "<html" not in body
