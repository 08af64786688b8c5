"""Typed readers for environment variables.

Only soteria_site.settings calls these. Each helper takes the environment
mapping explicitly (so tests need no monkeypatching) and raises
ImproperlyConfigured with one line naming the variable, the bad value and what
is allowed.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of `name`, or None when unset or blank."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _bad(name: str, value: str, allowed: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: {allowed}")


def env_str(env: Mapping[str, str], name: str, default: str = "") -> str:
    value = _raw(env, name)
    return default if value is None else value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, value, "use true or false")


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, f"expected a whole number{_range_text(minimum, maximum)}") from None
    _check_range(name, value, number, minimum, maximum, "a whole number")
    return number


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None, exclusive_minimum: bool = False) -> float:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _bad(name, value, f"expected a number{_range_text(minimum, maximum, exclusive_minimum)}")
    if exclusive_minimum and minimum is not None and number <= minimum:
        raise _bad(name, value, f"expected a number{_range_text(minimum, maximum, True)}")
    _check_range(name, value, number, minimum, maximum, "a number", exclusive_minimum)
    return number


def env_choice(env: Mapping[str, str], name: str, default: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    value = _raw(env, name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise _bad(name, value, "use one of " + ", ".join(choices))
    return value.lower()


def env_list(env: Mapping[str, str], name: str, default: Iterable[str] = (), *, separators: str = ",") -> list[str]:
    """A list split on any of `separators`, items stripped, empty items dropped."""
    value = _raw(env, name)
    if value is None:
        return list(default)
    parts = re.split("[" + re.escape(separators) + "]", value)
    return [p.strip() for p in parts if p.strip()]


def env_args(env: Mapping[str, str], name: str) -> list[str]:
    """Extra command-line arguments, split like a POSIX shell would."""
    value = _raw(env, name)
    if value is None:
        return []
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise _bad(name, value, f"cannot split into arguments ({exc})") from None


def env_key_values(env: Mapping[str, str], name: str) -> dict[str, str]:
    """A comma-separated `key=value` list, e.g. a node selector."""
    result: dict[str, str] = {}
    for item in env_list(env, name):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise _bad(name, item, "expected a comma-separated list of key=value")
        result[key.strip()] = val.strip()
    return result


def env_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env_str(env, name, default)
    if not re.match(r"^https?://[^/\s]+", value):
        raise _bad(name, value, "expected an http:// or https:// URL")
    return value.rstrip("/")


def env_dns_label(env: Mapping[str, str], name: str, default: str) -> str:
    """A Kubernetes namespace name: a DNS-1123 label (lower case, digits, '-', at most 63)."""
    value = env_str(env, name, default)
    if len(value) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", value):
        raise _bad(name, value, "expected a namespace name (lower-case letters, digits and '-', at most 63)")
    return value


def env_secret(env: Mapping[str, str], name: str, default: str = "") -> str:
    """A secret from `name`, or from the file named by `<name>_FILE` (a mounted Secret)."""
    file_name = _raw(env, f"{name}_FILE")
    direct = _raw(env, name)
    if file_name and direct:
        raise ImproperlyConfigured(f"{name} and {name}_FILE are both set: use one")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}") from None
    return direct if direct is not None else default


def _range_text(minimum, maximum, exclusive_minimum: bool = False) -> str:
    if minimum is not None and maximum is not None:
        low = f"greater than {minimum}" if exclusive_minimum else f"at least {minimum}"
        return f" {low} and at most {maximum}"
    if minimum is not None:
        return f" greater than {minimum}" if exclusive_minimum else f" of at least {minimum}"
    if maximum is not None:
        return f" of at most {maximum}"
    return ""


def _check_range(name, value, number, minimum, maximum, what, exclusive_minimum=False) -> None:
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _bad(name, value, f"expected {what}{_range_text(minimum, maximum, exclusive_minimum)}")


def env_listen_addr(env: Mapping[str, str], name: str, default: str) -> str:
    """`host:port`, `:port` (all interfaces) or `[v6]:port` -> a gunicorn bind address."""
    value = env_str(env, name, default)
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})", value)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise _bad(name, value, "expected host:port or :port, e.g. :8080 or 127.0.0.1:8080")
    host = match.group(1) or "0.0.0.0"
    return f"{host}:{int(match.group(2))}"


_RATE_PERIODS = {"s": "second", "sec": "second", "second": "second", "m": "minute", "min": "minute",
                 "minute": "minute", "h": "hour", "hour": "hour", "d": "day", "day": "day"}


def env_rate(env: Mapping[str, str], name: str, default: str) -> str | None:
    """A request rate `N/second|minute|hour|day` (DRF's throttle format), or None for `off`."""
    value = env_str(env, name, default)
    if value.lower() == "off":
        return None
    number, sep, period = value.partition("/")
    if not sep or not number.isdigit() or int(number) < 1 or period.lower() not in _RATE_PERIODS:
        raise _bad(name, value, "expected a rate like 60/minute (per second, minute, hour or day) or off")
    return f"{int(number)}/{_RATE_PERIODS[period.lower()]}"
