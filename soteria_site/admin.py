"""The Django admin at /admin/: the audit trail, django-q2's schedules and tasks, and the users
and groups mirrored from the proxy, for identities in SOTERIA_ADMIN_GROUP (docs/auth.md).

Who may use it is decided once, by the site, from the request's identity
(soteria_site.web.access.may_administer); Django's per-model permission rows are not used.
There is no login, logout or password page: the proxy sends the identity with every
request, so a request without one gets the usual 401 and an identity outside the admin
group gets 403. Every change made here (a resubmitted task, an edited schedule) is audited
like the API's mutations; Django's own CSRF protection covers every form.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, User
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from .web import access, audit
from .web.identity import identity_of
from .web.models import AuditEntry

# Pages of a session-based admin that mean nothing behind an authenticating proxy.
SESSION_PAGES = frozenset({"login", "logout", "password_change", "password_change_done"})


class SoteriaAdminSite(admin.AdminSite):
    site_header = site_title = "Soteria admin"
    index_title = "Administration"
    site_url = "/"

    def has_permission(self, request) -> bool:
        return access.may_administer(identity_of(request))

    def get_urls(self):
        return [u for u in super().get_urls() if getattr(u, "name", None) not in SESSION_PAGES]

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def guarded(request, *args, **kwargs):
            response = inner(request, *args, **kwargs) if self.has_permission(request) else self.refuse(request)
            if request.method not in audit.SAFE and identity_of(request).method != "anonymous" \
                    and response.status_code != 200:  # 200 to a POST: a form with errors, a confirmation
                action, target = _audit_names(view, request, kwargs)
                audit.record(request, action, response.status_code, None, target)
            return response

        return guarded

    def refuse(self, request):
        """403, never a redirect to a login form: there is none."""
        identity = identity_of(request)
        access.deny("no_identity" if identity.method == "anonymous" else "permission_denied")
        response = render(request, "denied.html", {"status": 403, "reason": "not_admin", "identity": identity,
                                                   "admin_group": settings.SOTERIA_ADMIN_GROUP},
                          status=403)
        add_never_cache_headers(response)
        return response


def _audit_names(view, request, kwargs) -> tuple[str, str]:
    """("admin.<app>.<model>.<change|delete|action name>", "<model> <ids>") for the audit trail."""
    model_admin = getattr(view, "__self__", None)
    opts = getattr(model_admin, "opts", None)
    if opts is None:
        return f"admin.{getattr(view, '__name__', 'view')}", ""
    verb = getattr(view, "__name__", "view").removesuffix("_view")
    if verb == "changelist":  # an action on the selected rows
        verb = request.POST.get("action") or verb
    ids = kwargs.get("object_id") or ",".join(request.POST.getlist(ACTION_CHECKBOX_NAME))
    return f"admin.{opts.app_label}.{opts.model_name}.{verb}", f"{opts.model_name} {ids}".strip()


site = SoteriaAdminSite(name="admin")


class AdminGroupOnly:
    """Model permissions follow the site's one decision. `may_change` and `may_delete` say what
    the admin group may do to rows here; nobody adds rows through the admin."""

    may_change = False
    may_delete = False

    def has_module_permission(self, request):
        return self.admin_site.has_permission(request)

    def has_view_permission(self, request, obj=None):
        return self.admin_site.has_permission(request)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return self.may_change and self.admin_site.has_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.may_delete and self.admin_site.has_permission(request)


@admin.register(AuditEntry, site=site)
class AuditEntryAdmin(AdminGroupOnly, admin.ModelAdmin):
    """The audit trail, read-only."""

    list_display = ("at", "actor", "method", "action", "target", "status", "result")
    list_filter = ("result", "method")
    search_fields = ("actor", "action", "target", "detail")
    date_hierarchy = "at"
    fields = ("at", "actor", "method", "action", "target", "namespaces", "status", "result", "detail")
    readonly_fields = fields


@admin.register(Schedule, site=site)
class ScheduleAdmin(AdminGroupOnly, q_admin.ScheduleAdmin):
    """Soteria's schedules. Only when and how often they run may change here: what they call
    (func, args, hook) stays as declared in code (soteria_site/core/schedules.py), since a
    schedule's function runs in the worker with Soteria's ServiceAccount. The worker puts the
    interval back at its next start."""

    may_change = True
    editable = ("next_run", "repeats", "minutes")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Schedule._meta.fields if f.name not in self.editable]


@admin.register(OrmQ, site=site)
class QueuedTaskAdmin(AdminGroupOnly, q_admin.QueueAdmin):
    """Tasks waiting for the worker; a stuck one may be deleted."""

    may_delete = True
    readonly_fields = q_admin.QueueAdmin.fields


@admin.register(Success, site=site)
class SuccessfulTaskAdmin(AdminGroupOnly, q_admin.TaskAdmin):
    may_delete = True


@admin.register(Failure, site=site)
class FailedTaskAdmin(AdminGroupOnly, q_admin.FailAdmin):
    """Failed tasks, with django-q2's action that queues them again."""

    may_delete = True


@admin.register(User, site=site)
class MirroredUserAdmin(AdminGroupOnly, admin.ModelAdmin):
    """Users as the proxy sent them, read-only: the proxy, not this page, decides who is who."""

    list_display = ("username", "email", "group_names", "date_joined")
    list_filter = ("groups",)
    search_fields = ("username", "email")
    fields = ("username", "email", "group_names", "date_joined")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="groups")
    def group_names(self, user) -> str:
        return ", ".join(sorted(g.name for g in user.groups.all()))


@admin.register(Group, site=site)
class MirroredGroupAdmin(AdminGroupOnly, admin.ModelAdmin):
    list_display = ("name", "members")
    search_fields = ("name",)
    fields = ("name", "members")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user_set")

    @admin.display(description="members")
    def members(self, group) -> str:
        return ", ".join(sorted(u.username for u in group.user_set.all()))
