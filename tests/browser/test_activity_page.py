"""The Activity page: what was just done from the console, by whom, with what result."""

import re

from playwright.sync_api import expect


def _entries(page, action: str, target: str):
    """Activity rows (When, Who, Action, Target, Result, Detail) for one action on one target."""
    def cell(column: int, text: str):
        return page.locator(f"td:nth-child({column})", has_text=re.compile(rf"^{re.escape(text)}$"))

    return page.locator("table.recent tbody tr").filter(has=cell(3, action)).filter(has=cell(4, target))


def test_activity_lists_the_actions_just_taken_with_the_actor(page):
    # A backup planned (not confirmed), a refused restore and a policy created and deleted, all from the console.
    page.goto("/pvc/ai/notebooks/")
    backup = page.locator("section").filter(has=page.get_by_role("heading", name="Back up now"))
    backup.get_by_role("button", name="Review backup").click()
    expect(page.locator('[data-plan="backup"]')).to_be_visible()

    page.goto("/pvc/ai/llm-cache/")
    restore = page.locator("section").filter(has=page.get_by_role("heading", name="Restore into a new PVC"))
    restore.get_by_label("New PVC name").fill("notebooks")
    restore.get_by_role("button", name="Review restore").click()
    expect(page.locator(".messages li.error")).to_contain_text("already exists")

    page.goto("/policies/")
    policy = page.locator("section").filter(has=page.get_by_role("heading", name="Create or update"))
    policy.get_by_label("Namespace").fill("browser-activity-ns")
    policy.get_by_role("button", name="Save policy").click()
    expect(page.locator(".messages li.success")).to_have_text("Policy browser-activity-ns created.")
    page.locator('tr[data-policy="browser-activity-ns"]').get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete policy").click()
    expect(page.locator(".messages li.success")).to_have_text("Policy browser-activity-ns deleted.")

    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", name="Recent actions")).to_be_visible()
    expected = [("backup.create", "ai/notebooks", "dry_run"),
                ("restore.create", "ai/llm-cache -> ai/notebooks", "target_exists"),
                ("policy.create", "browser-activity-ns", "ok"),
                ("policy.destroy", "browser-activity-ns", "ok")]
    for action, target, result in expected:
        row = _entries(page, action, target).first
        expect(row).to_be_visible()
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text("anonymous")  # auth is off on this server
        expect(cells.nth(4)).to_have_text(result)
        expect(cells.nth(0)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    refused = _entries(page, "restore.create", "ai/llm-cache -> ai/notebooks").first
    expect(refused.locator(".badge")).to_have_class(re.compile(r"\bbad\b"))
    expect(refused.locator("td").nth(5)).to_contain_text("already exists")
    # Newest first: the policy deletion was the last thing done.
    assert page.locator("table.recent tbody tr").first.locator("td").nth(2).inner_text() == "policy.destroy"
