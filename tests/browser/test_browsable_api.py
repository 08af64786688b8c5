"""DRF's browsable API under real gunicorn: styled from /static/ through WhiteNoise, within the
Content-Security-Policy, and its raw-data form posts JSON for an identity with the rights
(the proxy-authenticated Soteria of tests/browser/conftest.py: admin may everything, viewers view)."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.support.browser import ADMIN, VIEWER

POLICY = {"namespace": "ai", "pvc": "browsable-api-check", "interval_hours": 48}
POLICY_ID = "ai.browsable-api-check"


def _watch(page) -> tuple[list[str], list]:
    """Console errors (CSP refusals among them; not the browser's own favicon request) and every
    /static/ response of the page."""
    errors, statics = [], []

    def console(message):
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("response", lambda response: statics.append(response) if "/static/" in response.url else None)
    return errors, statics


def _send_from_page(page, method: str, path: str, body: dict | None = None) -> int:
    """A request from the page's own script context, with the CSRF token DRF put in the page."""
    return page.evaluate("""async ([method, path, body]) => {
        const csrf = JSON.parse(document.getElementById('drf_csrf').textContent);
        const headers = {[csrf.csrfHeaderName]: csrf.csrfToken, 'Accept': 'application/json'};
        if (body !== null) headers['Content-Type'] = 'application/json';
        const response = await fetch(path, {method, headers, body: body === null ? undefined : JSON.stringify(body)});
        return response.status;
    }""", [method, path, body])


def test_the_browsable_api_is_styled_within_the_content_security_policy(new_context, auth_server):
    page = new_context(extra_http_headers=ADMIN).new_page()
    errors, statics = _watch(page)
    response = page.goto(auth_server.url + "/v1/whoami")
    assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    expect(page.locator(".navbar .navbar-brand")).to_have_text("Soteria API")
    page.wait_for_load_state("load")
    bootstrap = [r for r in statics if r.url.endswith("/static/rest_framework/css/bootstrap.min.css")]
    assert bootstrap and bootstrap[0].status == 200
    assert {r.status for r in statics} == {200}, [(r.url, r.status) for r in statics]
    # Bootstrap applied: the navbar is dark and the content sits in a fixed-width container.
    navbar = page.locator(".navbar").evaluate("e => getComputedStyle(e).backgroundColor")
    assert navbar not in ("rgba(0, 0, 0, 0)", "transparent"), navbar
    assert page.locator(".container").first.evaluate("e => getComputedStyle(e).marginLeft") != "0px"
    # jQuery and DRF's scripts ran (the format dropdown is Bootstrap's, wired by its script).
    assert page.evaluate("typeof window.jQuery") == "function"
    assert errors == []


def test_only_drfs_own_inline_style_attribute_is_allowed(new_context, auth_server):
    """DRF floats its Extra Actions and Filters buttons with one inline style attribute; the
    policy allows that exact value by hash and refuses any other."""
    page = new_context(extra_http_headers=ADMIN).new_page()
    page.goto(auth_server.url + "/v1/whoami")
    floats = page.evaluate("""() => ['float: right; margin-right: 10px', 'float: left; margin-right: 10px'].map(css => {
        const e = document.createElement('div');
        e.setAttribute('style', css);
        document.body.appendChild(e);
        return getComputedStyle(e).cssFloat;
    })""")
    assert floats == ["right", "none"]


def test_an_operator_creates_a_policy_from_the_raw_data_form(new_context, auth_server):
    context = new_context(extra_http_headers=ADMIN)
    page = context.new_page()
    errors, _ = _watch(page)
    page.goto(auth_server.url + "/v1/policies")
    assert any(c["name"] == "csrftoken" for c in context.cookies())
    form = page.locator("#post-generic-content-form form")
    expect(form.get_by_label("Media type:")).to_have_value("application/json")
    form.get_by_label("Content:").fill(json.dumps(POLICY))
    try:
        with page.expect_response(lambda r: r.url.endswith("/v1/policies") and r.request.method == "POST") as posted:
            form.get_by_role("button", name="POST").click()
        reply = posted.value
        assert reply.status in (200, 201), reply.text()
        assert reply.request.headers["content-type"] == "application/json"
        assert reply.request.headers["x-csrftoken"]
        # The page shows DRF's answer, still styled.
        expect(page.locator(".response-info")).to_contain_text(POLICY_ID)
        expect(page.locator(".navbar .navbar-brand")).to_have_text("Soteria API")
        assert errors == []
    finally:
        page.goto(auth_server.url + "/v1/policies")
        # A DELETE has no JSON body: it passes only with the page's CSRF token and cookie.
        assert _send_from_page(page, "DELETE", f"/v1/policies/{POLICY_ID}") == 200


def test_a_viewer_gets_no_form_and_its_json_post_is_refused(new_context, auth_server):
    page = new_context(extra_http_headers=VIEWER).new_page()
    response = page.goto(auth_server.url + "/v1/policies")
    assert response.status == 200
    expect(page.locator(".navbar .navbar-brand")).to_have_text("Soteria API")
    expect(page.locator("#post-generic-content-form")).to_have_count(0)
    expect(page.get_by_role("button", name="POST")).to_have_count(0)
    assert _send_from_page(page, "POST", "/v1/policies", POLICY) == 403
