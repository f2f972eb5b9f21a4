"""Fleet reports as files: CSV for every report, GPX 1.1 and KML 2.2 for a route.

CSV has a header row, times in ISO 8601 UTC (``2026-06-10T05:00:00.000Z``), durations in
seconds, distances in metres. Open the file with ``newline=""`` as the csv module asks.
GPX follows https://www.topografix.com/GPX/1/1/ (one track, one segment, ``ele`` and
``time`` per point); KML follows OGC KML 2.2 (the route as a LineString, each stop as a
Placemark with its time span). Both are written with ElementTree, which escapes text.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from typing import Final, TextIO, TypeVar

import msgspec

from m2mhub.apps.fleet._values import number, position
from m2mhub.apps.fleet.models import DaySummary, FleetEvent, RoutePoint, Stop, Trip, Utilization
from m2mhub.apps.fleet.trips import Reading, in_time_order
from m2mhub.connect.trackers.positions import ALTITUDE_M, HEADING_DEG, SPEED_KMH
from m2mhub.core.timeutil import format_ms

GPX_NS: Final = "http://www.topografix.com/GPX/1/1"
KML_NS: Final = "http://www.opengis.net/kml/2.2"


def route(readings: Iterable[Reading]) -> list[RoutePoint]:
    """The positions of a vehicle's readings in time order (readings without a fix left out)."""
    points = []
    for ts, values in in_time_order(readings):
        fix = position(values)
        if fix is not None:
            points.append(
                RoutePoint(
                    ts,
                    fix[0],
                    fix[1],
                    number(values, ALTITUDE_M),
                    number(values, SPEED_KMH),
                    number(values, HEADING_DEG),
                )
            )
    return points


