"""Small helpers: Longhorn's time formats, sizes, names and directory copies."""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import time
from calendar import timegm
from decimal import Decimal, InvalidOperation
from pathlib import Path

MIB = 1024 * 1024
SIZE_ALIGNMENT = 2 * MIB
NAME_MAX_LENGTH = 40

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIXES = {
    "": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_LONGHORN_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]+$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

QUALIFIED_NAME_HELP = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                       "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                       "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
DNS1123_LABEL_HELP = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                      "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")

DNS1123_SUBDOMAIN_HELP = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                          "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
                          "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


# Times ------------------------------------------------------------------------
def now() -> float:
    return time.time()


def rfc3339(ts: float) -> str:
    """Go's time.RFC3339 in UTC, e.g. 2024-05-01T10:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def go_time(ts: float) -> str:
    """Go's time.Time.String() of a Kubernetes timestamp, e.g. 2024-05-01 10:00:00 +0000 UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ts))


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (fractions and offsets allowed)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    offset = 0
    if match.group(3) != "Z":
        sign = 1 if match.group(3)[0] == "+" else -1
        hours, minutes = match.group(3)[1:].split(":")
        offset = sign * (int(hours) * 3600 + int(minutes) * 60)
    return base - offset + float(match.group(2) or 0)


# Sizes ------------------------------------------------------------------------
def parse_quantity(text: str) -> int:
    """Bytes in a Kubernetes quantity ("1Gi", "2147483648"), rounded up like Quantity.Value()."""
    if text == "":
        return 0
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"error parsing size '{text}': quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
        if suffix in _SUFFIXES:
            value *= Decimal(_SUFFIXES[suffix])
        elif suffix[:1] in "eE" and re.fullmatch(r"[eE][-+]?\d+", suffix):
            value *= Decimal(10) ** int(suffix[1:])
        else:
            raise InvalidOperation
    except InvalidOperation:
        raise ValueError(f"error parsing size '{text}': unable to parse quantity's suffix") from None
    whole = int(value)
    return whole + 1 if value > whole else whole


def binary_quantity(size: int) -> str:
    """A byte count as Kubernetes writes a BinarySI quantity: 1073741824 -> "1Gi"."""
    for exponent, suffix in ((6, "Ei"), (5, "Pi"), (4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")):
        unit = 1024 ** exponent
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def round_up_size(size: int) -> int:
    """Longhorn aligns volume sizes up to 2 MiB (and turns 0 into 2 MiB)."""
    if size <= 0:
        return SIZE_ALIGNMENT
    remainder = size % SIZE_ALIGNMENT
    return size if remainder == 0 else size - remainder + SIZE_ALIGNMENT


def dir_size(path: Path) -> int:
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def copy_dir(src: Path, dst: Path) -> None:
    """Make dst an exact copy of src (an empty directory when src is missing)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        dst.mkdir()


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write {relative path: text} under root, refusing paths that leave it."""
    root.mkdir(parents=True, exist_ok=True)
    base = root.resolve()
    for rel, text in files.items():
        target = (root / rel).resolve()
        if base not in target.parents:
            raise ValueError(f"file path {rel!r} leaves the volume directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def changed_bytes(new: Path, old: Path | None) -> int:
    """Bytes of files in `new` that are absent from or different in `old`."""
    total = 0
    if not new.is_dir():
        return 0
    for path in new.rglob("*"):
        if not path.is_file():
            continue
        previous = old / path.relative_to(new) if old else None
        if previous is None or not previous.is_file() or previous.read_bytes() != path.read_bytes():
            total += path.stat().st_size
    return total


# Names ------------------------------------------------------------------------
def generate_name(prefix: str) -> str:
    """Longhorn's generated names: <prefix>-<16 hex>."""
    return f"{prefix}-{secrets.token_hex(8)}"


def short_hash(text: str, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, text.encode()).hexdigest()[:8]


def auto_correct_name(name: str, max_length: int = NAME_MAX_LENGTH) -> str:
    """Lower-case, and shorten over-long names to <prefix>-<8 hex of sha512>, as the volume mutator does."""
    new = name.lower()
    if len(name) > max_length:
        suffix = "-" + short_hash(name, "sha512")
        new = new[:max_length - len(suffix)].rstrip("-") + suffix
    return new


def valid_longhorn_name(name: str) -> bool:
    return bool(_LONGHORN_NAME.match(name))


def dns1123_label_error(name: str) -> str | None:
    if len(name) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1123_LABEL.match(name) else DNS1123_LABEL_HELP


def dns1123_subdomain_error(name: str) -> str | None:
    """Kubernetes' IsDNS1123Subdomain (the rule for a custom resource's name): the first error, or None."""
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _DNS1123_SUBDOMAIN.match(name) else DNS1123_SUBDOMAIN_HELP


def qualified_name_error(key: str) -> str | None:
    """Kubernetes' IsQualifiedName: the first error for a label key, or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return ("a qualified name " + QUALIFIED_NAME_HELP
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            return ("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric character")
    else:
        name = parts[0]
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return "name part " + QUALIFIED_NAME_HELP
    return None
