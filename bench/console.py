"""The web console: the fleet page with 10,000 devices, a 30-day chart, live-view clients.

This

1. fills a fresh SQLite store through m2mhub's registry and ``Store.write_readings``:
   ``--devices`` devices with 5 latest values each, and one device with one value every
   ``--chart-step`` seconds for 30 days (rollups computed, as the scheduler would);
2. starts ``python -m m2mhub serve`` (role ``api``) on 127.0.0.1 and signs in as a user;
3. times the fleet page (``GET /console/``) and the chart's data (the aggregates call the
   device page makes for its 30-day range: ``bucket=3h``, ``fn=min,avg,max``) with httpx:
   time to the response's first byte (server time) and to its last, and the payload;
4. with chromium (Debian's, driven by Playwright) when there is one, loads the fleet page and
   draws the 30-day chart: the browser's navigation timing (first byte, first contentful
   paint, ``load``) and the bytes it transferred;
5. posts ``--rate`` readings a second (one reading of 5 values per request, from ``--rate``
   devices each reporting once a second, over keep-alive connections paced by the clock) and
   measures the server's CPU with 0, 10 and 50 live-view clients connected to
   ``/api/v1/stream`` (each watching a page of 50 posting devices, as the fleet page does).

Everything runs on 127.0.0.1; files and the server are removed at the end, also after a failure
or an interrupt. Run: ``python bench/console.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from _common import (
    HOUR_MS,
    CpuMeter,
    Server,
    machine_summary,
    rule,
    run_async,
    run_server,
    spread,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role, Value

EMAIL = "bench@example.com"
PASSWORD = "bench password 1"
KEYS = [f"v{i}" for i in range(5)]
DAY_MS = 24 * HOUR_MS
CHART_DEVICE = "meter-1"
PAGE = 50  # devices on a page of the fleet table, and in one live view's stream
FILL_BATCH = 50_000
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Filled:
    api_key: str
    device_ids: list[str]
    tokens: list[str]
    chart_from: int
    chart_to: int


# -- the data --------------------------------------------------------------------------------


async def fill(database_url: str, args: argparse.Namespace) -> Filled:
    from m2mhub.registry.service import Registry
    from m2mhub.store import open_store
    from m2mhub.store.models import KeySpec

    async with open_store(database_url) as store:
        registry = Registry(store)
        tenant = await registry.create_tenant("bench")
        await registry.create_user(tenant.id, EMAIL, Role.ADMIN, PASSWORD)
        _, api_key = await registry.create_api_key(tenant.id, "bench", Role.ADMIN)
        await registry.create_device_type(
            tenant.id, "sensor", [KeySpec(k, unit="unit") for k in KEYS], report_interval_s=60
        )
        await registry.create_device_type(tenant.id, "meter", [KeySpec("power", unit="W")])
        start = time.perf_counter()
        csv = "name,type,id\n" + "".join(
            f"sensor {i:06d},sensor,dev{i:06d}\n" for i in range(args.devices)
        )
        created = await registry.import_devices_csv(tenant.id, csv)
        now = now_ms()
        latest: list[tuple[int, int, dict[str, Value]]] = [
            (d.pk, now - 30_000, {k: float((n + j) % 100) for j, k in enumerate(KEYS)})
            for n, (d, _) in enumerate(created)
        ]
        for offset in range(0, len(latest), FILL_BATCH // len(KEYS)):
            await store.write_readings(latest[offset : offset + FILL_BATCH // len(KEYS)])
        print(
            f"{len(created):,} devices with {len(KEYS)} latest values each in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )

        chart, _ = await registry.create_device(
            tenant.id, type_name="meter", name="meter 1", device_id=CHART_DEVICE
        )
        start = time.perf_counter()
        end = now - 60_000
        first = end - 30 * DAY_MS
        step = args.chart_step * 1000
        count = (end - first) // step
        for offset in range(0, count, FILL_BATCH):
            await store.write_readings(
                [
                    (chart.pk, first + i * step, {"power": 500.0 + (i % 3600) / 10 + (i % 7)})
                    for i in range(offset, min(count, offset + FILL_BATCH))
                ]
            )
        hours = 0
        while done := await store.refresh_rollups([chart.pk], limit=1000):
            hours += done
        print(
            f"{CHART_DEVICE}: {count:,} values over 30 days and {hours} hourly rollups in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
        return Filled(
            api_key,
            [d.id for d, _ in created],
            [token for _, token in created],
            first,
            end,
        )


# -- page and chart through httpx ------------------------------------------------------------


def signed_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    answer = client.post(
        "/console/login",
        data={"email": EMAIL, "password": PASSWORD, "login_token": token.group(1)},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in refused: {answer.status_code} {answer.text[:300]}")
    return client


@dataclass
class Fetched:
    first_byte_ms: list[float]
    total_ms: list[float]
    size: int


def fetch(client: httpx.Client, path: str, repeat: int) -> Fetched:
    """``path`` ``repeat`` times after one warm-up: time to the first and the last byte."""
    client.get(path).raise_for_status()
    first: list[float] = []
    total: list[float] = []
    body = b""
    for _ in range(repeat):
        start = time.perf_counter()
        with client.stream("GET", path) as response:
            response.raise_for_status()
            chunks = response.iter_raw()
            head = next(chunks, b"")
            first.append((time.perf_counter() - start) * 1000)
            body = head + b"".join(chunks)
        total.append((time.perf_counter() - start) * 1000)
    return Fetched(first, total, len(body))


def chart_path(filled: Filled) -> str:
    return (
        f"/api/v1/devices/{CHART_DEVICE}/aggregates?key=power&bucket=3h&fn=min,avg,max"
        f"&from={filled.chart_from}&to={filled.chart_to}"
    )


def http_figures(server: Server, filled: Filled, repeat: int) -> None:
    rule("the fleet page and the 30-day chart through HTTP (httpx)")
    client = signed_in(server.url)
    with contextlib.closing(client):
        for label, path in (
            (f"fleet page, {len(filled.device_ids):,} devices, GET /console/", "/console/"),
            ("device table, sorted by last seen", "/console/devices?sort=last_seen&dir=desc"),
            ("30-day chart data, GET .../aggregates?bucket=3h", chart_path(filled)),
        ):
            got = fetch(client, path, repeat)
            extra = ""
            if "aggregates" in path:
                buckets = len(client.get(path).json()["buckets"])
                extra = f", {buckets} buckets"
            print(
                f"{label}\n  first byte {spread(got.first_byte_ms, ',.1f')} ms, "
                f"last byte {spread(got.total_ms, ',.1f')} ms, "
                f"{got.size / 1024:,.1f} KiB{extra} ({repeat} runs)",
                flush=True,
            )


# -- page and chart in chromium ---------------------------------------------------------------

NAVIGATION_JS = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const resources = performance.getEntriesByType("resource");
  return {
    first_byte: n.responseStart, html_done: n.responseEnd,
    fcp: fcp ? fcp.startTime : null, load: n.loadEventEnd,
    html_bytes: n.transferSize,
    other_bytes: resources.reduce((s, r) => s + r.transferSize, 0),
    requests: resources.length,
  };
}"""


