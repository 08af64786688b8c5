"""Plan, then confirm, in the browser on the sandbox: each console mutation shows its plan and
changes nothing until its explicit confirmation, and a plan the world changed is refused."""

import re

from playwright.sync_api import expect

from tests.support.kube import pvc_exists


def _backups(page, namespace: str, pvc: str) -> int:
    reply = page.request.get(f"/v1/backups?namespace={namespace}&pvc={pvc}")
    assert reply.ok, reply.text()
    return len(reply.json()["backups"])


def _claims(kube, namespace: str, prefix: str) -> list[str]:
    return sorted(p.metadata.name for p in kube.list_namespaced_persistent_volume_claim(namespace).items
                  if p.metadata.name.startswith(prefix))


def test_namespace_backup_plans_each_pvc_and_starts_only_when_confirmed(page):
    before = _backups(page, "media", "photos")
    page.goto("/?namespace=media")
    page.get_by_role("link", name="Back up namespace…").click()
    plan = page.locator('[data-plan="backup-namespace"]')
    expect(plan.locator('tr[data-pvc="photos"] .badge')).to_have_text("planned")
    expect(plan.locator('tr[data-pvc="transcode-cache"] .badge')).to_have_text("skipped")
    assert _backups(page, "media", "photos") == before  # the plan started nothing
    page.get_by_role("button", name="Start the backups").click()
    expect(page.locator(".messages li.success")).to_have_text("Namespace media: 1 backups started, 0 failed, 1 skipped.")
    assert _backups(page, "media", "photos") == before + 1


def test_namespace_restore_plans_every_pvc_and_queues_only_when_confirmed(page, kube):
    page.goto("/namespace/databases/restore")
    page.get_by_label("Target namespace").fill("databases")
    page.get_by_label("Name prefix").fill("browser-ns-")
    page.get_by_role("button", name="Review restore").click()
    plan = page.locator('[data-plan="restore-namespace"]')
    expect(plan.locator('tr[data-pvc="redis-data"] .badge')).to_have_text("planned")
    expect(plan.locator('tr[data-pvc="analytics-warehouse"] .badge')).to_have_text("skipped")
    assert _claims(kube, "databases", "browser-ns-") == []
    page.get_by_role("button", name="Restore now").click()
    result = page.locator("[data-result]")
    expect(result.get_by_role("heading")).to_contain_text(re.compile(r"Result: 0 planned, [1-9]\d* queued"))
    expect(result.locator('tr[data-pvc="redis-data"] .badge')).to_have_text("queued")


def test_a_restore_whose_target_appeared_after_the_plan_is_refused(page, kube):
    page.goto("/pvc/ai/llm-cache/")
    form = page.locator("section").filter(has=page.get_by_role("heading", name="Restore into a new PVC"))
    form.get_by_label("New PVC name").fill("browser-race-1")
    form.get_by_role("button", name="Review restore").click()
    expect(page.locator('[data-plan="restore"]')).to_be_visible()

    # Meanwhile someone else restores into the same name (through the API).
    other = page.request.post("/v1/restores", data={"namespace": "ai", "pvc": "model-store",
                                                     "target_pvc": "browser-race-1"})
    assert other.ok, other.text()
    page.get_by_role("button", name="Restore now").click()
    expect(page.locator(".messages li.error")).to_contain_text("target PVC ai/browser-race-1 already exists")
    expect(page.get_by_role("button", name="Restore now")).to_have_count(0)
    labels = kube.read_namespaced_persistent_volume_claim("browser-race-1", "ai").metadata.labels
    assert labels["soteria.io/restored-from"] == "ai.model-store"  # the other restore's claim, untouched


def test_the_restore_form_proposes_a_free_dated_name(page, kube):
    page.goto("/pvc/media/photos/")
    field = page.get_by_label("New PVC name")
    expect(field).to_have_value(re.compile(r"^photos-restore-\d{8}$"))
    assert not pvc_exists(kube, "media", field.input_value())
