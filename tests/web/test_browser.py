"""The console in a real browser (Debian's chromium driven by Playwright) against a real
``m2mhub serve``: sign in, the fleet, live values, acknowledging an alarm, what viewers see.

Playwright never downloads a browser here: it drives /usr/bin/chromium. Without it (or
without Playwright) these tests are skipped with the reason, or fail when
``M2MHUB_REQUIRE_SERVICES=1`` (CI). Screenshots of each page go to $M2MHUB_SCREENSHOTS
(default: the system's temporary directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from m2mhub.config import Settings
from m2mhub.core.values import Role, ValueType
from m2mhub.platform import Platform
from m2mhub.rules.model import Rule
from m2mhub.rules.service import save_rule
from m2mhub.store.models import KeySpec
from tests.conftest import REQUIRE_SERVICES
from tests.processes import Server, m2mhub_env, serving
from tests.web.conftest import PASSWORD, USERS

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(os.environ.get("M2MHUB_SCREENSHOTS", tempfile.gettempdir()))
WAIT_MS = 10_000

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None and not CHROMIUM.is_file():
        problem = f"{CHROMIUM} not found (apt-get install chromium)"
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(problem + " (M2MHUB_REQUIRE_SERVICES=1)")
        pytest.skip(problem)


@dataclass
class Fleet:
    server: Server
    admin_key: str
    tokens: dict[str, str]

    def post(self, device_id: str, values: dict[str, Any] | list[dict[str, Any]]) -> None:
        response = httpx.post(
            f"{self.server.url}/api/v1/devices/{device_id}/telemetry",
            json=values,
            headers={"Authorization": f"Bearer {self.tokens[device_id]}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def api(self, path: str) -> Any:
        response = httpx.get(
            f"{self.server.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()


async def _prepare(data_dir: Path) -> tuple[str, dict[str, str]]:
    """A tenant, its users, a meter type, two meters and a rule that raises an alarm."""
    settings = Settings(data_dir=data_dir, roles="api", mqtt_enabled=False)
    async with Platform(settings) as platform:
        registry = platform.registry
        tenant = await registry.create_tenant("acme", "Acme")
        for role, email in USERS.items():
            await registry.create_user(tenant.id, email, role, PASSWORD)
        _, admin_key = await registry.create_api_key(tenant.id, "tests", Role.ADMIN)
        keys = [
            KeySpec("power_kw", ValueType.NUMBER, "kW"),
            KeySpec("voltage_v", ValueType.NUMBER, "V"),
        ]
        await registry.create_device_type(tenant.id, "meter", keys, report_interval_s=60)
        tokens = {}
        for name in ("meter-1", "meter-2"):
            device, token = await registry.create_device(
                tenant.id, type_name="meter", name=name, device_id=name
            )
            tokens[device.id] = token
        rule = Rule.model_validate(
            {
                "name": "overload",
                "scope": {"type": "meter"},
                "condition": {"threshold": {"key": "power_kw", "above": 100}},
                "actions": [{"alarm": {"severity": "major", "message": "Power above 100 kW"}}],
            }
        )
        await save_rule(platform.store, tenant.id, rule, source="api")
        return admin_key, tokens


@contextlib.contextmanager
def _fleet(tmp: Path) -> Iterator[Fleet]:
    # In a thread of its own: Playwright's synchronous API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        admin_key, tokens = thread.submit(asyncio.run, _prepare(tmp)).result()
    env = m2mhub_env(tmp, M2MHUB_MQTT_ENABLED="false", M2MHUB_PRESENCE_INTERVAL_S="0.5")
    with serving(env, tmp / "server.log") as server:
        yield Fleet(server, admin_key, tokens)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    _require_browser()
    with _fleet(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def _page(browser: Any, server: Server, *, width: int = 1280) -> Iterator[Any]:
    """A fresh browser context; on exit, checks that no request left the server."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    outside = [url for url in requests if not url.startswith(server.url + "/")]
    assert not outside, f"requests left {server.url}: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def _sign_in(page: Any, server: Server, role: Role) -> None:
    page.goto(f"{server.url}/console/")
    assert "/console/login" in page.url  # sent to sign in first
    page.fill("#email", USERS[role])
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{server.url}/console/")


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"m2mhub-console-{name}.png"), full_page=True)


def test_sign_in_see_the_fleet_and_a_value_arrive_live(browser: Any, fleet: Fleet) -> None:
    fleet.post("meter-2", {"power_kw": 4.2, "voltage_v": 229.5})
    with _page(browser, fleet.server) as page:
        _sign_in(page, fleet.server, Role.OPERATOR)
        row = page.locator('tr[data-device="meter-2"]')
        assert row.locator('[data-key="power_kw"]').inner_text() == "4.2"
        assert page.locator('tr[data-device="meter-1"] [data-status]').inner_text() == "never seen"
        page.fill("input[name=q]", "meter-2")
        page.wait_for_url("**/console/devices?q=meter-2")
        assert page.locator("#devices tbody tr").count() == 1
        _shot(page, "fleet")
        page.click("text=meter-2")
        page.wait_for_url("**/console/devices/meter-2")
        page.locator('#live[data-state="live"]').wait_for()
        page.evaluate("window.stillTheSamePage = true")
        fleet.post("meter-2", {"power_kw": 123.5})
        value = page.locator('#values [data-key="power_kw"]')
        value.filter(has_text="123.5").wait_for()
        assert page.evaluate("window.stillTheSamePage") is True  # no reload
        page.locator("#chart canvas").wait_for()
        _shot(page, "device")
        page.click("button[data-range='60000']")  # zoom to the last minute
        page.locator("#chart-info", has_text="of 1s").wait_for()