def browser_figures(server: Server, repeat: int) -> None:
    rule("the fleet page and the 30-day chart in chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: the playwright package is not installed")
        return
    if not CHROMIUM.is_file():
        print(f"skipped: {CHROMIUM} not found")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}/console/login")
            page.fill("#email", EMAIL)
            page.fill("#password", PASSWORD)
            page.click("button:has-text('Sign in')")
            page.wait_for_url(f"{server.url}/console/")
            runs: list[dict[str, Any]] = []
            for _ in range(repeat):
                # A fresh navigation, with the static files cached as a returning user has them.
                page.goto(f"{server.url}/console/", wait_until="load")
                runs.append(page.evaluate(NAVIGATION_JS))

            def figure(key: str) -> str:
                return spread([r[key] for r in runs if r[key] is not None], ",.0f")

            print(
                f"fleet page: first byte {figure('first_byte')} ms, HTML received "
                f"{figure('html_done')} ms, first contentful paint {figure('fcp')} ms, "
                f"load {figure('load')} ms; HTML {runs[-1]['html_bytes'] / 1024:,.1f} KiB "
                f"transferred ({repeat} runs)",
                flush=True,
            )
            chart_ms: list[float] = []
            for _ in range(repeat):
                page.goto(f"{server.url}/console/devices/{CHART_DEVICE}", wait_until="load")
                page.locator("#chart canvas").wait_for()
                start = time.perf_counter()
                page.click(f"button[data-range='{30 * DAY_MS}']")
                page.locator("#chart-info", has_text="of 3h").wait_for()
                chart_ms.append((time.perf_counter() - start) * 1000)
            print(
                f"30-day chart: from the click on 30d to the chart drawn "
                f"{spread(chart_ms, ',.0f')} ms ({repeat} runs)",
                flush=True,
            )
        finally:
            browser.close()


# -- CPU per live-view client -----------------------------------------------------------------


