"""Backup policies from the console: create one with the form, see it listed, delete it."""


from playwright.sync_api import expect


def _create_form(page):
    return page.locator("section").filter(has=page.get_by_role("heading", name="Create or update"))


def test_create_a_namespace_policy_then_delete_it(page):
    page.goto("/policies/")
    expect(page.get_by_role("heading", name="Backup policies")).to_be_visible()
    form = _create_form(page)
    form.get_by_label("Namespace").fill("browser-policy-ns")
    form.get_by_label("Every (hours)").fill("12")
    form.get_by_label("Keep newest").fill("7")
    form.get_by_label("Tags").fill("team=browser, nightly")
    expect(form.get_by_label("Enabled")).to_be_checked()
    form.get_by_role("button", name="Save policy").click()

    expect(page.locator(".messages li.success")).to_have_text("Policy browser-policy-ns created.")
    row = page.locator('tr[data-policy="browser-policy-ns"]')
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("browser-policy-ns")
    expect(cells.nth(1)).to_have_text("browser-policy-ns/every PVC")
    expect(cells.nth(2)).to_have_text("12")
    expect(cells.nth(3)).to_have_text("7")
    expect(cells.nth(4)).to_have_text("team=browser, nightly")
    expect(cells.nth(5)).to_have_text("enabled")

    row.get_by_role("button", name="Delete").click()
    # The plan first: the policy is still there until the deletion is confirmed.
    expect(page.locator('[data-plan="policy-delete"]')).to_contain_text("browser-policy-ns/every PVC")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator('tr[data-policy="browser-policy-ns"]')).to_have_count(1)
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete policy").click()
    expect(page.locator(".messages li.success")).to_have_text("Policy browser-policy-ns deleted.")
    expect(page.locator('tr[data-policy="browser-policy-ns"]')).to_have_count(0)


def test_saving_the_same_scope_again_updates_the_policy(page):
    page.goto("/policies/")
    for hours, verb in (("6", "created"), ("48", "updated")):
        form = _create_form(page)
        form.get_by_label("Namespace").fill("browser-policy-update")
        form.get_by_label("PVC (blank: all)").fill("data")
        form.get_by_label("Every (hours)").fill(hours)
        form.get_by_role("button", name="Save policy").click()
        expect(page.locator(".messages li.success")).to_have_text(f"Policy browser-policy-update.data {verb}.")
    row = page.locator('tr[data-policy="browser-policy-update.data"]')
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("48")
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete policy").click()
    expect(page.locator('tr[data-policy="browser-policy-update.data"]')).to_have_count(0)


def test_invalid_policy_is_refused_with_the_field_named(page):
    page.goto("/policies/")
    form = _create_form(page)
    form.get_by_label("Namespace").fill("Not_A_Namespace")
    form.get_by_label("Every (hours)").fill("12")
    form.get_by_role("button", name="Save policy").click()
    expect(page.locator(".messages li.error")).to_contain_text("namespace")
    expect(page.locator('tr[data-policy="Not_A_Namespace"]')).to_have_count(0)
