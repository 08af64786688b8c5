"""Kubernetes names and Longhorn labels, checked before any upstream call, and the names
Soteria derives from them (`fit_name`)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from .errors import InvalidInput

# `\Z`, not `$`: `$` also matches before a final newline, and "ai\n" is no namespace.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
# Longhorn refuses these label keys on backups.
RESERVED_LABEL_KEYS = frozenset({"KubernetesStatus", "ranchervm-base-image"})
# Soteria's own label keys, never taken from a user's tags: `policy` marks the backups a
# policy made (retention selects by it), and the soteria.io prefix (with its subdomains,
# as Kubernetes reserves kubernetes.io) is kept for Soteria.
POLICY_LABEL = "policy"
SOTERIA_LABEL_DOMAIN = "soteria.io"


# Kubernetes' limits: a namespace is a DNS-1123 label, a PVC (and most objects: PVs, Events,
# Secrets, Jobs) a DNS-1123 subdomain; a label value is at most 63 characters.
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
# Jobs: their name becomes the value of their pods' `job-name` label, so at most 63.
JOB_NAME_MAX = 63
# A derived name that would not fit keeps its readable start and ends in '-' and this many hex
# characters of the SHA-256 of the full input (40 bits).
HASH_CHARS = 10


def is_dns_subdomain(value: str) -> bool:
    return isinstance(value, str) and len(value) <= DNS_SUBDOMAIN_MAX and bool(_DNS_SUBDOMAIN.match(value))


def dns_label_error(value: str) -> str | None:
    """Why `value` is not a DNS label (a namespace name), or None."""
    if not value:
        return "must not be empty"
    if len(value) > DNS_LABEL_MAX:
        return f"{value[:20]!r}... is longer than {DNS_LABEL_MAX} characters"
    if not _DNS_LABEL.match(value):
        return (f"{value!r} is not a valid Kubernetes name: lower-case letters, digits and '-', "
                "starting and ending with a letter or digit")
    return None


def require_dns_label(value: str, field: str) -> str:
    problem = dns_label_error(value)
    if problem:
        raise InvalidInput(f"{field}: {problem}", field=field)
    return value


def dns_subdomain_error(value: str) -> str | None:
    """Why `value` is not a DNS subdomain (a PVC name), or None."""
    if not value:
        return "must not be empty"
    if len(value) > DNS_SUBDOMAIN_MAX:
        return f"{value[:20]!r}... is longer than {DNS_SUBDOMAIN_MAX} characters"
    if not _DNS_SUBDOMAIN.match(value):
        return (f"{value!r} is not a valid Kubernetes name: lower-case letters, digits, '-' and '.', each "
                "dot-separated part starting and ending with a letter or digit")
    return None


def require_dns_subdomain(value: str, field: str) -> str:
    problem = dns_subdomain_error(value)
    if problem:
        raise InvalidInput(f"{field}: {problem}", field=field)
    return value


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def fit_name(base: str, limit: int, *, suffix: str = "", dns_label: bool = False) -> str:
    """A name Soteria derives from `base` (made of valid Kubernetes names), at most `limit`
    characters, with `suffix` kept verbatim at its end.

    `base + suffix` unchanged when it fits (and, for a DNS label, `base` has no dots), so short
    names stay what they always were. Otherwise the start of `base` (dots turned into '-' for a
    DNS label), cut so that '-' + HASH_CHARS hex of sha256(`base`) + `suffix` fit, without a
    trailing '-' or '.'. Stable (same input, same name) and distinct for distinct bases, however
    long a prefix they share; the hash covers `base` only, so names that differ in `suffix` alone
    (a time) keep one readable, hashed stem."""
    readable = base.replace(".", "-") if dns_label else base
    if readable == base and len(base) + len(suffix) <= limit:
        return base + suffix
    tag = short_hash(base)
    room = limit - len(suffix) - len(tag) - 1
    if room < 0:
        raise ValueError(f"no room for a name in {limit} characters with suffix {suffix!r}")
    head = readable[:room].rstrip("-.")
    return f"{head}-{tag}{suffix}" if head else f"{tag}{suffix}"


def label_value(text: str) -> str:
    """`text` (made of Kubernetes names) as a label value: unchanged up to 63 characters, else
    shortened by `fit_name`."""
    return fit_name(text, LABEL_VALUE_MAX)


def job_name(operation: str, pvc: str, when: datetime) -> str:
    """The name of a Job the restic driver runs for one PVC (in the PVC's namespace):
    `soteria-<operation>-<pvc>-<UTC yyyymmdd-HHMMSS>`, a DNS label of at most 63 characters
    (Kubernetes copies a Job's name into its pods' `job-name` label). A PVC name with dots or
    too long for that keeps its start and gets a hash (`fit_name`), so two PVCs never share a
    Job name and the time stays readable at the end."""
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return fit_name(f"soteria-{operation}-{pvc}", JOB_NAME_MAX, suffix=f"-{stamp}", dns_label=True)


def job_secret_name(job: str) -> str:
    """The per-Job copy of the restic Secret takes its Job's name (a valid Secret name: a DNS
    label is a DNS subdomain), so it is as unique as the Job and easy to find beside it."""
    return job


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
