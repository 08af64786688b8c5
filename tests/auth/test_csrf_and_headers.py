"""CSRF for cookie-borne (proxy-header) requests, trusted proxies, and header spelling."""

import ipaddress

import pytest

from tests.support.cast import CAST

pytestmark = pytest.mark.django_db

BODY = {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}


@pytest.fixture
def csrf_client(client):
    from django.test import Client

    return Client(enforce_csrf_checks=True)


@pytest.mark.parametrize("content_type,data", [
    ("application/x-www-form-urlencoded", "namespace=ai&pvc=llm-cache"),
    ("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"namespace\"\r\n\r\nai\r\n--x--"),
    ("text/plain", '{"namespace": "ai", "pvc": "llm-cache"}'),
])
def test_cross_site_form_posts_are_refused(csrf_client, auth_on, world, denials, content_type, data):
    response = csrf_client.post("/v1/backup", data, content_type=content_type, **CAST["admin"].headers)
    assert response.status_code == 403
    assert world.mutating_calls == {}
    assert denials.delta() == {"csrf": 1}


def test_json_from_our_own_origin_or_without_origin_is_accepted(csrf_client, auth_on, world):
    ok = csrf_client.post("/v1/backup", BODY, content_type="application/json", **CAST["admin"].headers)
    assert ok.status_code == 200
    same = csrf_client.post("/v1/backup", BODY, content_type="application/json", HTTP_ORIGIN="http://testserver",
                            **CAST["admin"].headers)
    assert same.status_code == 200


def test_json_from_another_origin_is_refused(csrf_client, auth_on, world, denials):
    response = csrf_client.post("/v1/backup", BODY, content_type="application/json",
                                HTTP_ORIGIN="https://evil.example", **CAST["admin"].headers)
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert denials.delta() == {"csrf": 1}


def test_a_form_post_with_a_valid_csrf_token_is_accepted(csrf_client, auth_on, world):
    csrf_client.get("/pvc/ai/llm-cache/", **CAST["admin"].headers)  # a page with forms sets the CSRF cookie
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post("/pvc/ai/llm-cache/backup", {"tags": "", "csrfmiddlewaretoken": token},
                                **CAST["admin"].headers)
    assert response.status_code == 200 and b'data-plan="backup"' in response.content  # the plan, nothing started
    assert world.mutating_calls == {}


def test_bearer_token_requests_are_exempt_from_csrf(csrf_client, auth_on, world):
    response = csrf_client.post("/v1/backup", "namespace=ai", content_type="text/plain", **CAST["token"].headers)
    assert response.status_code == 415  # past authentication: refused only for its media type


def test_headers_from_an_untrusted_peer_are_ignored_and_counted(client, auth_on, world, denials, settings):
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    response = client.get("/v1/inventory", REMOTE_ADDR="192.168.1.5", **CAST["admin"].headers)
    assert response.status_code == 401
    trusted = client.get("/v1/inventory", REMOTE_ADDR="10.1.2.3", **CAST["admin"].headers)
    assert trusted.status_code == 200
    assert denials.delta() == {"untrusted_proxy": 1, "no_identity": 1}
