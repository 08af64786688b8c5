"""Restoring a PVC's backup into a new PVC from the console, and following it on the Restores page."""

import re

from playwright.sync_api import expect

from tests.support.browser import reload_until
from tests.support.kube import pvc_exists


def _restore_form(page):
    return page.locator("section").filter(has=page.get_by_role("heading", name="Restore into a new PVC"))


def test_the_restore_plan_shows_what_would_be_created_and_cancelling_creates_nothing(page, kube):
    page.goto("/pvc/ai/model-store/")
    form = _restore_form(page)
    expect(form.get_by_label("Target namespace")).to_have_value("ai")
    form.get_by_label("New PVC name").fill("browser-dry-run-1")
    form.get_by_role("button", name="Review restore").click()

    plan = page.locator('[data-plan="restore"]')
    expect(plan.locator("[data-target]")).to_have_text("ai/browser-dry-run-1")
    expect(plan).to_contain_text("Conflicts")
    expect(plan.locator("[data-size]")).to_contain_text("Gi")
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(r"/pvc/ai/model-store/$"))
    assert not pvc_exists(kube, "ai", "browser-dry-run-1")
    page.goto("/restores/")
    expect(page.get_by_role("heading", name="Restores", exact=True)).to_be_visible()
    expect(page.locator('tr[data-pvc="ai/browser-dry-run-1"]')).to_have_count(0)


def test_restore_into_a_new_pvc_shows_progress_until_done(page, kube):
    page.goto("/pvc/ai/llm-cache/")
    form = _restore_form(page)
    # Pick a particular backup (the second newest), not just "latest".
    chosen = form.get_by_label("Backup").locator("option").nth(2).get_attribute("value")
    form.get_by_label("Backup").select_option(chosen)
    form.get_by_label("New PVC name").fill("browser-restore-1")
    form.get_by_role("button", name="Review restore").click()
    expect(page.locator('[data-plan="restore"]')).to_contain_text(chosen)
    page.get_by_role("button", name="Restore now").click()

    started = page.locator("[data-restore-started]")
    expect(started).to_contain_text(re.compile(rf"Restoring backup {re.escape(chosen)} into ai/browser-restore-1"))
    started.get_by_role("link", name="Follow its progress on the Restores page").click()
    expect(page).to_have_url(re.compile(r"/restores/\?namespace=ai$"))
    expect(page.get_by_role("heading", name="Restores into ai")).to_be_visible()
    row = page.locator('tr[data-pvc="ai/browser-restore-1"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(1)).to_contain_text("llm-cache")
    expect(row.locator("td").nth(2)).to_have_text(chosen)
    reload_until(page, lambda: row.locator(".badge").inner_text() == "done", what="the restore to be done")
    expect(row.locator("td").nth(5)).to_have_text("100%")
    assert pvc_exists(kube, "ai", "browser-restore-1")


def test_restore_onto_an_existing_pvc_is_refused_naming_it(page, kube):
    page.goto("/pvc/ai/llm-cache/")
    form = _restore_form(page)
    form.get_by_label("New PVC name").fill("model-store")
    form.get_by_role("button", name="Review restore").click()

    expect(page).to_have_url(re.compile(r"/pvc/ai/llm-cache/restore$"))
    expect(page.locator("[data-free-name]")).to_contain_text("llm-cache-restore-")
    expect(page.get_by_role("button", name="Restore now")).to_have_count(0)
    expect(page.locator(".messages li.error")).to_have_text(
        "Restore refused: target PVC ai/model-store already exists; Soteria never overwrites a PVC")
    page.goto("/restores/")
    expect(page.locator('tr[data-pvc="ai/model-store"]')).to_have_count(0)


def test_restore_into_an_invalid_name_is_refused_by_the_form(page, kube):
    page.goto("/pvc/ai/llm-cache/")
    form = _restore_form(page)
    form.get_by_label("New PVC name").fill("Browser_Restore")
    form.get_by_role("button", name="Review restore").click()
    expect(page.locator(".messages li.error")).to_contain_text("target_pvc:")
    assert not pvc_exists(kube, "ai", "Browser_Restore".lower())
