"""/static/ is public and answered by WhiteNoise before sessions, CSRF and identity."""

import pytest

pytestmark = pytest.mark.django_db

FILES = ["/static/soteria/brand.css", "/static/soteria/admin.css", "/static/soteria/console.css",
         "/static/soteria/console.js", "/static/rest_framework/css/bootstrap.min.css",
         "/static/rest_framework/js/csrf.js", "/static/admin/css/base.css"]


@pytest.mark.parametrize("path", FILES)
def test_static_files_need_no_identity(client, auth_on, denials, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(("text/css", "text/javascript", "application/javascript"))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert not response.cookies  # no session, no CSRF cookie
    assert denials.delta() == {}


def test_static_files_are_found_without_collecting(settings):
    assert settings.WHITENOISE_USE_FINDERS and not settings.STATIC_ROOT


def test_an_unknown_static_file_is_404_not_401(client, auth_on):
    assert client.get("/static/soteria/nothing.css").status_code == 404
