"""What the browser tests share: Debian's chromium driven by Playwright, a served fleet,
pages that check no request left the server, signing in and screenshots.

Playwright never downloads a browser here: it drives /usr/bin/chromium. Without it (or
without Playwright) the tests are skipped with the reason, or fail when
``M2MHUB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
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
BLANK = "about:blank"


def require_browser() -> None:
    """Skip (or, in CI, fail) without Playwright or chromium."""
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


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium, closed on exit."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Fleet:
    """A served tenant: two meters with their tokens, a user of each role, an admin key."""

    server: Server
    admin_key: str
    tokens: dict[str, str]
    mqtt_port: int

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
def serve_fleet(data_dir: Path, **env: str) -> Iterator[Fleet]:
    """``m2mhub serve`` on the prepared tenant, with ``env`` added to its environment."""
    # In a thread of its own: Playwright's synchronous API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        admin_key, tokens = thread.submit(asyncio.run, _prepare(data_dir)).result()
    environment = m2mhub_env(data_dir, M2MHUB_PRESENCE_INTERVAL_S="0.5", **env)
    with serving(environment, data_dir / "server.log") as server:
        yield Fleet(server, admin_key, tokens, int(environment["M2MHUB_MQTT_PORT"]))


@contextlib.contextmanager
def new_page(browser: Any, server: Server, *, width: int = 1280) -> Iterator[Any]:
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
        settle(page)
        # The page first, without waiting for its unload handlers: a live stream (SSE) must
        # not hold the context's close up.
        page.close(run_before_unload=False)
        context.close()
    outside = [url for url in requests if not url.startswith((server.url + "/", BLANK))]
    assert not outside, f"requests left {server.url}: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def settle(page: Any) -> None:
    """Take the page to an empty document and wait until it is there.

    Chromium can acknowledge closing a page whose navigation is being committed (a form just
    sent, say) and then never close it, and Playwright's ``page.close()`` waits for ever
    (crbug.com/536385539, microsoft/playwright#42068). Once ``about:blank`` has loaded, no
    navigation of the page's own is under way.
    """
    with contextlib.suppress(Exception):  # a page that cannot get there is closed all the same
        page.goto(BLANK, timeout=WAIT_MS)


def sign_in_as(page: Any, server: Server, role: Role) -> None:
    """The sign-in form, as a person fills it in; ends on the fleet page."""
    page.goto(f"{server.url}/console/")
    assert "/console/login" in page.url  # sent to sign in first
    page.fill("#email", USERS[role])
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{server.url}/console/")


def screenshot(page: Any, name: str) -> None:
    """The whole page, to $M2MHUB_SCREENSHOTS (default: the system's temporary directory)."""
    page.screenshot(path=str(SHOTS / f"m2mhub-console-{name}.png"), full_page=True)


def csp_violations(page: Any) -> list[str]:
    """A list that fills with the page's Content-Security-Policy complaints."""
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return violations
