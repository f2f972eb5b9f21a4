"""Queries: a 30-day chart of a one-reading-per-second device, and latest values of a fleet.

For each backend this

1. fills a store straight through ``Store.write_readings`` (big batches):
   one device with one value per second for ``--seconds`` (default 30 days,
   2,592,000 points) and ``--devices`` devices (default 10,000) with
   ``--history`` readings of ``--keys`` values each;
2. runs ``Store.refresh_rollups`` until nothing is pending, and times it;
3. times, at the store and through the HTTP API of a real server process:
   the chart (1-hour buckets over the whole range) and the latest values of
   every device of the fleet;
4. times the baselines the rollups and the latest table replace: the same
   chart computed from raw points, and the latest values found by a
   GROUP BY over raw telemetry.

Run: ``python bench/queries.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from _common import (
    HOUR_MS,
    Timing,
    machine_summary,
    new_parser,
    pg_schema,
    pg_store_url,
    postgres_version,
    rule,
    run_server,
    stop_cleanly_on_sigterm,
    temp_dir,
    time_calls,
)
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role, Value
from m2mhub.registry.service import Registry
from m2mhub.store import Segment, Store, open_store
from m2mhub.store.base import Row
from m2mhub.store.models import Bucket, KeySpec

DAY_MS = 86_400_000
FILL_BATCH = 50_000  # readings per write_readings call while filling


@dataclass
class Fleet:
    """What was stored: ids, pks and keys for the queries."""

    chart_id: str
    chart_pk: int
    chart_start: int
    chart_end: int
    chart_key_id: int
    fleet_pks: list[int]
    fleet_keys: list[str]
    chart_admin: str
    fleet_admin: str


@dataclass
class Line:
    what: str
    timing: Timing
    note: str = ""


async def atime(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[Timing, Any]:
    runs = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await call()
        runs.append((time.perf_counter() - start) * 1000)
    return Timing(runs), result


# -- filling ---------------------------------------------------------------------------------


async def fill(store: Store, args: argparse.Namespace) -> Fleet:
    registry = Registry(store)
    charts = await registry.create_tenant("charts")
    fleet = await registry.create_tenant("fleet")
    _, chart_admin = await registry.create_api_key(charts.id, "bench", Role.ADMIN)
    _, fleet_admin = await registry.create_api_key(fleet.id, "bench", Role.ADMIN)
    await registry.create_device_type(charts.id, "meter", [KeySpec("power", unit="W")])
    keys = [f"k{i}" for i in range(args.keys)]
    await registry.create_device_type(fleet.id, "sensor", [KeySpec(k) for k in keys])
    chart, _ = await registry.create_device(
        charts.id, type_name="meter", name="meter 1", device_id="meter-1"
    )
    csv = "name,type,id\n" + "".join(
        f"sensor {i:06d},sensor,sensor-{i:06d}\n" for i in range(args.devices)
    )
    start = time.perf_counter()
    devices = [d for d, _ in await registry.import_devices_csv(fleet.id, csv)]
    print(f"created {len(devices):,} devices in {time.perf_counter() - start:.1f} s", flush=True)

    # One value per second, ending at least an hour before now, on whole hours.
    end = (now_ms() // HOUR_MS - 1) * HOUR_MS
    first = end - args.seconds * 1000
    first -= first % HOUR_MS
    points = (end - first) // 1000
    start = time.perf_counter()
    for offset in range(0, points, FILL_BATCH):
        batch: list[tuple[int, int, dict[str, Value]]] = [
            (chart.pk, first + i * 1000, {"power": 500.0 + (i % 3600) / 10 + (i % 7)})
            for i in range(offset, min(points, offset + FILL_BATCH))
        ]
        await store.write_readings(batch)
    seconds = time.perf_counter() - start
    print(
        f"filled the chart device: {points:,} points in {seconds:.1f} s "
        f"({points / seconds:,.0f} points/s via write_readings)",
        flush=True,
    )

    start = time.perf_counter()
    recent = now_ms() - args.history * 1000 - 60_000
    readings: list[tuple[int, int, dict[str, Value]]] = [
        (d.pk, recent + j * 1000, {k: float((n + j) % 100) for k in keys})
        for n, d in enumerate(devices)
        for j in range(args.history)
    ]
    per_call = max(1, FILL_BATCH // args.keys)
    for offset in range(0, len(readings), per_call):
        await store.write_readings(readings[offset : offset + per_call])
    fleet_points = len(readings) * args.keys
    seconds = time.perf_counter() - start
    print(
        f"filled the fleet: {fleet_points:,} points in {seconds:.1f} s "
        f"({fleet_points / seconds:,.0f} points/s)",
        flush=True,
    )
    key_ids = await store.key_ids(["power"])
    return Fleet(
        chart.id,
        chart.pk,
        first,
        end,
        key_ids["power"],
        [d.pk for d in devices],
        keys,
        chart_admin,
        fleet_admin,
    )


async def compute_rollups(store: Store, fleet: Fleet) -> list[str]:
    """Run refresh_rollups until nothing is pending; returns what it took."""
    lines = []
    for what, pks in (("chart device", [fleet.chart_pk]), ("fleet", None)):
        start = time.perf_counter()
        hours = 0
        while done := await store.refresh_rollups(pks, limit=1000):
            hours += done
        seconds = time.perf_counter() - start
        lines.append(
            f"rollups, {what}: {hours:,} device-hours in {seconds:.1f} s "
            f"({hours / seconds if seconds else 0:,.0f} device-hours/s)"
        )
        print(lines[-1], flush=True)
    assert await store.pending_rollups() == 0
    return lines


# -- the queries -------------------------------------------------------------------------------


def same_buckets(a: list[Bucket], b: list[Bucket]) -> bool:
    """Rollup and raw answers agree (sums may differ in the last bits)."""
    if [x.ts for x in a] != [x.ts for x in b]:
        return False
    for x, y in zip(a, b, strict=True):
        if (x.count, x.min, x.max, x.first, x.last) != (y.count, y.min, y.max, y.first, y.last):
            return False
        if abs((x.sum or 0) - (y.sum or 0)) > 1e-6 * max(1.0, abs(x.sum or 0)):
            return False
    return True


def latest_baseline_sql(backend: str) -> str:
    """Latest value of every (device, key) of a pk range, found in raw telemetry."""
    if backend == "sqlite":
        # SQLite takes the bare columns from the row holding max(ts).
        return (
            "SELECT device_pk, key_id, max(ts), num, str, bool FROM telemetry "
            "WHERE device_pk BETWEEN ? AND ? GROUP BY device_pk, key_id"
        )
    return (
        "SELECT DISTINCT ON (device_pk, key_id) device_pk, key_id, ts, num, str, bool "
        "FROM telemetry WHERE device_pk BETWEEN %s AND %s ORDER BY device_pk, key_id, ts DESC"
    )


@contextlib.contextmanager
def raw_connection(
    backend: str, location: str
) -> Iterator[Callable[[str, tuple[Any, ...]], list[Row]]]:
    """A plain connection to the store's database, for the baselines."""
    if backend == "sqlite":
        with contextlib.closing(sqlite3.connect(location)) as conn:
            yield lambda sql, params: conn.execute(sql, params).fetchall()
    else:
        pg_url, schema = location.split("#")
        with psycopg.connect(pg_url, options=f"-c search_path={schema}", autocommit=True) as pg:
            yield lambda sql, params: pg.execute(sql, params).fetchall()


