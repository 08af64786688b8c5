"""Every API error is JSON {"error", "detail", ...} with the documented status."""

import pytest
from django.http import Http404
from rest_framework import serializers
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from soteria_site.core import errors


class Input(serializers.Serializer):
    namespace = serializers.CharField()


def _view(exc):
    class Failing(APIView):
        def post(self, request):
            if exc == "validate":
                Input(data=request.data).is_valid(raise_exception=True)
            raise exc

    return Failing.as_view()


def _call(exc, data=None, content_type="application/json"):
    factory = APIRequestFactory()
    body = data if data is not None else "{}"
    return _view(exc)(factory.post("/v1/x", body, content_type=content_type))


@pytest.mark.parametrize("exc,status,code", [
    (errors.InvalidInput("pvc: not a valid name", field="pvc"), 400, "invalid_input"),
    (errors.NotFound("PVC ai/nope not found"), 404, "not_found"),
    (errors.Conflict("target PVC exists", existing="ai/x"), 409, "conflict"),
    (errors.UnsupportedDriver("not a Longhorn volume"), 422, "unsupported_driver"),
    (errors.UpstreamError("longhorn", "Longhorn failed"), 502, "longhorn_error"),
    (errors.UpstreamUnavailable("kubernetes", "unreachable"), 503, "kubernetes_unavailable"),
    (errors.UpstreamTimeout("longhorn", "slow"), 504, "longhorn_timeout"),
    (Http404("nothing here"), 404, "not_found"),
])
def test_soteria_errors_keep_status_and_stable_code(exc, status, code):
    response = _call(exc)
    assert response.status_code == status
    assert response.data["error"] == code
    assert response.data["detail"]


def test_extra_fields_travel_with_the_error():
    response = _call(errors.Conflict("target PVC exists", existing="ai/x"))
    assert response.data == {"error": "conflict", "detail": "target PVC exists", "existing": "ai/x"}


def test_validation_errors_name_the_field():
    response = _call("validate", data="{}")
    assert response.status_code == 400
    assert response.data["error"] == "invalid_input" and response.data["field"] == "namespace"
    assert response.data["detail"].startswith("namespace:")


def test_malformed_json_is_400_invalid_json():
    response = _call("validate", data="{not json")
    assert response.status_code == 400 and response.data["error"] == "invalid_json"


def test_wrong_content_type_is_415():
    response = _call("validate", data="namespace=ai", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.data["error"] == "unsupported_media_type"


def test_unexpected_exceptions_are_500_json_without_a_trace(caplog):
    response = _call(RuntimeError("secret internals"))
    assert response.status_code == 500
    assert response.data == {"error": "internal_error", "detail": "Internal error; see Soteria's log."}
    assert "secret internals" not in str(response.data)


def test_unknown_v1_path_is_a_json_404(client):
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No such endpoint: /v1/no-such-thing"}
