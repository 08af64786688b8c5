"""Timestamps as Kubernetes and Longhorn write them, parsed to aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_GO_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d+))? ([+-]\d{4})(?: [A-Z]+)?(?: m=[+-][\d.]+)?$"
)


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 (`2024-05-01T10:00:00Z`) or Go's default format
    (`2024-05-01 10:00:00 +0000 UTC`); None for empty or unparsable values."""
    if not value:
        return None
    value = value.strip()
    match = _GO_TIME.match(value)
    if match:
        day, clock, fraction, offset = match.groups()
        micro = (fraction or "0")[:6].ljust(6, "0")
        text = f"{day}T{clock}.{micro}{offset[:3]}:{offset[3:]}"
    else:
        text = value.replace("Z", "+00:00").replace("z", "+00:00")
        # Python < 3.12 accepts at most 6 fractional digits.
        text = re.sub(r"\.(\d{6})\d+", r".\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_time(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a `Z`, second resolution, as the API answers."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
