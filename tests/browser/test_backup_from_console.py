"""Backing up a PVC from its console page, and reading its backups there."""

import re
from datetime import datetime

from playwright.sync_api import expect

from tests.support.browser import reload_until

SUCCESS = re.compile(r"Backup (soteria-backup-ai-llm-cache-\d{8}-\d{6}) of volume (pvc-[0-9a-f-]+) started\.")


def _created(page) -> list[datetime]:
    cells = page.locator("tr[data-backup] td:nth-child(3)").all_inner_texts()
    return [datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S") for text in cells]


def _backup_section(page):
    return page.locator("section").filter(has=page.get_by_role("heading", name="Back up now"))


def test_pvc_page_lists_backups_newest_first(page):
    page.goto("/pvc/ai/model-store/")
    expect(page.get_by_role("heading", level=1)).to_have_text("ai / model-store")
    expect(page.get_by_role("heading", name=re.compile(r"^Backups \(\d+\)$"))).to_be_visible()
    expect(page.get_by_role("columnheader", name="Created (UTC)")).to_be_visible()
    created = _created(page)
    assert len(created) >= 3
    assert created == sorted(created, reverse=True)
    expect(page.locator("tr[data-backup] .badge").first).to_have_text("Completed")


def test_back_up_now_with_tags_starts_a_backup_that_completes(page):
    page.goto("/pvc/ai/llm-cache/")
    before = page.locator("tr[data-backup]").count()
    form = _backup_section(page)
    form.get_by_label("Tags").fill("reason=browser-test, pre-upgrade")
    form.get_by_role("button", name="Review backup").click()
    plan = page.locator('[data-plan="backup"]')
    expect(plan).to_contain_text("reason=browser-test")
    page.get_by_role("button", name="Start backup").click()

    message = page.locator(".messages li.success")
    expect(message).to_have_text(SUCCESS)
    snapshot = SUCCESS.search(message.inner_text()).group(1)
    expect(page).to_have_url(re.compile(r"/pvc/ai/llm-cache/$"))

    row = page.locator("tr[data-backup]").filter(has_text=snapshot)
    reload_until(page, lambda: row.count() == 1 and row.locator(".badge").inner_text() == "Completed",
                 what=f"backup {snapshot} to be Completed")
    assert page.locator("tr[data-backup]").count() == before + 1
    # Newest first: the new backup heads the table, with the tags as labels.
    expect(page.locator("tr[data-backup]").first).to_contain_text(snapshot)
    labels = row.locator("td").nth(5)
    expect(labels).to_contain_text("reason=browser-test")
    expect(labels).to_contain_text("pre-upgrade=true")
    # Longhorn's own labels (a KubernetesStatus JSON blob, longhorn.io/...) are not the operator's tags.
    expect(labels).not_to_contain_text("KubernetesStatus")
    expect(labels).not_to_contain_text("longhorn.io/")


def test_the_backup_plan_says_what_would_happen_and_cancelling_starts_nothing(page):
    page.goto("/pvc/ai/notebooks/")
    expect(page.get_by_text("No backups yet.")).to_be_visible()
    _backup_section(page).get_by_role("button", name="Review backup").click()
    plan = page.locator('[data-plan="backup"]')
    expect(plan).to_contain_text(re.compile(r"soteria-backup-ai-notebooks-\d{8}-\d{6}"))
    expect(plan).to_contain_text(re.compile(r"pvc-[0-9a-f-]+"))
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(r"/pvc/ai/notebooks/$"))
    expect(page.get_by_text("No backups yet.")).to_be_visible()


def test_invalid_tag_is_refused_with_a_message(page):
    page.goto("/pvc/ai/notebooks/")
    form = _backup_section(page)
    form.get_by_label("Tags").fill("bad key!=x")
    form.get_by_role("button", name="Review backup").click()
    expect(page.locator(".messages li.error")).to_contain_text("Backup refused: tags[0]")
    expect(page.get_by_text("No backups yet.")).to_be_visible()


def test_backup_of_an_unsupported_volume_is_refused_with_the_reason(page):
    page.goto("/pvc/media/transcode-cache/")
    expect(page.locator(".panel strong")).to_contain_text("is not a Longhorn volume")
    expect(page.get_by_role("button", name="Review backup")).to_have_count(0)
