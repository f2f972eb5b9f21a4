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
from collections.abc import Iterable
from typing import Final, TextIO

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


def write_route_csv(points: Iterable[RoutePoint], out: TextIO) -> None:
    """One row per position."""
    writer = csv.writer(out)
    writer.writerow(["time", "lat", "lon", "altitude_m", "speed_kmh", "heading_deg"])
    for p in points:
        writer.writerow(
            [
                format_ms(p.ts),
                _coordinate(p.lat),
                _coordinate(p.lon),
                _cell(p.altitude_m),
                _cell(p.speed_kmh),
                _cell(p.heading_deg),
            ]
        )


def write_trips_csv(trips: Iterable[Trip], out: TextIO) -> None:
    """One row per trip."""
    writer = csv.writer(out)
    writer.writerow(
        [
            "start_time",
            "end_time",
            "start_lat",
            "start_lon",
            "end_lat",
            "end_lon",
            "distance_m",
            "duration_s",
            "max_speed_kmh",
            "avg_speed_kmh",
            "driving_s",
            "idle_s",
            "start_odometer_m",
            "end_odometer_m",
        ]
    )
    for t in trips:
        writer.writerow(
            [
                format_ms(t.start_ts),
                format_ms(t.end_ts),
                _coordinate(t.start_lat),
                _coordinate(t.start_lon),
                _coordinate(t.end_lat),
                _coordinate(t.end_lon),
                f"{t.distance_m:.0f}",
                _seconds(t.duration_ms),
                f"{t.max_speed_kmh:.1f}",
                f"{t.avg_speed_kmh:.1f}",
                _seconds(t.driving_ms),
                _seconds(t.idle_ms),
                f"{t.start_odometer_m:.0f}",
                f"{t.end_odometer_m:.0f}",
            ]
        )


def write_stops_csv(stops: Iterable[Stop], out: TextIO) -> None:
    """One row per stop."""
    writer = csv.writer(out)
    writer.writerow(["start_time", "end_time", "lat", "lon", "duration_s"])
    for s in stops:
        writer.writerow(
            [
                format_ms(s.start_ts),
                format_ms(s.end_ts),
                _coordinate(s.lat),
                _coordinate(s.lon),
                _seconds(s.duration_ms),
            ]
        )


def write_events_csv(events: Iterable[FleetEvent], out: TextIO) -> None:
    """One row per event; its values other than the place as a JSON object."""
    writer = csv.writer(out)
    writer.writerow(["time", "kind", "lat", "lon", "details"])
    for e in events:
        details = {k: v for k, v in sorted(e.values.items()) if k not in ("lat", "lon")}
        lat, lon = e.values.get("lat"), e.values.get("lon")
        writer.writerow(
            [
                format_ms(e.ts),
                e.kind.value,
                _coordinate(lat) if isinstance(lat, float) else "",
                _coordinate(lon) if isinstance(lon, float) else "",
                msgspec.json.encode(details).decode() if details else "",
            ]
        )


def write_days_csv(days: Iterable[DaySummary], out: TextIO) -> None:
    """The daily summary: one row per local day."""
    writer = csv.writer(out)
    writer.writerow(
        [
            "day",
            "distance_m",
            "max_speed_kmh",
            "driving_s",
            "idle_s",
            "off_s",
            "no_data_s",
            "engine_s",
            "odometer_start_m",
            "odometer_end_m",
        ]
    )
    for d in days:
        writer.writerow(
            [
                d.day.isoformat(),
                f"{d.distance_m:.0f}",
                f"{d.max_speed_kmh:.1f}",
                _seconds(d.driving_ms),
                _seconds(d.idle_ms),
                _seconds(d.off_ms),
                _seconds(d.no_data_ms),
                _seconds(d.engine_ms),
                f"{d.odometer_start_m:.0f}",
                f"{d.odometer_end_m:.0f}",
            ]
        )


def write_utilization_csv(rows: Iterable[Utilization], out: TextIO) -> None:
    """Utilization of assets or groups: one row per asset (or group) and period."""
    writer = csv.writer(out)
    writer.writerow(
        [
            "asset",
            "period",
            "assets",
            "driving_s",
            "idle_s",
            "off_s",
            "no_data_s",
            "used_s",
            "idle_share",
            "distance_m",
        ]
    )
    for u in rows:
        writer.writerow(
            [
                u.asset,
                u.period,
                u.assets,
                _seconds(u.driving_ms),
                _seconds(u.idle_ms),
                _seconds(u.off_ms),
                _seconds(u.no_data_ms),
                _seconds(u.used_ms),
                f"{u.idle_share:.3f}",
                f"{u.distance_m:.0f}",
            ]
        )


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
    "GPX_NS",
    "KML_NS",
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
