"""Backup drivers behind one interface (see base.Driver); the configured one is `current()`."""

from __future__ import annotations

from django.conf import settings

from soteria_site.core.errors import SoteriaError

from .base import Driver


class DriverUnavailable(SoteriaError):
    status = 501
    code = "driver_unavailable"


def current() -> Driver:
    name = settings.SOTERIA_BACKUP_DRIVER
    if name == "longhorn":
        from . import longhorn

        return longhorn.DRIVER
    raise DriverUnavailable(f"the {name} driver is not available in this version of Soteria")
