"""The console in a real browser (Debian's chromium driven by Playwright) against a real
``m2mhub serve``: sign in, the fleet, live values, acknowledging an alarm, what viewers see.

MQTT is off here; test_browser_mqtt.py covers what devices do over MQTT. Without chromium
or Playwright these tests are skipped, or fail when ``M2MHUB_REQUIRE_SERVICES=1`` (CI).
Screenshots of each page go to $M2MHUB_SCREENSHOTS (default: the temporary directory).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from m2mhub.core.values import Role
from tests.web.browser import (
    Fleet,
    chromium,
    csp_violations,
    new_page,
    require_browser,
    screenshot,
    serve_fleet,
    sign_in_as,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_browser()
    with serve_fleet(tmp_path_factory.mktemp("console"), M2MHUB_MQTT_ENABLED="false") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_sign_in_see_the_fleet_and_a_value_arrive_live(browser: Any, fleet: Fleet) -> None:
    fleet.post("meter-2", {"power_kw": 4.2, "voltage_v": 229.5})
    with new_page(browser, fleet.server) as page:
        sign_in_as(page, fleet.server, Role.OPERATOR)
        row = page.locator('tr[data-device="meter-2"]')
        assert row.locator('[data-key="power_kw"]').inner_text() == "4.2"
        assert page.locator('tr[data-device="meter-1"] [data-status]').inner_text() == "never seen"
        page.fill("input[name=q]", "meter-2")
        page.wait_for_url("**/console/devices?q=meter-2")
        assert page.locator("#devices tbody tr").count() == 1
        screenshot(page, "fleet")
        page.click("text=meter-2")
        page.wait_for_url("**/console/devices/meter-2")
        page.locator('#live[data-state="live"]').wait_for()
        page.evaluate("window.stillTheSamePage = true")
        fleet.post("meter-2", {"power_kw": 123.5})
        value = page.locator('#values [data-key="power_kw"]')
        value.filter(has_text="123.5").wait_for()
        assert page.evaluate("window.stillTheSamePage") is True  # no reload
        page.locator("#chart canvas").wait_for()
        screenshot(page, "device")
        page.click("button[data-range='60000']")  # zoom to the last minute
        page.locator("#chart-info", has_text="of 1s").wait_for()


def test_an_operator_acknowledges_an_alarm_with_a_comment(browser: Any, fleet: Fleet) -> None:
    with new_page(browser, fleet.server) as page:
        sign_in_as(page, fleet.server, Role.OPERATOR)
        page.goto(f"{fleet.server.url}/console/alarms")
        page.locator('#live[data-state="live"]').wait_for()
        fleet.post("meter-1", {"power_kw": 150})  # the rule raises an alarm
        row = page.locator("tr[data-alarm]", has_text="meter-1")
        row.wait_for()  # arrives live, without a reload
        row.locator("summary").click()
        row.locator("textarea").fill("Checking the feeder")
        row.locator("button:has-text('Acknowledge')").click()
        page.locator("#toast", has_text="updated").wait_for()
        page.select_option("select[name=status]", "acknowledged")
        acknowledged = page.locator("tr[data-alarm]", has_text="meter-1")
        acknowledged.locator(".badge.alarm-acknowledged").wait_for()
        screenshot(page, "alarms")
    [alarm] = fleet.api("/api/v1/alarms?device=meter-1")["items"]
    assert alarm["status"] == "acknowledged"
    assert alarm["acknowledged_by"] == "user:operator@example.com"
    history = fleet.api(f"/api/v1/alarms/{alarm['id']}/history")
    assert history[-1]["comment"] == "Checking the feeder"


def test_a_viewer_sees_no_buttons(browser: Any, fleet: Fleet) -> None:
    fleet.post("meter-1", {"power_kw": 160})
    with new_page(browser, fleet.server, width=820) as page:  # a tablet held upright
        sign_in_as(page, fleet.server, Role.VIEWER)
        screenshot(page, "fleet-tablet")
        page.goto(f"{fleet.server.url}/console/devices/meter-1")
        page.locator("#values [data-key=power_kw]").wait_for()
        for selector in ("form[data-api]", "button[data-api]", "details.act", "#command-form"):
            assert page.locator(selector).count() == 0, selector
        assert page.locator("text=Audit log").count() == 0
        screenshot(page, "device-viewer")
        page.goto(f"{fleet.server.url}/console/alarms?status=all")
        page.locator("tr[data-alarm]").first.wait_for()
        assert page.locator("details.act").count() == 0
        page.goto(f"{fleet.server.url}/console/audit")
        assert "Not allowed" in page.locator("h1").inner_text()


def test_the_audit_log_and_keyboard_sign_out(browser: Any, fleet: Fleet) -> None:
    with new_page(browser, fleet.server) as page:
        sign_in_as(page, fleet.server, Role.ADMIN)
        page.click("nav >> text=Audit log")
        page.locator("td code", has_text="user.login").first.wait_for()
        screenshot(page, "audit")
        page.locator("button:has-text('Sign out')").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/console/login")
        screenshot(page, "login")


def test_the_server_stops_at_once_with_a_live_page_open(browser: Any, tmp_path: Path) -> None:
    require_browser()
    with (
        serve_fleet(tmp_path, M2MHUB_MQTT_ENABLED="false") as running,
        new_page(browser, running.server) as page,
    ):
        sign_in_as(page, running.server, Role.VIEWER)
        page.goto(f"{running.server.url}/console/devices/meter-1")
        page.locator('#live[data-state="live"]').wait_for()
        started = time.monotonic()
        running.server.process.send_signal(signal.SIGTERM)
        running.server.process.wait(timeout=10)
        assert time.monotonic() - started < 5, running.server.output()
        # uvicorn ends by raising the signal it handled again: -15 is its clean exit.
        assert running.server.process.returncode in (0, -signal.SIGTERM)
        output = running.server.output()
        assert "Application shutdown complete" in output, output
        assert "Traceback" not in output and "ERROR" not in output, output


def test_the_map_shows_markers_tracks_and_geofences_without_tiles(
    browser: Any, fleet: Fleet
) -> None:
    now = int(time.time() * 1000)
    track = [
        {
            "ts": now - 60_000 * (5 - i),
            "values": {"lat": 48.85 + i * 0.002, "lon": 2.35 + i * 0.001},
        }
        for i in range(5)
    ]
    fleet.post("meter-1", track)
    fleet.post("meter-2", {"lat": 48.8584, "lon": 2.2945})
    fence = {
        "name": "depot",
        "scope": {"type": "meter"},
        "condition": {"geofence": {"circle": {"lat": 48.856, "lon": 2.352, "radius_m": 800}}},
        "actions": [{"alarm": {"severity": "warning", "message": "At the depot"}}],
    }
    created = httpx.post(
        f"{fleet.server.url}/api/v1/rules",
        json=fence,
        headers={"Authorization": f"Bearer {fleet.admin_key}"},
        timeout=10,
    )
    assert created.status_code in (201, 409), created.text
    with new_page(browser, fleet.server) as page:
        violations = csp_violations(page)
        sign_in_as(page, fleet.server, Role.ADMIN)
        page.click("nav >> text=Map")
        page.wait_for_url("**/console/map")
        page.locator("#map path.pt-device").first.wait_for()
        assert page.locator("#map path.pt-device, #map .cluster").count() >= 1
        assert page.locator("#map img.leaflet-tile").count() == 0  # no tile URL: no tiles
        page.locator("#map path.fence").wait_for()
        for _ in range(4):  # zoomed out, the two meters 4 km apart become one cluster
            page.click(".leaflet-control-zoom-out")
            page.wait_for_timeout(300)
        page.locator("#map .cluster", has_text="2").wait_for()
        screenshot(page, "map-cluster")
        page.fill("#track-form input[name=device]", "meter-1")
        page.click("button:has-text('Show track')")
        page.locator("#track-info", has_text="5 positions").wait_for()
        page.locator("#map path.track").wait_for()
        screenshot(page, "map")
        # Reshape the geofence with the keyboard: the radius field, then save.
        page.click("[data-edit-fence='0']")
        page.fill("#fence-form input[name=radius_m]", "1200")
        with page.expect_navigation():  # saved, the page reloads itself
            page.click("button:has-text('Save geofence')")
        page.locator("#map path.fence").wait_for()
        assert violations == [], violations
    saved = fleet.api("/api/v1/rules/depot")["rule"]["condition"]["geofence"]
    assert saved["circle"] == {"lat": 48.856, "lon": 2.352, "radius_m": 1200.0}


def test_an_admin_draws_a_new_geofence_at_the_centre_of_the_map(browser: Any, fleet: Fleet) -> None:
    fleet.post("meter-2", {"lat": 48.8584, "lon": 2.2945})
    with new_page(browser, fleet.server) as page:
        violations = csp_violations(page)
        sign_in_as(page, fleet.server, Role.ADMIN)
        page.goto(f"{fleet.server.url}/console/map")
        page.locator("#map path.pt-device").first.wait_for()
        fences_before = page.locator("#map path.fence").count()
        page.click("button:has-text('New geofence')")
        form = page.locator("#new-fence-form")
        centre = page.evaluate(
            "[document.querySelector('#new-fence-form [name=lat]').value,"
            " document.querySelector('#new-fence-form [name=lon]').value]"
        )
        page.locator("#map path.fence-editing").wait_for()  # the circle, before it is saved
        form.locator("input[name=name]").fill("yard")
        form.locator("select[name=scope]").select_option("type")
        form.locator("input[name=target]").fill("meter")
        form.locator("input[name=radius_m]").fill("350")
        form.locator("select[name=trigger]").select_option("outside")
        form.locator("input[name=message]").fill("Left the yard")
        form.locator("button:has-text('Create geofence')").click()
        page.locator(".fence-list li[data-fence=yard]").wait_for()  # the page reloads
        page.wait_for_function(
            f"document.querySelectorAll('#map path.fence').length > {fences_before}"
        )
        screenshot(page, "map-new-fence")
        assert violations == [], violations
    rule = fleet.api("/api/v1/rules/yard")["rule"]
    assert rule["scope"] == {"type": "meter"}
    circle = rule["condition"]["geofence"]["circle"]
    assert circle == {"lat": float(centre[0]), "lon": float(centre[1]), "radius_m": 350.0}
    assert rule["condition"]["geofence"]["trigger"] == "outside"
    assert rule["actions"][0]["alarm"]["message"] == "Left the yard"


def test_a_rule_edit_shows_the_api_error_in_place_and_tests_against_history(
    browser: Any, fleet: Fleet
) -> None:
    now = int(time.time() * 1000)
    fleet.post("meter-2", [{"ts": now - 120_000, "values": {"power_kw": 180}}])
    with new_page(browser, fleet.server) as page:
        violations = csp_violations(page)
        sign_in_as(page, fleet.server, Role.ADMIN)
        page.click("nav >> text=Rules")
        page.locator("tr[data-rule=overload]").wait_for()
        screenshot(page, "rules")
        page.click("text=overload")
        page.wait_for_url("**/console/rules/overload")
        text = page.input_value("#definition")
        line = next(line for line in text.splitlines() if line.strip() == "above: 100.0")
        indent = line[: len(line) - len(line.lstrip())]
        page.fill("#definition", text.replace(line, f"{line}\n{indent}clear_below: 120"))
        page.click("button:has-text('Save')")
        error = page.locator("#rule-error")
        error.locator("code", has_text="condition.threshold").wait_for()
        assert "clear_below (120.0) must be <= above" in error.inner_text()
        assert page.get_attribute("#definition", "aria-invalid") == "true"
        page.fill("#definition", text)
        page.fill("#test-form input[name=device]", "meter-2")
        page.click("button:has-text('Test against history')")
        results = page.locator("#test-results")
        results.locator("td", has_text="raised").first.wait_for()
        assert "alarm major: Power above 100 kW" in results.inner_text()
        screenshot(page, "rule")
        assert violations == [], violations


def test_an_operator_imports_assets_and_assigns_a_device(
    browser: Any, fleet: Fleet, tmp_path: Path
) -> None:
    sheet = tmp_path / "assets.csv"
    sheet.write_text("name,kind,devices,rated_kw\ngen-1,generator,meter-1,250\npump-1,pump,,\n")
    book = openpyxl.Workbook()
    assert book.active is not None
    book.active.append(["name", "kind", "capacity_l"])
    book.active.append(["tank-1", "tank", 1500])
    workbook = tmp_path / "tanks.xlsx"
    book.save(workbook)
    with new_page(browser, fleet.server) as page:
        sign_in_as(page, fleet.server, Role.OPERATOR)
        page.click("nav >> text=Assets")
        page.locator("text=No assets yet.").wait_for()
        page.set_input_files("#import-form input[type=file]", str(sheet))
        page.click("#import-form button")
        row = page.locator("tr[data-asset='gen-1']")
        row.wait_for()  # the table reloads after the import
        assert "meter-1" in row.inner_text()
        pump = page.locator("tr[data-asset='pump-1']")
        pump.locator("summary").click()
        pump.locator("input[name=device]").fill("meter-2")
        pump.locator("button:has-text('Assign')").click()
        page.locator("tr[data-asset='pump-1'] .attached", has_text="meter-2").wait_for()
        page.set_input_files("#import-form input[type=file]", str(workbook))
        page.click("#import-form button")
        tank = page.locator("tr[data-asset='tank-1']")
        tank.wait_for()  # an Excel workbook goes the same way
        assert "capacity_l" in tank.inner_text() and "1500" in tank.inner_text()
        screenshot(page, "assets")
    with new_page(browser, fleet.server, width=820) as page:  # a tablet held upright
        sign_in_as(page, fleet.server, Role.VIEWER)
        page.goto(f"{fleet.server.url}/console/assets")
        page.locator("tr[data-asset='gen-1']").wait_for()
        assert page.locator("form[data-api], #import-form").count() == 0
        screenshot(page, "assets-tablet")
        page.goto(f"{fleet.server.url}/console/map")
        page.locator("#map .leaflet-interactive").first.wait_for()
        assert page.locator("[data-edit-fence], #new-fence").count() == 0
        screenshot(page, "map-tablet")
