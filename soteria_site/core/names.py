"""Kubernetes names and Longhorn labels, checked before any upstream call."""

from __future__ import annotations

import re

from .errors import InvalidInput

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# Longhorn refuses these label keys on backups.
RESERVED_LABEL_KEYS = frozenset({"KubernetesStatus", "ranchervm-base-image"})
# Soteria's own label keys, never taken from a user's tags: `policy` marks the backups a
# policy made (retention selects by it), and the soteria.io prefix (with its subdomains,
# as Kubernetes reserves kubernetes.io) is kept for Soteria.
POLICY_LABEL = "policy"
SOTERIA_LABEL_DOMAIN = "soteria.io"


def is_dns_label(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


def dns_label_error(value: str) -> str | None:
    """Why `value` is not a DNS label (a namespace or PVC name), or None."""
    if not value:
        return "must not be empty"
    if len(value) > 63:
        return f"{value[:20]!r}... is longer than 63 characters"
    if not _DNS_LABEL.match(value):
        return (f"{value!r} is not a valid Kubernetes name: lower-case letters, digits and '-', "
                "starting and ending with a letter or digit")
    return None


def require_dns_label(value: str, field: str) -> str:
    problem = dns_label_error(value)
    if problem:
        raise InvalidInput(f"{field}: {problem}", field=field)
    return value


def label_key_error(key: str) -> str | None:
    """Kubernetes qualified-name rules for a label key ([prefix/]name), plus Longhorn's reserved keys."""
    if key in RESERVED_LABEL_KEYS:
        return f"label key {key!r} is reserved by Longhorn"
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"label key {key!r} has an empty prefix"
    if prefix and not is_dns_subdomain(prefix):
        return f"label key prefix {prefix!r} is not a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (f"label key {key!r} is not valid: at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_value_error(value: str) -> str | None:
    if not value:
        return "label values must not be empty (Longhorn refuses them)"
    if len(value) > 63 or not _LABEL_NAME.match(value):
        return (f"label value {value!r} is not valid: at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def soteria_label_error(key: str) -> str | None:
    """Why a user may not set this label key (Soteria sets it itself), or None."""
    if key == POLICY_LABEL:
        return (f"label key {key!r} is set by Soteria itself: it marks the backups a policy made, "
                "and policy retention deletes by it")
    prefix = key.rpartition("/")[0]
    if prefix == SOTERIA_LABEL_DOMAIN or prefix.endswith(f".{SOTERIA_LABEL_DOMAIN}"):
        return f"label key {key!r} is under {SOTERIA_LABEL_DOMAIN}/, a prefix reserved for Soteria itself"
    return None


def tags_to_labels(tags: list[str], field: str = "tags") -> dict[str, str]:
    """A user's tags as labels: `key=value` -> {key: value}; a bare word -> {word: "true"}.
    Raises InvalidInput naming the tag, Soteria's own keys included."""
    labels: dict[str, str] = {}
    for index, tag in enumerate(tags):
        key, sep, value = tag.partition("=")
        key, value = key.strip(), (value.strip() if sep else "true")
        problem = soteria_label_error(key)
        if problem:
            raise InvalidInput(f"{field}[{index}] {tag!r}: {problem}", field=field)
        problem = label_key_error(key) or label_value_error(value)
        if problem:
            raise InvalidInput(f"{field}[{index}]: {problem}", field=field)
        if key in labels and labels[key] != value:
            raise InvalidInput(f"{field}[{index}]: label {key!r} is given twice with different values", field=field)
        labels[key] = value
    return labels