async def store_queries(
    store: Store, fleet: Fleet, backend: str, location: str, repeat: int
) -> list[Line]:
    lines = []
    segment = [Segment(fleet.chart_pk, fleet.chart_start, fleet.chart_end)]
    hours = (fleet.chart_end - fleet.chart_start) // HOUR_MS

    first, _ = await atime(lambda: store.aggregate(segment, "power", HOUR_MS), 1)
    timing, buckets = await atime(lambda: store.aggregate(segment, "power", HOUR_MS), repeat)
    assert len(buckets) == hours, (len(buckets), hours)
    lines.append(
        Line(
            f"Store.aggregate, 1h buckets ({hours} buckets)",
            timing,
            f"first call {first.best:.1f} ms",
        )
    )
    raw_timing, raw = await atime(
        lambda: store._aggregate_part(
            fleet.chart_pk, fleet.chart_key_id, fleet.chart_start, fleet.chart_end, HOUR_MS, ""
        ),
        max(1, repeat // 5),
    )
    lines.append(
        Line(
            "  baseline: same buckets from raw points",
            raw_timing,
            f"answers {'agree' if same_buckets(buckets, raw) else 'DIFFER'}",
        )
    )

    pks = fleet.fleet_pks
    first, _ = await atime(lambda: store.latest(pks), 1)
    timing, found = await atime(lambda: store.latest(pks), repeat)
    assert all(len(found[pk]) == len(fleet.fleet_keys) for pk in pks)
    lines.append(
        Line(f"Store.latest, {len(pks):,} devices", timing, f"first call {first.best:.1f} ms")
    )
    sql = latest_baseline_sql(backend)
    with raw_connection(backend, location) as query:
        raw_timing, rows = time_calls(lambda: query(sql, (min(pks), max(pks))), max(1, repeat // 5))
    assert len(rows) == len(pks) * len(fleet.fleet_keys)
    lines.append(Line("  baseline: GROUP BY over raw telemetry", raw_timing))
    return lines


def http_queries(url: str, fleet: Fleet, repeat: int) -> list[Line]:
    lines = []
    with httpx.Client(base_url=url, timeout=120) as client:

        def get(path: str, api_key: str, **params: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {api_key}"}
            response = client.get(path, params=params, headers=headers)
            response.raise_for_status()
            return response

        chart = f"/api/v1/devices/{fleet.chart_id}/aggregates"
        span = {"key": "power", "from": fleet.chart_start, "to": fleet.chart_end}
        first, _ = time_calls(lambda: get(chart, fleet.chart_admin, bucket="1h", **span), 1)
        timing, response = time_calls(
            lambda: get(chart, fleet.chart_admin, bucket="1h", **span), repeat
        )
        body = response.json()
        lines.append(
            Line(
                f"GET .../aggregates?bucket=1h ({len(body['buckets'])} buckets, "
                f"{len(response.content) / 1024:.0f} KiB)",
                timing,
                f"first call {first.best:.1f} ms",
            )
        )
        # 3601 s is not a whole number of minutes: no rollup can serve it.
        raw_timing, response = time_calls(
            lambda: get(chart, fleet.chart_admin, bucket="3601s", **span), max(1, repeat // 5)
        )
        lines.append(
            Line(
                f"  baseline: bucket=3601s, from raw points ({len(response.json()['buckets'])})",
                raw_timing,
            )
        )

        first, _ = time_calls(lambda: get("/api/v1/latest", fleet.fleet_admin, limit=10_000), 1)
        timing, response = time_calls(
            lambda: get("/api/v1/latest", fleet.fleet_admin, limit=10_000), repeat
        )
        devices = response.json()
        assert len(devices) == min(10_000, len(fleet.fleet_pks)), len(devices)
        lines.append(
            Line(
                f"GET /api/v1/latest?limit=10000 ({len(devices):,} devices, "
                f"{len(response.content) / 1024 / 1024:.1f} MiB)",
                timing,
                f"first call {first.best:.1f} ms",
            )
        )
        timing, response = time_calls(lambda: get("/api/v1/latest", fleet.fleet_admin), repeat)
        lines.append(
            Line(
                f"GET /api/v1/latest (default page: {len(response.json()):,} devices)",
                timing,
            )
        )
    return lines


# -- one backend ---------------------------------------------------------------------------------


async def prepare(
    database_url: str, backend: str, location: str, args: argparse.Namespace
) -> tuple[Fleet, list[str], list[Line]]:
    async with open_store(database_url) as store:
        fleet = await fill(store, args)
        rollups = await compute_rollups(store, fleet)
        lines = await store_queries(store, fleet, backend, location, args.repeat)
    return fleet, rollups, lines


def bench_backend(
    backend: str, args: argparse.Namespace, work: Path, schema: str | None
) -> tuple[list[str], list[Line], list[Line]]:
    if backend == "sqlite":
        path = work / "m2mhub.db"
        database_url, location = f"sqlite:///{path}", str(path)
    else:
        assert schema is not None
        database_url = pg_store_url(args.pg_url, schema)
        location = f"{args.pg_url}#{schema}"
    fleet, rollups, store_lines = asyncio.run(prepare(database_url, backend, location, args))
    with run_server(database_url, work, roles="api") as server:
        http_lines = http_queries(server.url, fleet, args.repeat)
    return rollups, store_lines, http_lines


def print_lines(title: str, lines: list[Line]) -> None:
    print(title)
    for line in lines:
        print(f"  {line.what:<58} {line.timing.describe()}  {line.note}")


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__)
    parser.add_argument(
        "--seconds", type=int, default=30 * 86_400, help="seconds of data of the chart device"
    )
    parser.add_argument("--devices", type=int, default=10_000, help="devices for latest values")
    parser.add_argument("--keys", type=int, default=5, help="keys per fleet device")
    parser.add_argument("--history", type=int, default=10, help="readings per fleet device")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each query")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    rule("machine")
    for fact in machine_summary(args.pg_url if "postgres" in backends else None):
        print(fact)
    results = {}
    for backend in backends:
        rule(f"queries on {backend}")
        if backend == "postgres" and postgres_version(args.pg_url) is None:
            print(f"skipped: PostgreSQL not reachable at {args.pg_url}")
            continue
        with temp_dir(f"m2mhub-bench-{backend}-") as work:
            if backend == "postgres":
                with pg_schema(args.pg_url, "bench_queries") as schema:
                    results[backend] = bench_backend(backend, args, work, schema)
            else:
                results[backend] = bench_backend(backend, args, work, None)
        _, store_lines, http_lines = results[backend]
        print_lines("store:", store_lines)
        print_lines("HTTP (client to server on 127.0.0.1):", http_lines)
    rule("summary (median ms)")
    for backend, (rollups, store_lines, http_lines) in results.items():
        print(f"{backend}:")
        for text in rollups:
            print(f"  {text}")
        for line in store_lines + http_lines:
            print(f"  {line.what:<70} {line.timing.median:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
