"""Who may use the Django admin at /admin/, and what it lets them do (through Django's HTTP stack)."""

import pytest
from django.contrib.auth.models import User
from django_q.models import Failure, OrmQ, Schedule, Task

from soteria_site.web.models import AuditEntry
from tests.support.cast import CAST

pytestmark = pytest.mark.django_db

PAGES = ["/admin/", "/admin/soteria_site/auditentry/", "/admin/django_q/schedule/", "/admin/django_q/ormq/",
         "/admin/django_q/success/", "/admin/django_q/failure/", "/admin/auth/user/", "/admin/auth/group/"]


@pytest.fixture
def admin_on(auth_on):
    auth_on.SOTERIA_ADMIN_GROUP = "admin"
    return auth_on


def get(client, who, path):
    return client.get(path, **CAST[who].headers)


@pytest.mark.parametrize("path", PAGES)
def test_the_admin_group_sees_every_admin_page(client, admin_on, path):
    response = get(client, "admin", path)
    assert response.status_code == 200, path
    assert b"Soteria admin" in response.content


@pytest.mark.parametrize("who", ["maintenance", "viewer", "outsider", "token"])
def test_everyone_else_with_an_identity_gets_403_not_a_login_form(client, admin_on, denials, who):
    response = get(client, who, "/admin/")
    assert response.status_code == 403
    assert b"Not allowed" in response.content and b"login" not in response.content.lower()
    assert denials.delta() == {"permission_denied": 1}


def test_without_identity_the_admin_answers_401(client, admin_on):
    response = get(client, "nobody", "/admin/django_q/failure/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="soteria"'


def test_with_auth_off_the_admin_stays_closed(client):
    response = client.get("/admin/")
    assert response.status_code == 403
    assert b"SOTERIA_AUTH_REQUIRED=false" in response.content


@pytest.mark.parametrize("path", ["/admin/login/", "/admin/logout/", "/admin/password_change/"])
def test_there_are_no_session_pages(client, admin_on, path):
    assert get(client, "admin", path).status_code == 404


def test_the_admin_group_follows_the_setting(client, admin_on):
    admin_on.SOTERIA_ADMIN_GROUP = "maintenance"
    assert get(client, "maintenance", "/admin/").status_code == 200
    assert get(client, "admin", "/admin/").status_code == 403


def test_the_audit_trail_users_and_groups_are_read_only(client, admin_on):
    entry = AuditEntry.objects.create(actor="bob", method="POST", action="backup.create", status=202, result="ok")
    get(client, "viewer", "/v1/whoami")  # mirrors dave
    dave = User.objects.get(username="dave")
    for path in (f"/admin/soteria_site/auditentry/{entry.pk}/change/", f"/admin/auth/user/{dave.pk}/change/"):
        page = get(client, "admin", path)
        assert page.status_code == 200 and b'name="_save"' not in page.content
    for path in ("/admin/soteria_site/auditentry/add/", "/admin/auth/user/add/", "/admin/auth/group/add/",
                 f"/admin/soteria_site/auditentry/{entry.pk}/delete/"):
        assert get(client, "admin", path).status_code == 403, path
    changed = client.post(f"/admin/auth/user/{dave.pk}/change/", {"username": "eve"}, **CAST["admin"].headers)
    assert changed.status_code == 403
    assert User.objects.filter(username="dave").exists()


def _failed_task() -> Task:
    return Task.objects.create(id="f" * 32, name="failed-one", func="soteria_site.core.schedules.declared",
                               args=(), kwargs={}, result="boom", started="2026-11-29T00:00:00Z",
                               stopped="2026-11-29T00:00:01Z", success=False)


def test_resubmitting_a_failed_task_queues_it_and_is_audited(client, admin_on):
    task = _failed_task()
    page = get(client, "admin", "/admin/django_q/failure/")
    assert b"resubmit_task" in page.content
    response = client.post("/admin/django_q/failure/", {"action": "resubmit_task", "_selected_action": [task.pk]},
                           **CAST["admin"].headers)
    assert response.status_code == 302
    assert not Failure.objects.exists()
    assert OrmQ.objects.count() == 1
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target, entry.status, entry.result) == (
        "alice", "admin.django_q.failure.resubmit_task", f"failure {task.pk}", 302, "ok")


def test_admin_posts_need_the_csrf_token(admin_on):
    from django.test import Client

    task = _failed_task()
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/admin/django_q/failure/", {"action": "resubmit_task", "_selected_action": [task.pk]},
                           **CAST["admin"].headers)
    assert response.status_code == 403
    assert Failure.objects.filter(pk=task.pk).exists() and not AuditEntry.objects.exists()


def test_a_schedule_changes_only_when_and_how_often_it_runs(client, admin_on):
    schedule = Schedule.objects.create(name="policy-eval", func="policies.tasks.evaluate", minutes=5,
                                       schedule_type=Schedule.MINUTES, repeats=-1)
    page = get(client, "admin", f"/admin/django_q/schedule/{schedule.pk}/change/")
    assert b'name="minutes"' in page.content and b'name="func"' not in page.content
    response = client.post(f"/admin/django_q/schedule/{schedule.pk}/change/",
                           {"minutes": "15", "repeats": "-1", "next_run_0": "2026-11-30", "next_run_1": "01:00:00",
                            "func": "os.system"}, **CAST["admin"].headers)
    assert response.status_code == 302, response.content[-2000:]
    schedule.refresh_from_db()
    assert (schedule.minutes, schedule.func) == (15, "policies.tasks.evaluate")
    assert AuditEntry.objects.get().action == "admin.django_q.schedule.change"
    assert get(client, "admin", "/admin/django_q/schedule/add/").status_code == 403
