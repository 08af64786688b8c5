"""The Django admin at /admin/ in Chromium, through real gunicorn, behind the proxy (the test plays it).

Its own Soteria: admin and maintenance may do everything, only admin (the first, so
SOTERIA_ADMIN_GROUP's default) may use the admin; viewers view.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ADMIN, VIEWER
from tests.support.soteria import start_soteria, stop_soteria

ROOT = Path(__file__).resolve().parents[2]
# May run backups, restores and policies, but is not in the admin group.
OPERATOR = {"X-Auth-Request-User": "bob", "X-Auth-Request-Groups": "maintenance"}
CONSOLE_TOP_BAR = "rgb(29, 35, 48)"  # --top in soteria/brand.css

SEED = """
from datetime import timedelta
from django.utils import timezone
from django_q.models import Task
from soteria_site.core import schedules
from soteria_site.web.models import AuditEntry
names = schedules.upsert()
now = timezone.now()
Task.objects.create(id="0" * 31 + "1", name="metrics-refresh-failed", func=schedules.declared()[0].func,
                    args=(), kwargs={}, result="upstream timed out", started=now - timedelta(seconds=5),
                    stopped=now, success=False)
AuditEntry.objects.create(actor="bob", method="POST", action="backup.create", target="ai/llm-cache",
                          namespaces="|ai|", status=202, result="ok")
print(",".join(names))
"""


@pytest.fixture(scope="module")
def admin_server(sandbox, tmp_path_factory):
    server = start_soteria(sandbox, tmp_path_factory.mktemp("soteria-admin-data"), workers=1,
                           SOTERIA_AUTH_REQUIRED="true", SOTERIA_ALLOWED_GROUPS="admin,maintenance",
                           SOTERIA_READONLY_GROUPS="viewers", SOTERIA_TRUSTED_PROXIES="127.0.0.1/32")
    seeded = subprocess.run([sys.executable, "manage.py", "shell", "-c", SEED], cwd=ROOT, env=server.env,
                            capture_output=True, text=True, check=True, timeout=120)
    server.schedule_names = seeded.stdout.strip().splitlines()[-1].split(",")  # after shell's own notes
    yield server
    stop_soteria(server)


@pytest.fixture
def admin_page(new_context, admin_server):
    page = new_context(extra_http_headers=ADMIN).new_page()
    page.csp_errors = []
    page.on("console", lambda m: page.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    return page


def test_the_admin_wears_the_consoles_top_bar(admin_page, admin_server):
    response = admin_page.goto(admin_server.url + "/admin/")
    assert response.status == 200
    top = admin_page.locator("header.top")
    expect(top.locator("a.brand")).to_have_text("Soteria")
    expect(top.get_by_role("link", name="Admin")).to_have_attribute("aria-current", "page")
    expect(top.locator(".who")).to_have_text("alice")
    assert top.evaluate("e => getComputedStyle(e).backgroundColor") == CONSOLE_TOP_BAR
    for name in ("Audit entries", "Scheduled tasks", "Queued tasks", "Successful tasks", "Failed tasks", "Users",
                 "Groups"):
        expect(admin_page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    expect(admin_page.get_by_role("button", name="Log out")).to_have_count(0)
    # The console has the same bar, and offers the admin to its group.
    admin_page.goto(admin_server.url + "/restores/")
    assert admin_page.locator("header.top").evaluate("e => getComputedStyle(e).backgroundColor") == CONSOLE_TOP_BAR
    admin_page.locator("header.top").get_by_role("link", name="Admin").click()
    expect(admin_page).to_have_url(admin_server.url + "/admin/")
    assert admin_page.csp_errors == []


def test_the_audit_trail_is_read_only(admin_page, admin_server):
    admin_page.goto(admin_server.url + "/admin/soteria_site/auditentry/")
    row = admin_page.locator("#result_list tbody tr").filter(has_text="backup.create")
    expect(row).to_contain_text("bob")
    expect(row).to_contain_text("ai/llm-cache")
    expect(admin_page.get_by_role("link", name=re.compile("^Add audit entry"))).to_have_count(0)
    expect(admin_page.locator('select[name="action"]')).to_have_count(0)
    row.get_by_role("link").first.click()
    expect(admin_page.get_by_role("heading", name="View audit entry")).to_be_visible()
    expect(admin_page.locator('input[name="_save"]')).to_have_count(0)
    expect(admin_page.get_by_role("link", name="Delete")).to_have_count(0)


def test_schedules_and_tasks_are_listed(admin_page, admin_server):
    admin_page.goto(admin_server.url + "/admin/django_q/schedule/")
    for name in admin_server.schedule_names:
        expect(admin_page.locator("#result_list").get_by_role("link", name=name, exact=True)).to_be_visible()
    for path, heading in (("ormq", "queued task"), ("success", "successful task"), ("failure", "failed task")):
        response = admin_page.goto(f"{admin_server.url}/admin/django_q/{path}/")
        assert response.status == 200
        expect(admin_page.get_by_role("heading", name=re.compile(f"Select {heading} to", re.I))).to_be_visible()


def test_the_admin_group_resubmits_a_failed_task(admin_page, admin_server):
    admin_page.goto(admin_server.url + "/admin/django_q/failure/")
    row = admin_page.locator("#result_list tbody tr").filter(has_text="metrics-refresh-failed")
    row.locator('input[name="_selected_action"]').check()
    admin_page.locator('select[name="action"]').select_option("resubmit_task")
    with admin_page.expect_response(lambda r: r.request.method == "POST") as posted:
        admin_page.get_by_role("button", name="Go").click()
    assert posted.value.status == 302
    assert posted.value.request.post_data and "csrfmiddlewaretoken=" in posted.value.request.post_data
    expect(admin_page.locator("#result_list")).to_have_count(0)  # no failures left
    admin_page.goto(admin_server.url + "/admin/django_q/ormq/")
    expect(admin_page.locator("#result_list tbody tr")).to_have_count(1)
    admin_page.goto(admin_server.url + "/admin/soteria_site/auditentry/")
    row = admin_page.locator("#result_list tbody tr").filter(has_text="admin.django_q.failure.resubmit_task")
    expect(row).to_contain_text("alice")
    assert admin_page.csp_errors == []


@pytest.mark.parametrize("who", [OPERATOR, VIEWER], ids=["operator", "viewer"])
def test_identities_outside_the_admin_group_get_403(new_context, admin_server, who):
    page = new_context(extra_http_headers=who).new_page()
    for path in ("/admin/", "/admin/django_q/failure/", "/admin/login/"):
        response = page.goto(admin_server.url + path)
        assert response.status == 403, path
        expect(page.locator('input[type="password"]')).to_have_count(0)  # there is no login form
    page.goto(admin_server.url + "/admin/")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("only for members of the group")).to_be_visible()
    expect(page.locator("header.top").get_by_role("link", name="Admin")).to_have_count(0)


def test_without_identity_the_admin_answers_401(new_context, admin_server):
    page = new_context().new_page()
    response = page.goto(admin_server.url + "/admin/")
    assert response.status == 401
    expect(page.get_by_role("heading", name="Sign-in required")).to_be_visible()
    # Styled all the same: /static/ needs no identity.
    assert page.locator("header.top").evaluate("e => getComputedStyle(e).backgroundColor") == CONSOLE_TOP_BAR
