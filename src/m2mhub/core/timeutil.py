"""Time in m2mhub: UTC milliseconds since the epoch, everywhere."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from m2mhub.core.errors import PayloadError

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def now_ms() -> int:
    """The current time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


def parse_duration(text: str, *, field: str = "duration") -> int:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"30d"`` -> milliseconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise PayloadError(
            f"{field}: {text!r} is not a duration; write a number and a unit "
            "(ms, s, m, h, d, w), e.g. 5m or 30d",
            field=field,
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_time(text: str, *, field: str = "time", now: int | None = None) -> int:
    """An instant given as epoch ms, ISO 8601, ``now`` or ``-1h`` (relative) -> ms."""
    text = text.strip()
    if text.lstrip("-").isdigit() and not text.startswith("-"):
        return int(text)
    if text == "now":
        return now if now is not None else now_ms()
    if text.startswith("-"):
        return (now if now is not None else now_ms()) - parse_duration(text[1:], field=field)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(
            f"{field}: {text!r} is not a time; use epoch milliseconds, ISO 8601 "
            "(2026-11-24T10:00:00Z), 'now' or a relative time like -1h",
            field=field,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def format_ms(ts: int) -> str:
    """Milliseconds -> ISO 8601 in UTC with millisecond precision."""
    return (
        datetime.fromtimestamp(ts / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
