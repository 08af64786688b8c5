"""The console behind the authenticating proxy: the test plays the proxy with extra HTTP headers
on a second Soteria (SOTERIA_AUTH_REQUIRED=true, admin: everything, viewers: read-only)."""

from __future__ import annotations

import html
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.support.browser import ADMIN, VIEWER, reload_until


def test_without_identity_headers_the_console_asks_to_sign_in(new_context, auth_server):
    page = new_context().new_page()
    for path in ("/", "/pvc/ai/llm-cache/", "/policies/"):
        response = page.goto(auth_server.url + path)
        assert response.status == 401
        expect(page.get_by_role("heading", name="Sign-in required")).to_be_visible()
        expect(page).to_have_title("Sign-in required · Soteria")
        expect(page.get_by_text("no identity headers and no bearer token")).to_be_visible()
        expect(page.locator("section[data-namespace]")).to_have_count(0)


def test_viewer_sees_the_inventory_but_no_backup_or_restore_forms(new_context, auth_server):
    page = new_context(extra_http_headers=VIEWER).new_page()
    response = page.goto(auth_server.url + "/")
    assert response.status == 200
    expect(page.locator("header .who")).to_have_text("dave")
    for namespace in ("ai", "databases", "media"):  # one namespace a page: other tests' PVCs fill pages
        page.goto(f"{auth_server.url}/?namespace={namespace}")
        expect(page.locator(f'section[data-namespace="{namespace}"]')).to_be_visible()
    expect(page.get_by_role("link", name="Back up namespace…")).to_have_count(0)

    response = page.goto(auth_server.url + "/pvc/ai/llm-cache/")
    assert response.status == 200
    expect(page.get_by_role("heading", name=re.compile(r"^Backups \(\d+\)$"))).to_be_visible()
    expect(page.get_by_role("heading", name="Back up now")).to_have_count(0)
    expect(page.get_by_role("button", name="Review backup")).to_have_count(0)
    expect(page.get_by_role("heading", name="Restore into a new PVC")).to_have_count(0)

    page.goto(auth_server.url + "/policies/")
    expect(page.get_by_role("heading", name="Backup policies")).to_be_visible()
    expect(page.get_by_role("button", name="Save policy")).to_have_count(0)


def test_admin_backs_up_from_the_console_with_the_forms_csrf_token(new_context, auth_server):
    page = new_context(extra_http_headers=ADMIN).new_page()
    page.goto(auth_server.url + "/pvc/databases/redis-data/")
    expect(page.locator("header .who")).to_have_text("alice")
    form = page.locator("section").filter(has=page.get_by_role("heading", name="Back up now"))
    expect(form.locator('input[name="csrfmiddlewaretoken"]')).to_have_count(1)
    form.get_by_label("Tags").fill("reason=browser-admin")
    with page.expect_response(lambda r: r.url.endswith("/pvc/databases/redis-data/backup")) as planned:
        form.get_by_role("button", name="Review backup").click()
    assert planned.value.status == 200  # the plan (a CSRF failure would be 403)
    with page.expect_response(lambda r: r.url.endswith("/pvc/databases/redis-data/backup")) as posted:
        page.get_by_role("button", name="Start backup").click()
    assert posted.value.status == 302  # confirmed, then back to the PVC page

    success = re.compile(r"Backup (soteria-backup-databases-redis-data-\d{8}-\d{6}) of volume \S+ started\.")
    message = page.locator(".messages li.success")
    expect(message).to_have_text(success)
    snapshot = success.search(message.inner_text()).group(1)
    row = page.locator("tr[data-backup]").filter(has_text=snapshot)
    reload_until(page, lambda: row.count() == 1 and row.locator(".badge").inner_text() == "Completed",
                 what=f"backup {snapshot} to be Completed")

    page.goto(auth_server.url + "/activity/")
    entry = page.locator("table.recent tbody tr").filter(has_text="databases/redis-data").filter(has_text="backup.create").first
    expect(entry.locator("td").nth(1)).to_have_text("alice")
    expect(entry.locator("td").nth(4)).to_have_text("ok")


def _api_form(soteria: str) -> str:
    # The classic JSON CSRF: a text/plain form whose body reads as JSON.
    name = html.escape('{"namespace": "media", "pvc": "photos", "tags": ["cross-site"], "pad": "')
    return (f'<form method="post" action="{soteria}/v1/backup" enctype="text/plain">'
            f'<input name="{name}" value="&quot;}}"></form>')


def _console_form(soteria: str) -> str:
    return (f'<form method="post" action="{soteria}/pvc/media/photos/backup">'
            f'<input name="tags" value="cross-site"></form>')


@pytest.fixture
def other_origin():
    """A page from another origin (another loopback port) that submits a form as soon as it loads."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(form: str) -> str:
        pages["/attack.html"] = f"<!doctype html><body onload=\"document.forms[0].submit()\">{form}</body>"
        return f"http://127.0.0.1:{server.server_address[1]}/attack.html"

    yield serve
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _backups(context, soteria: str) -> list[dict]:
    """media/photos' backups, read through the API as the admin (a new one is listed as soon as it starts)."""
    response = context.request.get(f"{soteria}/v1/backups?namespace=media&pvc=photos")
    assert response.status == 200, response.text()
    return response.json()["backups"]


@pytest.mark.parametrize(("form", "endpoint", "refusal"), [
    (_api_form, "/v1/backup", "CSRF check failed: Origin checking failed"),
    (_console_form, "/pvc/media/photos/backup", "CSRF verification failed"),
], ids=["api", "console"])
def test_cross_site_form_post_with_admin_headers_is_refused(new_context, auth_server, other_origin, form, endpoint,
                                                            refusal):
    context = new_context(extra_http_headers=ADMIN)
    page = context.new_page()
    # The admin has the console open (so the browser holds Soteria's CSRF cookie) ...
    page.goto(auth_server.url + "/pvc/media/photos/")
    expect(page.get_by_role("button", name="Review backup")).to_be_visible()
    before = _backups(context, auth_server.url)

    # ... and then opens a page elsewhere that posts to Soteria; the proxy would add the headers.
    attack = other_origin(form(auth_server.url))
    with page.expect_response(lambda r: r.url == auth_server.url + endpoint and r.request.method == "POST") as posted:
        page.goto(attack)
    response = posted.value
    assert response.status == 403
    assert response.request.headers.get("origin") == attack.rsplit("/", 1)[0]
    assert refusal in response.text()
    after = _backups(context, auth_server.url)
    assert len(after) == len(before)
    assert not [b for b in after if "cross-site" in (b.get("labels") or {})]


def test_same_origin_json_from_the_console_is_accepted(new_context, auth_server):
    """The control for the cross-site test: the same admin, from Soteria's own origin, may post JSON."""
    page = new_context(extra_http_headers=ADMIN).new_page()
    page.goto(auth_server.url + "/")
    result = page.evaluate("""async () => {
        const r = await fetch("/v1/backup", {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify({namespace: "media", pvc: "photos", dry_run: true})});
        return {status: r.status, body: await r.json()};
    }""")
    assert result["status"] == 200, json.dumps(result)
    assert result["body"]["dry_run"] is True
