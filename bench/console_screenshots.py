"""Screenshots of the web console for docs/console.md, taken from a running demo.

This

1. starts ``m2mhub demo --speed 120`` on free loopback ports (HTTP and MQTT) in a temporary
   data directory, and reads the console user, its password and the admin API key from the
   banner it prints;
2. waits (bounded) until the demo's rules have raised an alarm and the vans have positions;
3. signs in with chromium (Debian's, driven by Playwright) and saves 1280x800 images of the
   fleet, a device with its chart, the alarms, the map, the rules and the assets, a pump's
   command forms, a van's day (fleet app) and a meter's consumption with the invoices of a
   billing run of yesterday (metering app) into ``docs/console/``: PNG, or JPEG (quality 80)
   when a PNG would be over ``--max-kb``.

The demo and the browser are stopped at the end, also after a failure or an interrupt, and the
data directory is removed. Run by hand: ``python bench/console_screenshots.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from _common import free_port, stop_cleanly_on_sigterm, temp_dir

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
OUT = Path(__file__).resolve().parent.parent / "docs" / "console"
DEVICE = "tank-north"
PUMP = "pump-north"  # its type declares a command method: the device page has its form
VAN = "van-01"
METER = "meter-002"  # a flaky link: the chart shows estimated intervals
ZONE = ZoneInfo("Europe/Amsterdam")  # the fleet's and the tariffs' time zone
CHART_KEY = "level_pct"
WEEK_MS = 7 * 86_400_000
# The chart shows days 2.1 to 0.8 before now: the day of history written at start and the
# replay, whose device time runs from a day behind the clock.
CHART_DAYS = (2.1, 0.8)
FULL_ENOUGH = 50  # %: the tower's level when the pump has been filling it for a while
BANNER = re.compile(
    r"console: (?P<url>http://\S+)/console/\s+user (?P<user>\S+) password (?P<password>\S+)"
)
ADMIN_KEY = re.compile(r"admin API key: (?P<key>\S+)")


@dataclass
class Demo:
    """A running ``m2mhub demo``: its address, console user and admin key."""

    process: subprocess.Popen[str]
    url: str
    user: str
    password: str
    admin_key: str

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET ``path``, or POST ``body`` to it, as the demo's admin."""
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        if body is None:
            response = httpx.get(self.url + path, headers=headers, timeout=10)
        else:
            response = httpx.post(self.url + path, json=body, headers=headers, timeout=120)
        response.raise_for_status()
        return response.json()


@contextlib.contextmanager
def run_demo(data_dir: Path, duration: float, speed: float) -> Iterator[Demo]:
    """``m2mhub demo`` in ``data_dir``; stopped (SIGINT, then SIGKILL) on exit."""
    port = free_port()
    env = {
        **os.environ,
        "M2MHUB_DATA_DIR": str(data_dir),
        "M2MHUB_HOST": "127.0.0.1",
        "M2MHUB_MQTT_HOST": "127.0.0.1",
        "M2MHUB_MQTT_PORT": str(free_port()),
        "M2MHUB_CONFIG": str(data_dir / "none.toml"),  # not the user's own settings
        "M2MHUB_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",  # the banner's lines unwrapped
        "NO_COLOR": "1",
    }
    (data_dir / "none.toml").write_text("")
    command = [sys.executable, "-m", "m2mhub", "demo", "--port", str(port)]
    command += ["--speed", f"{speed:g}", "--duration", f"{duration:g}"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read, args=(process, lines), daemon=True)
    reader.start()
    try:
        yield _banner(process, lines, timeout=90)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)


def _read(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip())


def _banner(process: subprocess.Popen[str], lines: list[str], timeout: float) -> Demo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = "\n".join(lines)
        console, key = BANNER.search(text), ADMIN_KEY.search(text)
        if console and key:
            return Demo(process, console["url"], console["user"], console["password"], key["key"])
        if process.poll() is not None:
            raise RuntimeError("the demo exited at start:\n" + text[-3000:])
        time.sleep(0.2)
    raise RuntimeError(f"no banner from the demo within {timeout:g} s:\n" + "\n".join(lines))


def wait_for(what: str, check: Callable[[], bool], deadline: float) -> None:
    """Poll ``check`` every second until it is true; RuntimeError after ``deadline``."""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(1)
    raise RuntimeError(f"{what}: not in time")


def active_alarms(demo: Demo) -> int:
    return len(demo.api("/api/v1/alarms?status=active")["items"])


def tank_level(demo: Demo) -> float:
    values = demo.api(f"/api/v1/devices/{DEVICE}/latest")["values"]
    return float(values[CHART_KEY]["value"]) if CHART_KEY in values else 0.0


def located(demo: Demo) -> bool:
    """The three vans and three trackers have reported positions."""
    return sum(1 for d in demo.api("/api/v1/latest") if "lat" in d["values"]) >= 6


def save(page: Any, name: str, max_kb: int) -> Path:
    """The viewport as ``name``.png, or .jpg (quality 80) when the PNG is over ``max_kb``."""
    png, jpg = OUT / f"{name}.png", OUT / f"{name}.jpg"
    page.screenshot(path=str(png))
    path = png
    if png.stat().st_size > max_kb * 1024:
        page.screenshot(path=str(jpg), type="jpeg", quality=80)
        png.unlink()
        path = jpg
    else:
        jpg.unlink(missing_ok=True)
    print(f"  {path.relative_to(OUT.parent.parent)}: {path.stat().st_size // 1024} KB")
    return path


