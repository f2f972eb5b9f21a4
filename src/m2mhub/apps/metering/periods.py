"""Billing periods and the local dates of a tariff's time zone.

A period is written ``2024-10`` (a calendar month) or ``2024-10-01..2024-10-15``
(first and last day, both included) and read in the tariff's time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from m2mhub.core.errors import PayloadError

__all__ = ["Period", "local_date", "local_date_ceil", "midnight", "parse_period"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


class Period(msgspec.Struct, frozen=True):
    """A billing period: its label and local dates ``[start, end)``."""

    label: str
    start: date
    end: date


def parse_period(text: str) -> Period:
    """``2024-10`` (a calendar month) or ``2024-10-01..2024-10-15`` (first and last day)."""
    text = text.strip()
    month = _MONTH.match(text)
    try:
        if month:
            year, number = int(month.group(1)), int(month.group(2))
            start = date(year, number, 1)
            end = date(year + number // 12, number % 12 + 1, 1)
            return Period(text, start, end)
        days = _RANGE.match(text)
        if days:
            start = date.fromisoformat(days.group(1))
            end = date.fromisoformat(days.group(2)) + timedelta(days=1)
            if end > start:
                return Period(text, start, end)
    except ValueError:
        pass
    raise PayloadError(
        f"period: {text!r} is not a billing period; write a month (2024-10) or a range of "
        "days (2024-10-01..2024-10-15, both included)",
        field="period",
    )


def midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)


def local_date(ts: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts / 1000, UTC).astimezone(zone).date()


def local_date_ceil(ts: int, zone: ZoneInfo) -> date:
    """The local date ``ts`` ends: its own date at midnight, else the next one."""
    day = local_date(ts, zone)
    return day if midnight(day, zone) == ts else day + timedelta(days=1)
