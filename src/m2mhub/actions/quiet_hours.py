"""Quiet hours: a daily window in a time zone during which minor notifications wait."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any, Final

import msgspec

from m2mhub.core.errors import PayloadError

#: Severities from least to most urgent. The first three match Apprise's info,
#: warning and failure styles; minor and major fit alarm conventions in between.
SEVERITIES: Final = ("info", "warning", "minor", "major", "critical")

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def severity_rank(severity: str, *, field: str = "severity") -> int:
    """The position of ``severity`` in :data:`SEVERITIES`, or :class:`PayloadError`."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise PayloadError(
            f"{field}: {severity!r}; use one of {', '.join(SEVERITIES)}", field=field
        ) from None


def _clock(text: str, field: str) -> time:
    match = _CLOCK.match(text)
    if not match:
        raise PayloadError(f"{field}: {text!r}; write a time of day as HH:MM", field=field)
    return time(int(match.group(1)), int(match.group(2)))


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every day from ``start`` to ``end`` (local time in ``timezone``), notifications
    below ``min_severity`` are held and go out when the window ends.

    A window may span midnight (``22:00`` to ``07:00``).
    """

    start: str
    end: str
    timezone: str = "UTC"
    min_severity: str = "critical"

    def __post_init__(self) -> None:
        if _clock(self.start, "start") == _clock(self.end, "end"):
            raise PayloadError("quiet hours: start and end are the same time", field="end")
        severity_rank(self.min_severity, field="min_severity")
        self.zone()

    def zone(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise PayloadError(
                f"timezone: {self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)",
                field="timezone",
            ) from None

    def held_until(self, now_ms: int, severity: str) -> int | None:
        """When a notification of ``severity`` made at ``now_ms`` may go out, if it must
        wait; None if it goes out now."""
        if severity_rank(severity) >= severity_rank(self.min_severity):
            return None
        zone = self.zone()
        local = datetime.fromtimestamp(now_ms / 1000, zone)
        start, end = _clock(self.start, "start"), _clock(self.end, "end")
        now = local.time()
        if start < end:
            if not start <= now < end:
                return None
            end_day = local.date()
        else:  # spans midnight
            if end <= now < start:
                return None
            end_day = local.date() + timedelta(days=1) if now >= start else local.date()
        ends = datetime.combine(end_day, end, zone)
        return int(ends.timestamp() * 1000)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def parse_quiet_hours(data: dict[str, Any]) -> QuietHours:
    """Quiet hours from a JSON object, with errors naming the field."""
    try:
        return msgspec.convert(data, type=QuietHours)
    except msgspec.ValidationError as exc:
        raise PayloadError(f"quiet hours: {exc}", field="quiet_hours") from None