def shoot(demo: Demo, max_kb: int) -> None:
    from playwright.sync_api import sync_playwright

    console = demo.url + "/console"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(20_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            page.goto(console + "/")
            page.fill("#email", demo.user)
            page.fill("#password", demo.password)
            page.click("button:has-text('Sign in')")
            page.wait_for_url(console + "/")
            page.wait_for_selector("table tbody tr")
            page.wait_for_timeout(1500)  # live values arrive
            save(page, "fleet", max_kb)

            page.goto(f"{console}/devices/{DEVICE}")
            page.select_option("#chart-key", CHART_KEY)
            page.wait_for_selector("#chart canvas")
            # A week, then zoomed into the history written at start, when the tower drained
            # with nobody to start its pump, and the replay since, when the rule fills it.
            with page.expect_response(lambda r: "/aggregates?" in r.url):
                page.click(f"button[data-range='{WEEK_MS}']")
            page.wait_for_timeout(500)
            box = page.locator("#chart .u-over").bounding_box()
            assert box is not None
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * (1 - CHART_DAYS[0] / 7), y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * (1 - CHART_DAYS[1] / 7), y, steps=10)
            page.mouse.up()
            page.wait_for_selector("#chart-reset:not([hidden])")
            page.wait_for_timeout(1500)  # the zoomed range loads
            save(page, "device", max_kb)

            page.goto(f"{console}/alarms")
            page.wait_for_selector("table tbody tr")
            page.wait_for_timeout(500)
            save(page, "alarms", max_kb)

            page.goto(f"{console}/map")
            page.wait_for_selector("#map .leaflet-interactive")
            page.wait_for_timeout(1500)
            save(page, "map", max_kb)

            page.goto(f"{console}/rules")
            page.wait_for_selector("table tbody tr")
            page.wait_for_timeout(500)
            save(page, "rules", max_kb)

            page.goto(f"{console}/assets")
            page.wait_for_selector("table tbody tr")
            page.wait_for_timeout(1000)
            save(page, "assets", max_kb)

            page.goto(f"{console}/devices/{PUMP}")
            page.locator("#commands-h").evaluate("h => h.scrollIntoView()")
            page.wait_for_timeout(500)
            save(page, "commands", max_kb)

            day = driven_day(demo)
            if day is None:
                print(f"  docs/console/fleet-day: not taken, {VAN} has not driven yet")
            else:
                page.goto(f"{console}/vehicles/{VAN}?day={day}")
                page.wait_for_selector("#map .leaflet-interactive")
                page.wait_for_timeout(1500)
                save(page, "fleet-day", max_kb)

            billed = (datetime.now(ZONE) - timedelta(days=1)).date()
            shown = f"from={billed - timedelta(days=1)}&to={billed}"
            page.goto(f"{console}/metering/meters/{METER}?{shown}")
            page.locator("#chart-h").evaluate("h => h.scrollIntoView()")
            page.wait_for_selector("#meter-chart canvas")
            page.wait_for_timeout(500)
            save(page, "metering-meter", max_kb)

            page.goto(f"{console}/metering/invoices")
            page.wait_for_selector("table tbody tr")
            page.wait_for_timeout(500)
            save(page, "metering-invoices", max_kb)

            context.close()
            if errors:
                raise RuntimeError(f"JavaScript errors in the console: {errors}")
        finally:
            browser.close()


def driven_day(demo: Demo) -> str | None:
    """The latest local day on which the van drove (the devices' time runs a day behind the
    clock, and the vans stay parked at night and on Sundays)."""
    today = datetime.now(ZONE).date()
    query = f"from={today - timedelta(days=3)}&to={today}"
    days = demo.api(f"/api/v1/fleet/devices/{VAN}/summary?{query}")["days"]
    driven = [d["day"] for d in days if d["driving_ms"] > 0]
    return driven[-1] if driven else None


def bill_yesterday(demo: Demo) -> None:
    """A billing run of yesterday in the meters' zone: the invoices page has invoices
    (held where the day's history is incomplete)."""
    yesterday = (datetime.now(ZONE) - timedelta(days=1)).date()
    period = f"{yesterday}..{yesterday}"
    run = demo.api("/api/v1/metering/billing-runs", {"period": period})
    outcomes = sorted({entry["outcome"] for entry in run["summary"]})
    print(f"  billing run of {period}: {', '.join(outcomes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=120, help="the demo's --speed")
    parser.add_argument(
        "--duration", type=float, default=240, help="the demo stops after this many seconds"
    )
    parser.add_argument("--max-kb", type=int, default=250, help="larger PNGs become JPEGs")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"{CHROMIUM} not found (apt-get install chromium)")
    stop_cleanly_on_sigterm()
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        temp_dir("m2mhub-shots-") as data_dir,
        run_demo(data_dir, args.duration, args.speed) as demo,
    ):
        started = time.monotonic()
        print(f"demo at {demo.url}; waiting for an alarm and positions ...")
        deadline = started + args.duration - 40  # the screenshots need a while
        wait_for("an active alarm", lambda: active_alarms(demo) > 0, deadline)
        wait_for("positions of the vans and trackers", lambda: located(demo), deadline)
        # Optional, for a chart that shows the pump at work: on, till the deadline.
        with contextlib.suppress(RuntimeError):
            wait_for(
                f"{DEVICE} filled to {FULL_ENOUGH} %",
                lambda: tank_level(demo) >= FULL_ENOUGH,
                deadline,
            )
        # Optional too, for a van's day with trips: the vans leave in the devices' morning.
        with contextlib.suppress(RuntimeError):
            wait_for(f"{VAN} on the road", lambda: driven_day(demo) is not None, deadline)
        bill_yesterday(demo)
        shoot(demo, args.max_kb)
    print(f"saved into {OUT}")


if __name__ == "__main__":
    main()
