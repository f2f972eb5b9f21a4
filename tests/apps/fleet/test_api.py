"""The fleet REST API: profiles, trips, stops, events, route, summary, utilization, exports."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date

import pytest

from m2mhub.apps.fleet import Trip, detect, summarize_days
from m2mhub.apps.fleet.profiles import fleet_settings
from m2mhub.apps.fleet.reports import GPX_NS, KML_NS, route
from m2mhub.core.values import Role
from tests.apps.fleet.conftest import PROFILE, VAN, send
from tests.apps.fleet.vans import AMSTERDAM, VanDay, local_ms
from tests.conftest import Api

DAY = VanDay()
SETTINGS = fleet_settings(PROFILE)
RANGE = {"from": str(local_ms("2026-06-10T00:00")), "to": str(local_ms("2026-06-11T00:01"))}
TRIPS = [o for o in detect(DAY.readings, SETTINGS).outputs if isinstance(o, Trip)]


@pytest.fixture
async def day(api: Api) -> Api:
    await send(api, VAN, DAY.readings)
    return api


async def test_profiles_are_listed_and_refused_with_the_field_named(api: Api) -> None:
    listed = (await api.client.get("/api/v1/fleet/profiles", headers=api.admin)).json()
    assert listed[0]["type"] == "van" and listed[0]["settings"] == PROFILE
    assert listed[0]["effective"]["min_parking_ms"] == 300_000
    for body, field in (
        ({"settings": {"overspeed": 100}}, "settings.overspeed"),
        ({"settings": {"max_gap_ms": "long"}}, "settings.max_gap_ms"),
        ({"settings": {"max_gap_ms": 0}}, "max_gap_ms"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ):
        response = await api.client.put("/api/v1/fleet/profiles/van", json=body, headers=api.admin)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field
    viewer = api.as_key(await api.key(Role.VIEWER))
    response = await api.client.put("/api/v1/fleet/profiles/van", json={}, headers=viewer)
    assert response.status_code == 403
    missing = await api.client.put("/api/v1/fleet/profiles/nope", json={}, headers=api.admin)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "type"


async def test_trips_page_by_page_for_a_viewer(day: Api) -> None:
    viewer = day.as_key(await day.key(Role.VIEWER))
    found, cursor = [], None
    while True:
        params = {**RANGE, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await day.client.get(
            f"/api/v1/fleet/devices/{VAN}/trips", params=params, headers=viewer
        )
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [(t["start_ts"], t["end_ts"]) for t in found] == [(t.start_ts, t.end_ts) for t in TRIPS]
    assert [t["distance_m"] for t in found] == [t.distance_m for t in TRIPS]


async def test_stops_events_and_route(day: Api) -> None:
    base = f"/api/v1/fleet/devices/{VAN}"
    stops = (await day.client.get(f"{base}/stops", params=RANGE, headers=day.admin)).json()
    assert [s["start_ts"] for s in stops["items"]][1:] == [DAY.arrive_a, DAY.gap_end]
    params = {**RANGE, "kind": "overspeed"}
    events = (await day.client.get(f"{base}/events", params=params, headers=day.admin)).json()
    assert [e["kind"] for e in events["items"]] == ["overspeed"]
    assert events["items"][0]["values"]["start_ts"] == DAY.overspeed_start
    points = (await day.client.get(f"{base}/route", params=RANGE, headers=day.admin)).json()
    assert len(points["points"]) == len(route(DAY.readings))


async def test_the_day_summary_in_the_profile_zone(day: Api) -> None:
    params = {"from": "2026-06-10", "to": "2026-06-10"}
    response = await day.client.get(
        f"/api/v1/fleet/devices/{VAN}/summary", params=params, headers=day.admin
    )
    (found,) = response.json()["days"]
    (expected,) = [
        d
        for d in summarize_days(DAY.readings, SETTINGS, zone=AMSTERDAM)
        if d.day == date(2026, 6, 10)
    ]
    assert found["day"] == "2026-06-10"
    assert found["distance_m"] == pytest.approx(expected.distance_m)
    assert found["driving_ms"] == expected.driving_ms and found["idle_ms"] == expected.idle_ms


async def test_utilization_of_a_device_an_asset_and_a_group(day: Api) -> None:
    store, tenant = day.platform.store, day.tenant
    device = await store.get_device(VAN)
    asset = await store.create_asset(tenant.id, "Van 1", "van", {})
    await store.assign_device(asset.id, device.pk, local_ms("2026-06-01T00:00"))
    group = await store.create_group(tenant.id, "north")
    await store.set_group_members(group.id, add=[device.pk])
    common = {"from": "2026-06-10", "to": "2026-06-10"}
    for params in ({"device": VAN}, {"asset": "Van 1"}, {"group": "north"}):
        response = await day.client.get(
            "/api/v1/fleet/utilization", params={**common, **params}, headers=day.admin
        )
        assert response.status_code == 200, response.text
        (row,) = response.json()["assets"]
        assert row["period"] == "2026-06-10" and row["driving_ms"] > 0
    week = await day.client.get(
        "/api/v1/fleet/utilization",
        params={**common, "period": "week"},
        headers=day.admin,
    )
    body = week.json()
    assert [r["period"] for r in body["assets"]] == ["2026-W24"]
    assert [(g["asset"], g["assets"]) for g in body["groups"]] == [("north", 1)]
    exported = await day.client.get(
        "/api/v1/fleet/utilization", params={**common, "format": "csv"}, headers=day.admin
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert {r["asset"] for r in rows} == {VAN, "north"}


async def test_exports_parse_back(day: Api) -> None:
    base = f"/api/v1/fleet/devices/{VAN}/export"
    trips = await day.client.get(f"{base}/trips", params=RANGE, headers=day.admin)
    assert trips.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        trips.headers["content-disposition"] == 'attachment; filename="van-1-trips-2026-06-10.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(trips.text, newline="")))
    assert [float(r["distance_m"]) for r in rows] == pytest.approx(
        [round(t.distance_m) for t in TRIPS]
    )
    gpx = await day.client.get(
        f"{base}/route", params={**RANGE, "format": "gpx"}, headers=day.admin
    )
    assert gpx.headers["content-type"] == "application/gpx+xml"
    points = ET.fromstring(gpx.content).findall(f".//{{{GPX_NS}}}trkpt")
    assert len(points) == len(route(DAY.readings))
    kml = await day.client.get(
        f"{base}/stops", params={**RANGE, "format": "kml"}, headers=day.admin
    )
    assert kml.headers["content-type"] == "application/vnd.google-earth.kml+xml"
    marks = ET.fromstring(kml.content).findall(f".//{{{KML_NS}}}Placemark")
    assert len(marks) == 1 + 3  # the route and each stop
    summary = await day.client.get(f"{base}/summary", params=RANGE, headers=day.admin)
    assert next(csv.DictReader(io.StringIO(summary.text, newline="")))["day"] == "2026-06-10"


async def test_errors_name_the_field(day: Api) -> None:
    base = f"/api/v1/fleet/devices/{VAN}"
    for url, params, status, field in (
        (f"{base}/trips", {"from": "yesterday-ish"}, 422, "from"),
        (f"{base}/trips", {"from": "2026-06-11T00:00Z", "to": "2026-06-10T00:00Z"}, 422, "to"),
        (f"{base}/export/summary", {"format": "gpx"}, 422, "format"),
        (f"{base}/export/speeds", {}, 422, "report"),
        (f"{base}/trips", {"cursor": "nonsense"}, 422, "cursor"),
        ("/api/v1/fleet/devices/ghost/trips", {}, 404, "device"),
        ("/api/v1/fleet/utilization", {"from": "10/06/2026"}, 422, "from"),
        ("/api/v1/fleet/utilization", {"asset": "nope"}, 404, "asset"),
    ):
        response = await day.client.get(url, params=params, headers=day.admin)
        assert response.status_code == status, (url, params, response.text)
        assert response.json()["error"]["field"] == field, (url, params)


async def test_a_device_that_is_not_a_vehicle_is_named(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("meter-1", "meter")
    response = await api.client.get("/api/v1/fleet/devices/meter-1/trips", headers=api.admin)
    assert response.status_code == 404
    assert "fleet profile" in response.json()["error"]["message"]
