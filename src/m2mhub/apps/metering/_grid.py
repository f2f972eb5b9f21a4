"""Interval boundaries aligned to the wall clock of a time zone.

Billing intervals follow local time: an hourly interval starts on the local hour,
a day starts at local midnight. On a day when the clocks change the local day is
23 or 25 hours long, so the boundaries are found per local day, never by adding a
fixed step in UTC. Times are UTC milliseconds, as everywhere in m2mhub.
"""

from __future__ import annotations

import functools
import zoneinfo
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta
from typing import Final

DAY: Final = timedelta(days=1)
_MINUTE_MS: Final = 60_000


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; ``ValueError`` saying what to use when unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"tz: {name!r} is not an IANA time zone; use a name such as Europe/Amsterdam"
        ) from None


def check_length(length: timedelta) -> None:
    """``ValueError`` for a length that does not split a day into whole minutes."""
    minutes, rest = divmod(length, timedelta(minutes=1))
    if rest or minutes <= 0 or (24 * 60) % minutes:
        raise ValueError(
            f"length: {length} does not divide a day into whole minutes; "
            "use e.g. 15 minutes, 1 hour or 1 day"
        )


def to_ms(moment: datetime) -> int:
    """An aware datetime -> UTC milliseconds."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def to_local(ts: int, tz: zoneinfo.ZoneInfo) -> datetime:
    """UTC milliseconds -> the aware local datetime."""
    return datetime.fromtimestamp(ts / 1000, UTC).astimezone(tz)


@functools.lru_cache(maxsize=4096)
def _local_day_boundaries(day: date, tz: zoneinfo.ZoneInfo, step: timedelta) -> tuple[int, ...]:
    """The boundaries of one local day (cached: every meter of a run asks for the same days)."""
    return tuple(_day_boundaries(day, tz, step))


def _day_boundaries(day: date, tz: zoneinfo.ZoneInfo, step: timedelta) -> list[int]:
    midnight = datetime(day.year, day.month, day.day)
    if step == DAY:
        # A midnight the clocks skip maps (PEP 495, fold=0) to the first instant of the day.
        return [to_ms(midnight.replace(tzinfo=tz))]
    start = to_ms(midnight.replace(tzinfo=tz))
    end = to_ms((midnight + DAY).replace(tzinfo=tz))
    step_ms = step // timedelta(milliseconds=1)
    if end - start == DAY // timedelta(milliseconds=1):
        # No clock change that day (all but one or two days a year): a fixed step.
        return list(range(start, end, step_ms))
    found: list[int] = []
    wall = midnight
    while wall.date() == day:
        for fold in (0, 1):
            moment = wall.replace(tzinfo=tz, fold=fold)
            ts = to_ms(moment)
            # A wall time inside a spring-forward gap does not exist: its round trip differs.
            if to_local(ts, tz).replace(tzinfo=None) == wall:
                found.append(ts)
        wall += step
    return found


def boundaries(tz: zoneinfo.ZoneInfo, length: timedelta, lo: int, hi: int) -> list[int]:
    """Sorted interval boundaries from the last one at or before ``lo`` to the first one
    at or after ``hi`` (both UTC ms, ``lo <= hi``)."""
    first_day = to_local(lo, tz).date() - DAY
    last_day = to_local(hi, tz).date() + DAY
    found: set[int] = set()
    day = first_day
    while day <= last_day:
        found.update(_local_day_boundaries(day, tz, length))
        day += DAY
    ordered = sorted(found)
    first, last = window(ordered, lo, hi)
    return ordered[ordered.index(first) : ordered.index(last) + 1]


def window(bounds: list[int], lo: int, hi: int) -> tuple[int, int]:
    """The first and last of ``bounds`` enclosing ``[lo, hi]``: the last boundary at or
    before ``lo`` and the first at or after ``hi``, at least one interval apart."""
    start = bisect_right(bounds, lo) - 1
    end = bisect_left(bounds, hi)
    return bounds[start], bounds[max(end, start + 1)]