def _seconds(ms: int | float) -> str:
    return f"{ms / 1000:g}" if ms % 1000 else str(int(ms // 1000))


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.7g}" if abs(value) < 1e6 else f"{value:.1f}"


def _coordinate(value: float | None) -> str:
    return "" if value is None else f"{value:.7f}"


T = TypeVar("T")

#: A CSV report's columns: each header with how a row's cell is written.
Columns = Sequence[tuple[str, Callable[[T], object]]]


def _write_csv(rows: Iterable[T], columns: Columns[T], out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow([header for header, _ in columns])
    for row in rows:
        writer.writerow([cell(row) for _, cell in columns])


def _event_coordinate(event: FleetEvent, key: str) -> str:
    value = event.values.get(key)
    return _coordinate(value) if isinstance(value, float) else ""


def _event_details(event: FleetEvent) -> str:
    details = {k: v for k, v in sorted(event.values.items()) if k not in ("lat", "lon")}
    return msgspec.json.encode(details).decode() if details else ""


ROUTE_COLUMNS: Final[Columns[RoutePoint]] = (
    ("time", lambda p: format_ms(p.ts)),
    ("lat", lambda p: _coordinate(p.lat)),
    ("lon", lambda p: _coordinate(p.lon)),
    ("altitude_m", lambda p: _cell(p.altitude_m)),
    ("speed_kmh", lambda p: _cell(p.speed_kmh)),
    ("heading_deg", lambda p: _cell(p.heading_deg)),
)
TRIP_COLUMNS: Final[Columns[Trip]] = (
    ("start_time", lambda t: format_ms(t.start_ts)),
    ("end_time", lambda t: format_ms(t.end_ts)),
    ("start_lat", lambda t: _coordinate(t.start_lat)),
    ("start_lon", lambda t: _coordinate(t.start_lon)),
    ("end_lat", lambda t: _coordinate(t.end_lat)),
    ("end_lon", lambda t: _coordinate(t.end_lon)),
    ("distance_m", lambda t: f"{t.distance_m:.0f}"),
    ("duration_s", lambda t: _seconds(t.duration_ms)),
    ("max_speed_kmh", lambda t: f"{t.max_speed_kmh:.1f}"),
    ("avg_speed_kmh", lambda t: f"{t.avg_speed_kmh:.1f}"),
    ("driving_s", lambda t: _seconds(t.driving_ms)),
    ("idle_s", lambda t: _seconds(t.idle_ms)),
    ("start_odometer_m", lambda t: f"{t.start_odometer_m:.0f}"),
    ("end_odometer_m", lambda t: f"{t.end_odometer_m:.0f}"),
)
STOP_COLUMNS: Final[Columns[Stop]] = (
    ("start_time", lambda s: format_ms(s.start_ts)),
    ("end_time", lambda s: format_ms(s.end_ts)),
    ("lat", lambda s: _coordinate(s.lat)),
    ("lon", lambda s: _coordinate(s.lon)),
    ("duration_s", lambda s: _seconds(s.duration_ms)),
)
#: An event's values other than its place go in ``details`` as a JSON object.
EVENT_COLUMNS: Final[Columns[FleetEvent]] = (
    ("time", lambda e: format_ms(e.ts)),
    ("kind", lambda e: e.kind.value),
    ("lat", lambda e: _event_coordinate(e, "lat")),
    ("lon", lambda e: _event_coordinate(e, "lon")),
    ("details", _event_details),
)
DAY_COLUMNS: Final[Columns[DaySummary]] = (
    ("day", lambda d: d.day.isoformat()),
    ("distance_m", lambda d: f"{d.distance_m:.0f}"),
    ("max_speed_kmh", lambda d: f"{d.max_speed_kmh:.1f}"),
    ("driving_s", lambda d: _seconds(d.driving_ms)),
    ("idle_s", lambda d: _seconds(d.idle_ms)),
    ("off_s", lambda d: _seconds(d.off_ms)),
    ("no_data_s", lambda d: _seconds(d.no_data_ms)),
    ("engine_s", lambda d: _seconds(d.engine_ms)),
    ("odometer_start_m", lambda d: f"{d.odometer_start_m:.0f}"),
    ("odometer_end_m", lambda d: f"{d.odometer_end_m:.0f}"),
)
UTILIZATION_COLUMNS: Final[Columns[Utilization]] = (
    ("asset", lambda u: u.asset),
    ("period", lambda u: u.period),
    ("assets", lambda u: u.assets),
    ("driving_s", lambda u: _seconds(u.driving_ms)),
    ("idle_s", lambda u: _seconds(u.idle_ms)),
    ("off_s", lambda u: _seconds(u.off_ms)),
    ("no_data_s", lambda u: _seconds(u.no_data_ms)),
    ("used_s", lambda u: _seconds(u.used_ms)),
    ("idle_share", lambda u: f"{u.idle_share:.3f}"),
    ("distance_m", lambda u: f"{u.distance_m:.0f}"),
)


def write_route_csv(points: Iterable[RoutePoint], out: TextIO) -> None:
    """One row per position."""
    _write_csv(points, ROUTE_COLUMNS, out)


def write_trips_csv(trips: Iterable[Trip], out: TextIO) -> None:
    """One row per trip."""
    _write_csv(trips, TRIP_COLUMNS, out)


def write_stops_csv(stops: Iterable[Stop], out: TextIO) -> None:
    """One row per stop."""
    _write_csv(stops, STOP_COLUMNS, out)


def write_events_csv(events: Iterable[FleetEvent], out: TextIO) -> None:
    """One row per event; its values other than the place as a JSON object."""
    _write_csv(events, EVENT_COLUMNS, out)


def write_days_csv(days: Iterable[DaySummary], out: TextIO) -> None:
    """The daily summary: one row per local day."""
    _write_csv(days, DAY_COLUMNS, out)


def write_utilization_csv(rows: Iterable[Utilization], out: TextIO) -> None:
    """Utilization of assets or groups: one row per asset (or group) and period."""
    _write_csv(rows, UTILIZATION_COLUMNS, out)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    # Plain tags under a root that declares the default namespace: ElementTree's own
    # default_namespace option refuses the unqualified attributes GPX and KML use.
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _serialise(root: ET.Element) -> bytes:
    ET.indent(root)
    buffer = io.BytesIO()
    ET.ElementTree(root).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue()


def route_gpx(points: Iterable[RoutePoint], *, name: str) -> bytes:
    """A GPX 1.1 document with the route as one track."""
    root = ET.Element("gpx", {"xmlns": GPX_NS, "version": "1.1", "creator": "m2mhub"})
    metadata = _sub(root, "metadata")
    _sub(metadata, "name", name)
    track = _sub(root, "trk")
    _sub(track, "name", name)
    segment = _sub(track, "trkseg")
    for p in points:
        point = _sub(segment, "trkpt")
        point.set("lat", _coordinate(p.lat))
        point.set("lon", _coordinate(p.lon))
        # GPX 1.1 fixes the order of a point's children: ele before time.
        if p.altitude_m is not None:
            _sub(point, "ele", f"{p.altitude_m:.1f}")
        _sub(point, "time", format_ms(p.ts))
    return _serialise(root)


def _kml_coordinates(p: RoutePoint) -> str:
    # KML orders longitude first; altitude is optional.
    text = f"{_coordinate(p.lon)},{_coordinate(p.lat)}"
    return text if p.altitude_m is None else f"{text},{p.altitude_m:.1f}"


def route_kml(points: Iterable[RoutePoint], stops: Iterable[Stop] = (), *, name: str) -> bytes:
    """A KML 2.2 document: the route as a LineString, each stop as a point Placemark."""
    root = ET.Element("kml", {"xmlns": KML_NS})
    document = _sub(root, "Document")
    _sub(document, "name", name)
    placemark = _sub(document, "Placemark")
    _sub(placemark, "name", name)
    line = _sub(placemark, "LineString")
    _sub(line, "tessellate", "1")
    _sub(line, "coordinates", " ".join(_kml_coordinates(p) for p in points))
    for index, stop in enumerate(stops, start=1):
        if stop.lat is None or stop.lon is None:
            continue
        mark = _sub(document, "Placemark")
        _sub(mark, "name", f"Stop {index}")
        minutes = stop.duration_ms / 60_000
        span_text = f"{format_ms(stop.start_ts)} to {format_ms(stop.end_ts)}"
        _sub(mark, "description", f"{span_text} ({minutes:.0f} min)")
        span = _sub(mark, "TimeSpan")
        _sub(span, "begin", format_ms(stop.start_ts))
        _sub(span, "end", format_ms(stop.end_ts))
        point = _sub(mark, "Point")
        _sub(point, "coordinates", f"{_coordinate(stop.lon)},{_coordinate(stop.lat)}")
    return _serialise(root)


__all__ = [
    "DAY_COLUMNS",
    "EVENT_COLUMNS",
    "GPX_NS",
    "KML_NS",
    "ROUTE_COLUMNS",
    "STOP_COLUMNS",
    "TRIP_COLUMNS",
    "UTILIZATION_COLUMNS",
    "Columns",
    "route",
    "route_gpx",
    "route_kml",
    "write_days_csv",
    "write_events_csv",
    "write_route_csv",
    "write_stops_csv",
    "write_trips_csv",
    "write_utilization_csv",
]
