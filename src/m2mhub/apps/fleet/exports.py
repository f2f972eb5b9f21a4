"""Fleet reports as files, for the API's downloads and ``m2mhub fleet report``.

CSV for every report; GPX and KML for the reports that have a route (``route``,
``trips`` and ``stops``: the positions of the range, KML with each stop as a placemark).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Final, Literal, TextIO, get_args
from zoneinfo import ZoneInfo

import msgspec

from m2mhub.apps.fleet import queries
from m2mhub.apps.fleet.errors import FleetError
from m2mhub.apps.fleet.models import Utilization
from m2mhub.apps.fleet.reports import (
    route_gpx,
    route_kml,
    write_days_csv,
    write_events_csv,
    write_route_csv,
    write_stops_csv,
    write_trips_csv,
    write_utilization_csv,
)
from m2mhub.apps.fleet.utilization import Period
from m2mhub.store.base import Store

Report = Literal["trips", "stops", "events", "summary", "utilization", "route"]
Format = Literal["csv", "gpx", "kml"]
REPORTS: Final = get_args(Report)
FORMATS: Final = get_args(Format)
MEDIA_TYPES: Final[dict[str, str]] = {
    "csv": "text/csv; charset=utf-8",
    # GPX's registered type (IANA, 2013); KML's as OGC registered it.
    "gpx": "application/gpx+xml",
    "kml": "application/vnd.google-earth.kml+xml",
}
#: Reports that have a route to draw, so also come as GPX and KML.
ROUTED: Final = frozenset({"route", "trips", "stops"})


class Export(msgspec.Struct, frozen=True):
    """A report file: its bytes, content type and a file name to save it as."""

    content: bytes
    media_type: str
    filename: str


def check(report: str, fmt: str) -> tuple[Report, Format]:
    """The report and format, or an error naming the one that is not known."""
    if report not in REPORTS:
        raise FleetError(f"report: {report!r} is not one of {', '.join(REPORTS)}", field="report")
    if fmt not in FORMATS:
        raise FleetError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
    if fmt != "csv" and report not in ROUTED:
        raise FleetError(
            f"format: {report} comes as csv; gpx and kml are for {', '.join(sorted(ROUTED))}",
            field="format",
        )
    return report, fmt  # type: ignore[return-value]


def local_days(start: int, end: int, zone: ZoneInfo) -> tuple[date, date]:
    """The local days ``[start, end)`` touches."""
    first = datetime.fromtimestamp(start / 1000, zone).date()
    last = datetime.fromtimestamp((end - 1) / 1000, zone).date()
    return first, last


def utilization_file(
    rows: Sequence[Utilization], subject: str, first: date, period: Period
) -> Export:
    """Utilization rows as a CSV file named by what they are of and their first day."""
    return Export(
        _csv(lambda out: write_utilization_csv(rows, out)),
        MEDIA_TYPES["csv"],
        _name(subject, "utilization", first.isoformat(), f"{period}.csv"),
    )


def _csv(write: Callable[[TextIO], None]) -> bytes:
    buffer = io.StringIO(newline="")
    write(buffer)
    return buffer.getvalue().encode()


def _name(*parts: str) -> str:
    # Only characters every file system and Content-Disposition header take unquoted.
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p))


async def export(
    store: Store,
    tenant_id: int,
    report: str,
    fmt: str,
    *,
    start: int,
    end: int,
    device: str | None = None,
    asset: str | None = None,
    group: str | None = None,
    period: Period = "day",
) -> Export:
    """One report of one vehicle (or, for utilization, of an asset, a group or the fleet)
    over ``[start, end)``."""
    report, fmt = check(report, fmt)
    queries.check_range(start, end)
    if report == "utilization":
        # Days are a vehicle's local days; an asset's, a group's and the fleet's are UTC.
        zone = ZoneInfo("UTC")
        if device is not None:
            zone = (await queries.vehicle(store, tenant_id, device))[1].zone
        first, last = local_days(start, end, zone)
        rows, groups = await queries.utilization_of(
            store, tenant_id, first, last, period=period, asset=asset, device=device, group=group
        )
        subject = device or asset or group or "fleet"
        return utilization_file([*rows, *groups], subject, first, period)
    if device is None:
        raise FleetError(f"device: the {report} report is of one vehicle; name it", field="device")
    found, profile = await queries.vehicle(store, tenant_id, device)
    # Named by the local day it starts on, as the vehicle's people count days.
    day = datetime.fromtimestamp(start / 1000, profile.zone).date().isoformat()
    filename = _name(found.id, report, f"{day}.{fmt}")
    if fmt != "csv":
        points = await queries.route_of(store, found, profile, start, end)
        if fmt == "gpx":
            content = route_gpx(points, name=f"{found.name} {day}")
        else:
            stops = await queries.stops(store, found, start, end)
            content = route_kml(points, stops, name=f"{found.name} {day}")
        return Export(content, MEDIA_TYPES[fmt], filename)
    if report == "trips":
        trips = await queries.trips(store, found, start, end)
        content = _csv(lambda out: write_trips_csv(trips, out))
    elif report == "stops":
        stops = await queries.stops(store, found, start, end)
        content = _csv(lambda out: write_stops_csv(stops, out))
    elif report == "events":
        events = await queries.events(store, found, start, end)
        content = _csv(lambda out: write_events_csv(events, out))
    elif report == "route":
        points = await queries.route_of(store, found, profile, start, end)
        content = _csv(lambda out: write_route_csv(points, out))
    else:
        first, last = local_days(start, end, profile.zone)
        days = await queries.day_summaries(store, found, profile, first, last)
        content = _csv(lambda out: write_days_csv(days, out))
    return Export(content, MEDIA_TYPES["csv"], filename)


__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "REPORTS",
    "Export",
    "Format",
    "Report",
    "check",
    "export",
    "local_days",
    "utilization_file",
]
