"""The metering pages in a real browser (Debian's chromium driven by Playwright) against a
real ``m2mhub serve``: a meter's chart with its estimated intervals, an invoice's PDF.

Without chromium or Playwright the test is skipped, or fails when
``M2MHUB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from m2mhub.apps.metering.api import service_of
from m2mhub.config import Settings
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from tests.apps.metering.billing_data import declare, m1_reads
from tests.processes import Server, m2mhub_env, serving
from tests.web.browser import chromium, new_page, require_browser, screenshot, sign_in_as
from tests.web.conftest import PASSWORD, USERS

pytestmark = pytest.mark.slow

# What the chart draws, as metering.js colours it (opaque pixels of the bars).
ESTIMATED_RGB = (210, 87, 27)
ACTUAL_RGB = (31, 95, 168)


@dataclass
class Billed:
    server: Server
    admin_key: str


async def _prepare(data_dir: Path) -> tuple[str, dict[str, str]]:
    """A tenant with its users, billing_data's meters, accounts, links and tariff."""
    settings = Settings(data_dir=data_dir, roles="api", mqtt_enabled=False)
    async with Platform(settings) as platform:
        registry = platform.registry
        tenant = await registry.create_tenant("acme", "Acme")
        for role, email in USERS.items():
            await registry.create_user(tenant.id, email, role, PASSWORD)
        _, admin_key = await registry.create_api_key(tenant.id, "tests", Role.ADMIN)
        await registry.create_device_type(tenant.id, "meter", [])
        tokens = {}
        for name in ("m1", "m2a", "m2b"):
            device, token = await registry.create_device(
                tenant.id, type_name="meter", name=name, device_id=name
            )
            tokens[device.id] = token
        await declare(service_of(platform), tenant.id)
        return admin_key, tokens


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Billed]:
    require_browser()
    data_dir = tmp_path_factory.mktemp("metering")
    # In a thread of its own: Playwright's synchronous API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        admin_key, tokens = thread.submit(asyncio.run, _prepare(data_dir)).result()
    environment = m2mhub_env(data_dir, M2MHUB_MQTT_ENABLED="false")
    with serving(environment, data_dir / "server.log") as server:
        with server.client(tokens["m1"]) as device:
            reads = m1_reads()
            for start in range(0, len(reads), 200):
                sent = device.post("/api/v1/devices/m1/telemetry", json=reads[start : start + 200])
                assert sent.status_code == 200, sent.text
        with server.client(admin_key) as admin:
            run = admin.post(
                "/api/v1/metering/billing-runs", json={"period": "2026-10", "account": "A-1"}
            )
            assert run.status_code == 201, run.text
            assert run.json()["summary"][0]["issued"] == ["INV-000001"]
        yield Billed(server, admin_key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _pixels(page: Any, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the chart's canvas have the colour ``rgb`` (give or take)."""
    count = page.evaluate(
        """([r, g, b]) => {
          const canvas = document.querySelector("#meter-chart canvas");
          const context = canvas.getContext("2d");
          const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
          let n = 0;
          for (let i = 0; i < pixels.length; i += 4) {
            if (Math.abs(pixels[i] - r) < 12 && Math.abs(pixels[i + 1] - g) < 12 &&
                Math.abs(pixels[i + 2] - b) < 12 && pixels[i + 3] > 200) n++;
          }
          return n;
        }""",
        list(rgb),
    )
    return int(count)


def test_a_meter_chart_sets_estimated_intervals_apart_and_an_invoice_pdf_downloads(
    browser: Any, billed: Billed
) -> None:
    server = billed.server
    with new_page(browser, server, width=820) as page:  # a tablet held upright
        sign_in_as(page, server, Role.VIEWER)
        page.click("nav[aria-label=Main] >> text=Metering")
        page.wait_for_url("**/console/metering/accounts")
        page.click("text=A-1")
        page.click("#points-h ~ * a:has-text('m1')")
        page.wait_for_url("**/console/metering/meters/m1")
        # 9 October: the reads of three hours never arrived, four intervals are estimated.
        page.fill("input[name=from]", "2026-10-09")
        page.fill("input[name=to]", "2026-10-09")
        page.click("button:has-text('Show')")
        page.wait_for_url("**/console/metering/meters/m1?*from=2026-10-09*")
        page.locator('#meter-chart[data-drawn="24"] canvas').wait_for()
        legend = page.locator("#chart-legend")
        assert legend.is_visible()
        assert "Estimated (4)" in legend.inner_text()
        assert page.locator("#chart-legend .swatch.q-estimated").is_visible()
        assert _pixels(page, ESTIMATED_RGB) > 50  # the hatched bars' stripes and outline
        assert _pixels(page, ACTUAL_RGB) > 500
        # Nothing is wider than the tablet's screen: wide tables scroll inside the page.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        screenshot(page, "metering-meter")

        page.goto(f"{server.url}/console/metering/invoices/INV-000001")
        assert page.locator("#total").inner_text() == "242.24 EUR"
        pdf = page.locator("#downloads a", has_text="PDF")
        href = pdf.get_attribute("href")
        assert href == "/api/v1/metering/invoices/INV-000001.pdf"
        answer = page.context.request.get(f"{server.url}{href}")  # the browser's session
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/pdf"
        assert answer.body().startswith(b"%PDF-")
        screenshot(page, "metering-invoice")
    # The same link without the session is refused.
    assert httpx.get(f"{server.url}{href}", timeout=10).status_code == 401
