"""A vehicle's day in a real browser (Debian's chromium driven by Playwright) against a real
``m2mhub serve``: the van's readings go in over HTTP as its tracker's would, the server's
fleet processing finds the trips, and the day page draws them with Leaflet.

Without chromium or Playwright the test is skipped, or fails when
``M2MHUB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from m2mhub.apps.fleet import storage
from m2mhub.config import Settings
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from tests.apps.fleet.conftest import PROFILE, VAN, ZONE
from tests.apps.fleet.vans import VanDay, local_ms
from tests.processes import m2mhub_env, serving
from tests.web.browser import (
    Fleet,
    chromium,
    new_page,
    require_browser,
    screenshot,
    sign_in_as,
)
from tests.web.conftest import PASSWORD, USERS

pytestmark = pytest.mark.slow

DAY = VanDay()
#: How long the server may take to work through the day's readings.
PROCESSED_WITHIN_S = 60.0


async def _prepare(data_dir: Path) -> tuple[str, str]:
    """A tenant with a viewer, the ``van`` type as a vehicle type, and the van."""
    settings = Settings(data_dir=data_dir, roles="api", mqtt_enabled=False)
    async with Platform(settings) as platform:
        registry = platform.registry
        tenant = await registry.create_tenant("acme", "Acme")
        await registry.create_user(tenant.id, USERS[Role.VIEWER], Role.VIEWER, PASSWORD)
        _, admin_key = await registry.create_api_key(tenant.id, "tests", Role.ADMIN)
        van_type = await registry.create_device_type(tenant.id, "van", [])
        await storage.set_profile(platform.store, tenant.id, van_type.id, PROFILE, ZONE)
        _, token = await registry.create_device(
            tenant.id, type_name="van", name="Van 1", device_id=VAN
        )
        return admin_key, token


def _trips(served: Fleet) -> list[dict[str, Any]]:
    span = urlencode({"from": local_ms("2026-06-10T00:00"), "to": local_ms("2026-06-11T00:00")})
    items: list[dict[str, Any]] = served.api(f"/api/v1/fleet/devices/{VAN}/trips?{span}")["items"]
    return items


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """``m2mhub serve`` (every role) with the van's day posted as its tracker would."""
    require_browser()
    data_dir = tmp_path_factory.mktemp("fleet-console")
    # In a thread of its own: Playwright's synchronous API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        admin_key, token = thread.submit(asyncio.run, _prepare(data_dir)).result()
    environment = m2mhub_env(data_dir, M2MHUB_MQTT_ENABLED="false")
    with serving(environment, data_dir / "server.log") as server:
        fleet = Fleet(server, admin_key, {VAN: token}, int(environment["M2MHUB_MQTT_PORT"]))
        readings = DAY.readings
        for i in range(0, len(readings), 40):
            fleet.post(VAN, [{"ts": ts, "values": values} for ts, values in readings[i : i + 40]])
        # The fleet service works on the bus in the server; its outcome shows in the API.
        deadline = time.monotonic() + PROCESSED_WITHIN_S
        while len(_trips(fleet)) < 3:
            assert time.monotonic() < deadline, f"no 3 trips after {PROCESSED_WITHIN_S} s"
            time.sleep(0.2)
        yield fleet


def test_the_day_page_draws_the_route_and_lists_the_trips(served: Fleet) -> None:
    with chromium() as browser, new_page(browser, served.server) as page:
        # new_page fails the test on leaving if any request went past the server.
        sign_in_as(page, served.server, Role.VIEWER)
        page.goto(f"{served.server.url}/console/vehicles/{VAN}?day=2026-06-10")
        # fleet-day.js draws with Leaflet's default renderer: each layer an SVG path.
        route = page.locator("#map svg path.route")
        route.wait_for()
        outline = route.get_attribute("d") or ""
        # "M x y", then "L x y" for each point Leaflet keeps after simplifying the line:
        # the van drives straight legs, so the corners between them.
        assert outline.startswith("M") and outline.count("L") >= 3, outline[:200]
        box = route.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
        markers = page.locator("#map path.trip-start, #map path.trip-end")
        assert markers.count() == 6  # each trip's start and end
        assert page.locator("#map path.stop").count() == 3
        trips = page.locator("#trip-list li")
        assert trips.count() == 3
        assert page.locator("#trips-h").inner_text().split() == ["Trips", "3"]
        assert "km" in trips.first.inner_text()
        screenshot(page, "fleet-day")
        # A trip in the list zooms the map to it.
        before = page.evaluate("document.querySelector('#map path.route').getAttribute('d')")
        page.click("#trip-list li:nth-child(2) button")
        page.wait_for_function(
            "before => document.querySelector('#map path.route').getAttribute('d') !== before",
            arg=before,
        )
