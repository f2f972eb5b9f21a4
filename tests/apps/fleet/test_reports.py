"""CSV, GPX 1.1 and KML 2.2 exports parse back and hold what was written."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, TextIO

import pytest

from m2mhub.apps.fleet import (
    FleetEvent,
    FleetSettings,
    RoutePoint,
    Stop,
    Trip,
    detect,
    group_utilization,
    summarize_days,
    utilization,
)
from m2mhub.apps.fleet.reports import (
    GPX_NS,
    KML_NS,
    route,
    route_gpx,
    route_kml,
    write_days_csv,
    write_events_csv,
    write_route_csv,
    write_stops_csv,
    write_trips_csv,
    write_utilization_csv,
)
from m2mhub.core.timeutil import format_ms, parse_time
from tests.apps.fleet.vans import AMSTERDAM, HOUR, VanDay

SETTINGS = FleetSettings(overspeed_kmh=100, offline_after_ms=HOUR)
DAY = VanDay()
RESULT = detect(DAY.readings, SETTINGS)
POINTS = route(DAY.readings)
NAME = 'Van "7" <north> & co'


def read_csv(write: Callable[[Any, TextIO], None], rows: object) -> list[dict[str, str]]:
    out = io.StringIO(newline="")
    write(rows, out)
    return list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))


def test_gpx_parses_back_with_every_point_in_order() -> None:
    root = ET.fromstring(route_gpx(POINTS, name=NAME))
    ns = {"g": GPX_NS}
    assert root.tag == f"{{{GPX_NS}}}gpx" and root.get("version") == "1.1"
    assert root.findtext("g:trk/g:name", namespaces=ns) == NAME
    points = root.findall("g:trk/g:trkseg/g:trkpt", ns)
    assert len(points) == len(POINTS) == len(DAY.readings)
    for element, point in zip(points, POINTS, strict=True):
        assert float(element.get("lat", "")) == pytest.approx(point.lat, abs=1e-7)
        assert float(element.get("lon", "")) == pytest.approx(point.lon, abs=1e-7)
        assert parse_time(element.findtext("g:time", namespaces=ns) or "") == point.ts
        # GPX 1.1 orders a point's children: ele (absent here) before time.
        assert [child.tag for child in element] == [f"{{{GPX_NS}}}time"]


def test_gpx_writes_elevation_before_time() -> None:
    root = ET.fromstring(route_gpx([RoutePoint(0, 52.1, 5.1, altitude_m=3.25)], name="x"))
    (point,) = root.iter(f"{{{GPX_NS}}}trkpt")
    assert [child.tag.split("}")[1] for child in point] == ["ele", "time"]
    assert point.findtext(f"{{{GPX_NS}}}ele") == "3.2"


def test_kml_has_the_route_line_and_a_placemark_per_stop() -> None:
    found_stops = [o for o in RESULT.outputs if isinstance(o, Stop)]
    root = ET.fromstring(route_kml(POINTS, found_stops, name=NAME))
    ns = {"k": KML_NS}
    assert root.tag == f"{{{KML_NS}}}kml"
    assert root.findtext("k:Document/k:name", namespaces=ns) == NAME
    placemarks = root.findall("k:Document/k:Placemark", ns)
    assert len(placemarks) == 1 + len(found_stops)
    line = placemarks[0].findtext("k:LineString/k:coordinates", namespaces=ns) or ""
    pairs = [tuple(map(float, item.split(","))) for item in line.split()]
    assert pairs == [pytest.approx((p.lon, p.lat), abs=1e-7) for p in POINTS]
    for mark, stop in zip(placemarks[1:], found_stops, strict=True):
        lon, lat = map(
            float, (mark.findtext("k:Point/k:coordinates", namespaces=ns) or "").split(",")
        )
        assert (lat, lon) == pytest.approx((stop.lat, stop.lon), abs=1e-7)
        assert mark.findtext("k:TimeSpan/k:begin", namespaces=ns) == format_ms(stop.start_ts)
        assert mark.findtext("k:TimeSpan/k:end", namespaces=ns) == format_ms(stop.end_ts)


def test_route_csv_has_a_header_and_a_row_per_point() -> None:
    rows = read_csv(write_route_csv, POINTS)
    assert list(rows[0]) == ["time", "lat", "lon", "altitude_m", "speed_kmh", "heading_deg"]
    assert len(rows) == len(POINTS)
    assert rows[0]["time"] == format_ms(POINTS[0].ts)
    assert float(rows[-1]["lat"]) == pytest.approx(POINTS[-1].lat, abs=1e-7)
    assert rows[0]["altitude_m"] == ""


def test_trips_and_stops_csv() -> None:
    found = [o for o in RESULT.outputs if isinstance(o, Trip)]
    rows = read_csv(write_trips_csv, found)
    assert list(rows[0])[:3] == ["start_time", "end_time", "start_lat"]
    assert [r["start_time"] for r in rows] == [format_ms(t.start_ts) for t in found]
    assert [int(r["distance_m"]) for r in rows] == [round(t.distance_m) for t in found]
    assert int(rows[0]["duration_s"]) == found[0].duration_ms // 1000
    stop_rows = read_csv(write_stops_csv, [o for o in RESULT.outputs if isinstance(o, Stop)])
    assert list(stop_rows[0]) == ["start_time", "end_time", "lat", "lon", "duration_s"]
    assert stop_rows[1]["duration_s"] == "901"


def test_events_csv_keeps_the_details_as_json() -> None:
    found = [o for o in RESULT.outputs if isinstance(o, FleetEvent)]
    rows = read_csv(write_events_csv, found)
    assert list(rows[0]) == ["time", "kind", "lat", "lon", "details"]
    assert [r["kind"] for r in rows] == [e.kind.value for e in found]
    overspeed = next(r for r in rows if r["kind"] == "overspeed")
    details = json.loads(overspeed["details"])
    assert details["limit_kmh"] == 100.0 and details["zone"] == ""
    assert "lat" not in details and overspeed["lat"]


def test_daily_summary_and_utilization_csv() -> None:
    days = summarize_days(DAY.readings, SETTINGS, zone=AMSTERDAM)
    rows = read_csv(write_days_csv, days)
    assert rows[0]["day"] == "2026-06-10"
    assert int(rows[0]["driving_s"]) == days[0].driving_ms // 1000
    per_asset = utilization(NAME, days, period="week")
    rows = read_csv(write_utilization_csv, [*per_asset, *group_utilization("north", per_asset)])
    assert list(rows[0])[:3] == ["asset", "period", "assets"]
    assert rows[0]["asset"] == NAME  # quotes and commas survive the csv module
    assert rows[1]["asset"] == "north" and rows[1]["period"] == "2026-W24"
    assert float(rows[0]["idle_share"]) == pytest.approx(per_asset[0].idle_share, abs=1e-3)
