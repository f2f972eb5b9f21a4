"""How much each vehicle was used: per local day, per ISO week, per asset and per group.

Each stretch between two readings takes the :class:`~m2mhub.apps.fleet.models.Activity`
of the reading that opens it (driving, idling with the ignition on, or off), or counts as
*no data* when it is longer than ``max_gap_ms`` and the vehicle was not off (a parked
tracker reports rarely; an engine that ran through a gap did something unknown). Stretches
are cut at local midnight in the asset's time zone, so a daylight-saving day has 23 or 25
hours. The distance and the engine time a reading adds count on the local day of that
reading, so a day's ``odometer_end_m - odometer_start_m`` is its ``distance_m``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from m2mhub.apps.fleet.models import Activity, DaySummary, Utilization
from m2mhub.apps.fleet.settings import FleetSettings
from m2mhub.apps.fleet.trips import Reading, TripDetector, in_time_order

Period = Literal["day", "week"]


@dataclass(slots=True)
class _Day:
    distance_m: float = 0.0
    max_speed_kmh: float = 0.0
    engine_ms: float = 0.0
    odometer_start_m: float | None = None
    odometer_end_m: float = 0.0
    spent: dict[str, int] = field(default_factory=dict)


class _Calendar:
    """Local days of a zone as UTC millisecond ranges, remembering the last one asked."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._day: tuple[int, int, date] | None = None

    def day_of(self, ts: int) -> tuple[int, int, date]:
        if self._day is not None and self._day[0] <= ts < self._day[1]:
            return self._day
        day = datetime.fromtimestamp(ts / 1000, self.zone).date()
        start = datetime.combine(day, time(), tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone)
        self._day = (round(start.timestamp() * 1000), round(end.timestamp() * 1000), day)
        return self._day

    def split(self, start: int, end: int) -> Iterator[tuple[date, int]]:
        """The parts of ``[start, end)`` on each local day."""
        while start < end:
            _, day_end, day = self.day_of(start)
            part_end = min(end, day_end)
            yield day, part_end - start
            start = part_end


def summarize_days(
    readings: Iterable[Reading], settings: FleetSettings, *, zone: ZoneInfo
) -> list[DaySummary]:
    """One vehicle's :class:`DaySummary` for each local day its readings touch, in order."""
    calendar = _Calendar(zone)
    days: dict[date, _Day] = {}
    detector = TripDetector(settings)
    last_ts: int | None = None
    for ts, values in in_time_order(readings):
        activity = detector.activity
        odometer, engine = detector.odometer_m, detector.engine_ms
        detector.feed(ts, values)
        if last_ts is None:
            # The first reading may set the odometer to the device's value: not a distance.
            odometer = detector.odometer_m
        if last_ts is not None and activity is not None:
            if ts - last_ts > settings.max_gap_ms and activity is not Activity.OFF:
                kind = "no_data"
            else:
                kind = activity.value
            for day, spent in calendar.split(last_ts, ts):
                tally = days.setdefault(day, _Day()).spent
                tally[kind] = tally.get(kind, 0) + spent
        today = days.setdefault(calendar.day_of(ts)[2], _Day())
        today.distance_m += detector.odometer_m - odometer
        today.engine_ms += detector.engine_ms - engine
        today.max_speed_kmh = max(today.max_speed_kmh, detector.speed_kmh)
        if today.odometer_start_m is None:
            today.odometer_start_m = odometer
        today.odometer_end_m = detector.odometer_m
        last_ts = ts
    return [
        DaySummary(
            day=day,
            distance_m=tally.distance_m,
            max_speed_kmh=tally.max_speed_kmh,
            driving_ms=tally.spent.get(Activity.DRIVING.value, 0),
            idle_ms=tally.spent.get(Activity.IDLE.value, 0),
            off_ms=tally.spent.get(Activity.OFF.value, 0),
            no_data_ms=tally.spent.get("no_data", 0),
            engine_ms=round(tally.engine_ms),
            odometer_start_m=(
                tally.odometer_start_m
                if tally.odometer_start_m is not None
                else tally.odometer_end_m
            ),
            odometer_end_m=tally.odometer_end_m,
        )
        for day, tally in sorted(days.items())
    ]


def period_of(day: date, period: Period) -> str:
    """``2026-03-29`` for a day, ``2026-W13`` for its ISO week."""
    if period == "day":
        return day.isoformat()
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def utilization(asset: str, days: Iterable[DaySummary], *, period: Period) -> list[Utilization]:
    """An asset's use per day or per ISO week, from its day summaries, in order."""
    rows: dict[str, Utilization] = {}
    for day in days:
        key = period_of(day.day, period)
        row = Utilization(
            asset=asset,
            period=key,
            driving_ms=day.driving_ms,
            idle_ms=day.idle_ms,
            off_ms=day.off_ms,
            no_data_ms=day.no_data_ms,
            distance_m=day.distance_m,
        )
        rows[key] = _add(rows[key], row) if key in rows else row
    return [rows[key] for key in sorted(rows)]


def group_utilization(group: str, rows: Iterable[Utilization]) -> list[Utilization]:
    """The use of a group of assets: their rows summed per period, ``assets`` counted."""
    totals: dict[str, Utilization] = {}
    members: dict[str, set[str]] = {}
    for row in rows:
        members.setdefault(row.period, set()).add(row.asset)
        empty = Utilization(group, row.period, 0, 0, 0, 0, 0.0)
        totals[row.period] = _add(totals.get(row.period, empty), row)
    return [
        msgspec.structs.replace(totals[period], assets=len(members[period]))
        for period in sorted(totals)
    ]


def _add(a: Utilization, b: Utilization) -> Utilization:
    return msgspec.structs.replace(
        a,
        driving_ms=a.driving_ms + b.driving_ms,
        idle_ms=a.idle_ms + b.idle_ms,
        off_ms=a.off_ms + b.off_ms,
        no_data_ms=a.no_data_ms + b.no_data_ms,
        distance_m=a.distance_m + b.distance_m,
    )


__all__ = ["Period", "group_utilization", "period_of", "summarize_days", "utilization"]
