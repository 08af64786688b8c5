"""Swapping a finished restore into place under its Deployment from the console, and undoing it."""

import re

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from sandbox import seed
from tests.support.browser import WIDTHS, check_page, reload_until, screenshot_dir
from tests.support.http import http_json
from tests.support.kube import apps, kube, pod_template, workload_settled
from tests.support.polling import wait_for

NS = "browser-swap"


def _claim_name(sandbox) -> str:
    volumes = apps(sandbox).read_namespaced_deployment("site", NS).spec.template.spec.volumes
    return next(v.persistent_volume_claim.claim_name for v in volumes if v.persistent_volume_claim)


def _at_both_widths(page, name, screenshots):
    """The swap page fits a desktop window and a phone, passes axe-core, and is photographed."""
    axe = Axe()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": WIDTHS[width]})
        check_page(page, axe, screenshots, name, width)
    page.set_viewport_size({"width": 1024, "height": 800})


def test_a_restore_is_swapped_into_place_step_by_step_and_undone(page, sandbox, soteria_server, tmp_path_factory):
    screenshots = screenshot_dir(tmp_path_factory)
    base = soteria_server.url
    seed.make_pvc(sandbox, NS, "site-data", files={"index.html": "v1\n"})
    assert http_json(f"{base}/v1/backup", "POST", {"namespace": NS, "pvc": "site-data"})[0] == 200
    wait_for(lambda: any(b["state"] == "Completed" for b in
                         http_json(f"{base}/v1/backups?namespace={NS}&pvc=site-data")[1]["backups"]), what="backup")
    status, body = http_json(f"{base}/v1/restores", "POST", {"namespace": NS, "pvc": "site-data",
                                                             "target_pvc": "site-data-restored"})
    assert status == 200, body
    apps(sandbox).create_namespaced_deployment(NS, {
        "metadata": {"name": "site"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "site"}},
                 "template": pod_template("site", [{"name": "data",
                                                    "persistentVolumeClaim": {"claimName": "site-data"}}],
                                          [{"name": "data", "mountPath": "/data"}])}})
    wait_for(lambda: workload_settled(sandbox, NS, "Deployment", "site", 1), 60, what="site running")

    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(f"/restores/?namespace={NS}")
    row = page.locator(f'tr[data-pvc="{NS}/site-data-restored"]')
    reload_until(page, lambda: row.locator(".badge").inner_text() == "done", what="the restore to be done")
    # The PV controller binds the claim a moment after the restore is done; a swap wants it Bound.
    wait_for(lambda: kube(sandbox).read_namespaced_persistent_volume_claim("site-data-restored", NS).status.phase
             == "Bound", 60, what="the restored claim to bind")
    row.get_by_role("link", name="Swap into place").click()

    expect(page.get_by_role("heading", name=re.compile(r"^Plan: Deployment browser-swap\/site, PVC site-data"))) \
        .to_be_visible()
    expect(page.locator("tr[data-step]")).to_have_count(6)
    expect(page.locator("tr[data-step] .badge")).to_have_text(["planned"] * 6)
    # The plan's long step descriptions wrap: no sideways scrolling in a 1024 px window.
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    _at_both_widths(page, "swap-plan", screenshots)
    page.get_by_role("button", name="Swap into place").click()  # not confirmed
    expect(page.get_by_text("Nothing was changed: tick the confirmation to go ahead.")).to_be_visible()
    assert _claim_name(sandbox) == "site-data"

    page.get_by_label(re.compile("I have read the plan")).check()
    page.get_by_role("button", name="Swap into place").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Swapped: Deployment browser-swap\/site"))).to_be_visible()
    expect(page.locator("#steps tr[data-step] .badge")).to_have_text(["done"] * 6)
    assert _claim_name(sandbox) == "site-data-restored"
    assert apps(sandbox).read_namespaced_deployment("site", NS).spec.replicas == 1
    _at_both_widths(page, "swap-done", screenshots)

    page.get_by_label(re.compile("put the previous claim back")).check()
    page.get_by_role("button", name="Undo the swap").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Undone: Deployment browser-swap\/site"))).to_be_visible()
    expect(page.locator("#steps tr[data-step] .badge")).to_have_text(["done"] * 6)
    assert _claim_name(sandbox) == "site-data"
    expect(page.get_by_role("button", name="Undo the swap")).to_have_count(0)
