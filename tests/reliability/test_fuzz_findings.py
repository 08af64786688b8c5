"""What fuzzing the API found (tests/reliability/test_fuzz_api.py), pinned down case by case
against Soteria under gunicorn on the sandbox, so none of it comes back unnoticed."""

from __future__ import annotations

import json

import pytest

from tests.support.http import call

LIST_FILTERS = [("/v1/inventory", "?namespace="), ("/v1/restores", "?namespace="),
                ("/v1/restore-drills", "?namespace=&pvc=")]


@pytest.mark.parametrize("path,blank", LIST_FILTERS)
def test_a_blank_list_filter_lists_everything_as_the_schema_allows(soteria_server, path, blank):
    """`?namespace=` (an HTML form's empty filter) means no filter; the schema said a
    namespace filter had at least one character while the API answered 200."""
    unfiltered = call(soteria_server.url, "GET", path)
    filtered = call(soteria_server.url, "GET", path + blank)
    assert filtered.status == unfiltered.status == 200, filtered.text
    key = {"/v1/inventory": "namespaces", "/v1/restores": "restores", "/v1/restore-drills": "drills"}[path]
    assert [row.get("name") or row.get("namespace") for row in filtered.json()[key]] == \
        [row.get("name") or row.get("namespace") for row in unfiltered.json()[key]]

    schema = call(soteria_server.url, "GET", "/v1/openapi?format=json").json()
    for parameter in schema["paths"][path]["get"]["parameters"]:
        assert "minLength" not in parameter["schema"], parameter


def test_an_invalid_filter_is_still_refused(soteria_server):
    reply = call(soteria_server.url, "GET", "/v1/inventory?namespace=Not_A_Name")
    assert reply.status == 400 and reply.json()["field"] == "namespace", reply.text


@pytest.mark.parametrize("path", ["/v1/inventory", "/v1/backups"])
def test_a_request_line_over_gunicorns_limit_is_a_documented_json_414(soteria_server, path):
    """gunicorn refuses a request line over 4094 bytes before Soteria sees it; it answered an
    HTML page with a status the schema did not list."""
    reply = call(soteria_server.url, "GET", f"{path}?namespace={'a' * 5000}")
    assert reply.status == 414
    assert reply.headers["content-type"] == "application/json"
    assert json.loads(reply.body)["error"] == "uri_too_long"
    schema = call(soteria_server.url, "GET", "/v1/openapi?format=json").json()
    assert "414" in schema["paths"][path]["get"]["responses"]
