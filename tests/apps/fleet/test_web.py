"""The fleet's console pages: a vehicle's day and utilization, for a signed-in viewer."""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from m2mhub.core.values import Role
from tests.apps.fleet.conftest import VAN, ZONE, send
from tests.apps.fleet.vans import VanDay
from tests.conftest import Api
from tests.web.conftest import PASSWORD, sign_in

DAY = VanDay()


def data_zone(html: str) -> str:
    found = re.search(r'<script type="application/json" id="day-data">(.*?)</script>', html, re.S)
    assert found is not None
    return str(json.loads(found.group(1))["timezone"])


@pytest.fixture
def backend() -> str:
    """The pages read through the queries the API tests run on both backends."""
    return "sqlite"


@pytest.fixture
async def viewer(api: Api) -> httpx.AsyncClient:
    await send(api, VAN, DAY.readings)
    await api.platform.registry.create_user(api.tenant.id, "v@example.com", Role.VIEWER, PASSWORD)
    client = httpx.AsyncClient(transport=api.client._transport, base_url="http://m2mhub.test")
    assert (await sign_in(client, "v@example.com")).status_code == 303
    return client


async def test_the_day_page_lists_trips_and_stops_and_carries_the_route(
    viewer: httpx.AsyncClient,
) -> None:
    page = await viewer.get(f"/console/vehicles/{VAN}", params={"day": "2026-06-10"})
    assert page.status_code == 200, page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    trips = re.search(r'<ol id="trip-list">(.*?)</ol>', html, re.S)
    assert trips is not None and trips.group(1).count("<li>") == 3
    # times of the day in the vehicle's zone (Amsterdam), whatever the reader's
    first = datetime.fromtimestamp(DAY.depot_leave / 1000, ZoneInfo(ZONE)).strftime("%H:%M")
    assert f'data-local title="{ZONE}">{first}</time>' in trips.group(1)
    assert data_zone(html) == ZONE
    stops = re.search(r'<ol id="stop-list">(.*?)</ol>', html, re.S)
    assert stops is not None and stops.group(1).count("<li>") == 3
    found = re.search(r'<script type="application/json" id="day-data">(.*?)</script>', html, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    assert len(data["route"]) > 100 and len(data["trips"]) == 3
    assert '<script src="/console/static/fleet-day.js"' in html
    assert f"/api/v1/fleet/devices/{VAN}/export/route?" in html
    script = await viewer.get("/console/static/fleet-day.js")
    assert script.status_code == 200 and "L.polyline" in script.text


async def test_the_vehicles_and_utilization_pages(viewer: httpx.AsyncClient) -> None:
    vehicles = await viewer.get("/console/vehicles")
    assert f'href="/console/vehicles/{VAN}"' in vehicles.text
    assert 'href="/console/utilization"' in vehicles.text  # also in the navigation
    page = await viewer.get(
        "/console/utilization", params={"from": "2026-06-08", "to": "2026-06-14", "period": "week"}
    )
    assert page.status_code == 200, page.text
    assert "2026-W24" in page.text and f">{VAN}</a>" in page.text
    assert "/api/v1/fleet/utilization?from=2026-06-08" in page.text


async def test_a_wrong_day_is_named(viewer: httpx.AsyncClient) -> None:
    page = await viewer.get(f"/console/vehicles/{VAN}", params={"day": "June"})
    assert page.status_code == 422 and "day" in page.text