def telemetry_request(port: int, device_id: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/devices/{device_id}/telemetry HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return head[9:12]


@dataclass
class Load:
    """Devices each posting one reading a second, spread over paced connections."""

    port: int
    devices: list[tuple[str, str]]
    connections: int
    sent: int = 0
    refused: int = 0
    stop: bool = False

    async def run(self) -> None:
        shares = [self.devices[i :: self.connections] for i in range(self.connections)]
        await asyncio.gather(*(self._connection(share) for share in shares))

    async def _connection(self, share: list[tuple[str, str]]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        gap = 1.0 / len(share)  # each device of the share once a second
        due = time.monotonic()
        n = 0
        try:
            while not self.stop:
                device_id, token = share[n % len(share)]
                n += 1
                body = msgspec.json.encode({k: float(n % 100) for k in KEYS})
                writer.write(telemetry_request(self.port, device_id, token, body))
                status = await read_response(reader)
                self.sent += 1
                if status != b"200":
                    self.refused += 1
                due += gap
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            writer.close()


@dataclass
class Viewer:
    """One live view: an SSE stream of ``/api/v1/stream`` for a page of devices."""

    port: int
    api_key: str
    devices: list[str]
    ready: asyncio.Event
    events: int = 0

    async def run(self) -> None:
        query = "&".join(f"device={d}" for d in self.devices)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"GET /api/v1/stream?{query} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.api_key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] != b"200":
                raise RuntimeError(f"stream refused: {head[:200]!r}")
            while chunk := await reader.read(65536):
                if not self.ready.is_set() and b"event: ready" in chunk:
                    self.ready.set()
                self.events += chunk.count(b"event: readings_stored")
        finally:
            writer.close()


async def measure_clients(
    server: Server, filled: Filled, clients: int, args: argparse.Namespace
) -> dict[str, float]:
    devices = list(zip(filled.device_ids, filled.tokens, strict=True))[: args.rate]
    load = Load(server.port, devices, args.connections)
    viewers = [
        Viewer(
            server.port,
            filled.api_key,
            [d for d, _ in devices[(i * PAGE) % len(devices) :][:PAGE]],
            asyncio.Event(),
        )
        for i in range(clients)
    ]
    tasks = [asyncio.ensure_future(v.run()) for v in viewers]
    loader = asyncio.ensure_future(load.run())
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(v.ready.wait() for v in viewers))
        await asyncio.sleep(args.warmup)  # the measurement starts once the load is steady
        sent, events = load.sent, sum(v.events for v in viewers)
        started = time.perf_counter()
        with CpuMeter(server) as cpu:
            await asyncio.sleep(args.seconds)  # the measured interval
        seconds = time.perf_counter() - started
        if loader.done():
            loader.result()  # the load generator's error, if it stopped
        return {
            "server": cpu.used["server"] / seconds,
            "generator": cpu.used["load generator"] / seconds,
            "readings": (load.sent - sent) / seconds,
            "events": (sum(v.events for v in viewers) - events) / seconds,
            "refused": load.refused,
        }
    finally:
        load.stop = True
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError):
            await asyncio.gather(loader, *tasks, return_exceptions=True)


def cpu_figures(server: Server, filled: Filled, args: argparse.Namespace) -> None:
    rule(f"server CPU with live-view clients, {args.rate:,} readings/s")
    counts = [int(c) for c in args.clients.split(",")]
    results: dict[int, list[dict[str, float]]] = {c: [] for c in counts}
    for _ in range(args.cpu_repeat):
        for clients in counts:
            got = run_async(measure_clients(server, filled, clients, args))
            results[clients].append(got)
            print(
                f"  {clients:3d} clients: server {got['server']:.3f} cores, "
                f"{got['readings']:,.0f} readings/s, {got['events']:,.0f} events/s to clients, "
                f"load generator {got['generator']:.2f} cores"
                + (f", {got['refused']:.0f} refused" if got["refused"] else ""),
                flush=True,
            )
    base = statistics.median(r["server"] for r in results[counts[0]])
    print(f"\nserver CPU (median of {args.cpu_repeat}); per client: above {counts[0]} clients")
    for clients in counts:
        cores = statistics.median(r["server"] for r in results[clients])
        per = (cores - base) / (clients - counts[0]) * 1000 if clients != counts[0] else None
        print(
            f"  {clients:3d} clients: {cores:.3f} cores"
            + (f", {per:.1f} ms of CPU per second per client" if per is not None else "")
        )


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000, help="devices in the fleet")
    parser.add_argument(
        "--chart-step", type=int, default=10, help="seconds between the chart device's values"
    )
    parser.add_argument("--repeat", type=int, default=10, help="runs of each page and chart")
    parser.add_argument("--rate", type=int, default=1000, help="readings a second while streaming")
    parser.add_argument("--connections", type=int, default=20, help="the load's connections")
    parser.add_argument("--clients", default="0,10,50", help="live-view clients, in turn")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per count")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    parser.add_argument("--cpu-repeat", type=int, default=2, help="rounds of the client counts")
    parser.add_argument("--no-browser", action="store_true", help="httpx figures only")
    args = parser.parse_args(argv)
    if args.rate > args.devices:
        parser.error("--rate: at most --devices (each device reports once a second)")
    stop_cleanly_on_sigterm()
    rule("console benchmark")
    for line in machine_summary(None):
        print(line)
    with temp_dir("m2mhub-bench-console-") as work:
        database_url = f"sqlite:///{work / 'console.db'}"
        filled = run_async(fill(database_url, args))
        with run_server(database_url, work, roles="api") as server:
            http_figures(server, filled, args.repeat)
            if not args.no_browser:
                browser_figures(server, min(args.repeat, 5))
            cpu_figures(server, filled, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