def test_an_operator_acknowledges_an_alarm_with_a_comment(browser: Any, fleet: Fleet) -> None:
    with _page(browser, fleet.server) as page:
        _sign_in(page, fleet.server, Role.OPERATOR)
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
        _shot(page, "alarms")
    [alarm] = fleet.api("/api/v1/alarms?device=meter-1")["items"]
    assert alarm["status"] == "acknowledged"
    assert alarm["acknowledged_by"] == "user:operator@example.com"
    history = fleet.api(f"/api/v1/alarms/{alarm['id']}/history")
    assert history[-1]["comment"] == "Checking the feeder"


def test_a_viewer_sees_no_buttons(browser: Any, fleet: Fleet) -> None:
    fleet.post("meter-1", {"power_kw": 160})
    with _page(browser, fleet.server, width=820) as page:  # a tablet held upright
        _sign_in(page, fleet.server, Role.VIEWER)
        _shot(page, "fleet-tablet")
        page.goto(f"{fleet.server.url}/console/devices/meter-1")
        page.locator("#values [data-key=power_kw]").wait_for()
        for selector in ("form[data-api]", "button[data-api]", "details.act", "#command-form"):
            assert page.locator(selector).count() == 0, selector
        assert page.locator("text=Audit log").count() == 0
        _shot(page, "device-viewer")
        page.goto(f"{fleet.server.url}/console/alarms?status=all")
        page.locator("tr[data-alarm]").first.wait_for()
        assert page.locator("details.act").count() == 0
        page.goto(f"{fleet.server.url}/console/audit")
        assert "Not allowed" in page.locator("h1").inner_text()


def test_the_audit_log_and_keyboard_sign_out(browser: Any, fleet: Fleet) -> None:
    with _page(browser, fleet.server) as page:
        _sign_in(page, fleet.server, Role.ADMIN)
        page.click("nav >> text=Audit log")
        page.locator("td code", has_text="user.login").first.wait_for()
        _shot(page, "audit")
        page.locator("button:has-text('Sign out')").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/console/login")
        _shot(page, "login")


def test_the_server_stops_at_once_with_a_live_page_open(browser: Any, tmp_path: Path) -> None:
    _require_browser()
    with _fleet(tmp_path) as running, _page(browser, running.server) as page:
        _sign_in(page, running.server, Role.VIEWER)
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


def _csp_violations(page: Any) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return violations


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
    with _page(browser, fleet.server) as page:
        violations = _csp_violations(page)
        _sign_in(page, fleet.server, Role.ADMIN)
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
        _shot(page, "map-cluster")
        page.fill("#track-form input[name=device]", "meter-1")
        page.click("button:has-text('Show track')")
        page.locator("#track-info", has_text="5 positions").wait_for()
        page.locator("#map path.track").wait_for()
        _shot(page, "map")
        # Reshape the geofence with the keyboard: the radius field, then save.
        page.click("[data-edit-fence='0']")
        page.fill("#fence-form input[name=radius_m]", "1200")
        page.click("button:has-text('Save geofence')")
        page.wait_for_load_state("load")
        page.locator("#map path.fence").wait_for()
        assert violations == [], violations
    saved = fleet.api("/api/v1/rules/depot")["rule"]["condition"]["geofence"]
    assert saved["circle"] == {"lat": 48.856, "lon": 2.352, "radius_m": 1200.0}


def test_a_rule_edit_shows_the_api_error_in_place_and_tests_against_history(
    browser: Any, fleet: Fleet
) -> None:
    now = int(time.time() * 1000)
    fleet.post("meter-2", [{"ts": now - 120_000, "values": {"power_kw": 180}}])
    with _page(browser, fleet.server) as page:
        violations = _csp_violations(page)
        _sign_in(page, fleet.server, Role.ADMIN)
        page.click("nav >> text=Rules")
        page.locator("tr[data-rule=overload]").wait_for()
        _shot(page, "rules")
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
        _shot(page, "rule")
        assert violations == [], violations


def test_an_operator_imports_assets_and_assigns_a_device(
    browser: Any, fleet: Fleet, tmp_path: Path
) -> None:
    sheet = tmp_path / "assets.csv"
    sheet.write_text("name,kind,devices,rated_kw\ngen-1,generator,meter-1,250\npump-1,pump,,\n")
    with _page(browser, fleet.server) as page:
        _sign_in(page, fleet.server, Role.OPERATOR)
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
        _shot(page, "assets")
    with _page(browser, fleet.server, width=820) as page:  # a tablet held upright
        _sign_in(page, fleet.server, Role.VIEWER)
        page.goto(f"{fleet.server.url}/console/assets")
        page.locator("tr[data-asset='gen-1']").wait_for()
        assert page.locator("form[data-api], #import-form").count() == 0
        _shot(page, "assets-tablet")
        page.goto(f"{fleet.server.url}/console/map")
        page.locator("#map .leaflet-interactive").first.wait_for()
        assert page.locator("[data-edit-fence]").count() == 0
        _shot(page, "map-tablet")
