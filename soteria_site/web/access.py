"""What an identity may do: Django permissions from its groups, plus namespace scopes.

Computed in memory from the request's identity, never read from the database.
Configuration (docs/auth.md): SOTERIA_ALLOWED_GROUPS grant everything;
SOTERIA_READONLY_GROUPS grant viewing; SOTERIA_BACKUP_SCOPES and
SOTERIA_RESTORE_SCOPES grant backups or restores in listed namespaces only (and
viewing those namespaces). Bearer tokens grant everything. With
SOTERIA_AUTH_REQUIRED=false everyone is anonymous with every permission.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from soteria_site.core.metrics import AUTHZ_DENIALS

from .identity import Identity, identity_of, normalise_group

APP = "soteria_site"
VIEW, BACKUP, RESTORE, POLICIES = "view_inventory", "run_backup", "run_restore", "manage_policies"
ALL = frozenset({VIEW, BACKUP, RESTORE, POLICIES})


@dataclass(frozen=True)
class Grants:
    permissions: frozenset[str]
    # None: every namespace; else only these.
    backup_namespaces: frozenset[str] | None = None
    restore_namespaces: frozenset[str] | None = None
    view_namespaces: frozenset[str] | None = None

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def may_in(self, operation: str, namespace: str) -> bool:
        scope = {BACKUP: self.backup_namespaces, RESTORE: self.restore_namespaces,
                 VIEW: self.view_namespaces}[operation]
        return operation in self.permissions and (scope is None or namespace in scope)


EVERYTHING = Grants(ALL)
NOTHING = Grants(frozenset(), frozenset(), frozenset(), frozenset())


def grants_for_groups(groups) -> Grants:
    """The union of what the groups grant (normalised names)."""
    groups = {normalise_group(g) for g in groups}
    if groups & set(settings.SOTERIA_ALLOWED_GROUPS):
        return EVERYTHING
    permissions: set[str] = set()
    view_all = bool(groups & set(settings.SOTERIA_READONLY_GROUPS))
    if view_all:
        permissions.add(VIEW)
    backup = frozenset().union(*(ns for g, ns in settings.SOTERIA_BACKUP_SCOPES.items() if g in groups))
    restore = frozenset().union(*(ns for g, ns in settings.SOTERIA_RESTORE_SCOPES.items() if g in groups))
    if backup:
        permissions |= {VIEW, BACKUP}
    if restore:
        permissions |= {VIEW, RESTORE}
    if not permissions:
        return NOTHING
    return Grants(frozenset(permissions), backup_namespaces=backup, restore_namespaces=restore,
                  view_namespaces=None if view_all else backup | restore)


def grants_for(identity: Identity) -> Grants:
    """What an identity may do, decided by how it authenticated: a token may do everything,
    a proxy identity what its groups grant, an anonymous caller nothing (with auth on)."""
    if not settings.SOTERIA_AUTH_REQUIRED or identity.method == "token":
        return EVERYTHING
    if identity.method == "header":
        return grants_for_groups(identity.groups)
    return NOTHING


def grants_of(request) -> Grants:
    return grants_for(identity_of(request))


def deny(reason: str) -> None:
    """Count a denial (one of soteria_site.core.metrics.DENIAL_REASONS)."""
    AUTHZ_DENIALS.labels(reason).inc()


def may_administer(identity: Identity) -> bool:
    """Whether an identity may use the Django admin at /admin/: a proxy identity in
    SOTERIA_ADMIN_GROUP, with authentication required. Never a bearer token (tokens are for
    the API) and never anybody with SOTERIA_AUTH_REQUIRED=false (docs/auth.md, "The admin")."""
    if not settings.SOTERIA_AUTH_REQUIRED or identity.method != "header" or not settings.SOTERIA_ADMIN_GROUP:
        return False
    return settings.SOTERIA_ADMIN_GROUP in {normalise_group(g) for g in identity.groups}
