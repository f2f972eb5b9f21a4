"""HTTP batch ingest: data points per second through the real API, beside the store's ceiling.

For each backend this

1. creates a tenant, a device type with ``--values`` numeric keys and
   ``--devices`` devices (with their own tokens) through m2mhub's registry;
2. starts ``python -m m2mhub serve`` on 127.0.0.1 (a free port);
3. posts ``--points`` values as batches of ``--readings`` readings from
   ``--clients`` keep-alive connections, every device with its own token,
   and counts the points per second from the first request to the last 200;
4. measures the store's raw ceiling: the very same rows, in the same order,
   bulk-inserted straight into a fresh telemetry-shaped table (SQLite:
   ``executemany`` in big transactions; PostgreSQL: binary ``COPY``).

The load generator is this process: requests are encoded before the clock
starts, and it only writes bytes and reads the short answers, so it needs a
small share of a core (printed). Run: ``python bench/ingest_http.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import psycopg

from _common import (
    HOUR_MS,
    CpuMeter,
    count_stored,
    machine_summary,
    new_parser,
    pg_checkpoint,
    pg_schema,
    pg_store_url,
    postgres_version,
    prepare,
    rule,
    run_server,
    scrape_metric,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from m2mhub.core.timeutil import now_ms

T = TypeVar("T")

with_uvloop = False
try:
    import uvloop

    with_uvloop = True
except ImportError:  # the standard loop only costs the load generator a little more CPU
    pass


@dataclass(frozen=True)
class Load:
    """What to post: ``requests`` bodies, in order, and the rows they hold."""

    devices: list[tuple[str, int, str]]  # (device id, pk, token)
    bodies: list[tuple[int, bytes]]  # (index into devices, JSON body)
    points: int
    key_ids: dict[str, int]
    first_ts: int
    readings: int
    values: int

    def rows(self) -> Iterator[tuple[int, int, int, float, None, None]]:
        """The telemetry rows of the bodies, in the order they are posted."""
        decoder = msgspec.json.Decoder()
        for device, body in self.bodies:
            pk = self.devices[device][1]
            for reading in decoder.decode(body):
                ts = reading["ts"]
                for key, value in reading["values"].items():
                    yield (pk, ts, self.key_ids[key], float(value), None, None)


@dataclass
class Run:
    """One timed HTTP run."""

    clients: int
    points: int
    seconds: float
    latencies_ms: list[float]
    cpu: str
    stored: int
    transactions: int

    @property
    def rate(self) -> float:
        return self.points / self.seconds

    def latency(self, quantile: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))]


@dataclass
class Result:
    """The runs of one backend and its ceiling."""

    backend: str
    runs: list[Run]
    ceiling_rows_s: float
    ceiling_what: str


# -- preparation ----------------------------------------------------------------------------


def build_load(
    devices: list[tuple[str, int, str]],
    key_ids: dict[str, int],
    *,
    points: int,
    readings: int,
    values: int,
    seed: int = 1,
) -> Load:
    """Bodies for every device in turn, one reading per second of device time."""
    per_request = readings * values
    requests = max(1, points // per_request)
    rounds = -(-requests // len(devices))
    # Start far enough back that the last reading is not in the future.
    first_ts = (now_ms() - (rounds + 2) * readings * 1000) // HOUR_MS * HOUR_MS
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    names = list(key_ids)[:values]
    bodies: list[tuple[int, bytes]] = []
    for n in range(requests):
        device, round_ = n % len(devices), n // len(devices)
        base = first_ts + round_ * readings * 1000
        batch = [
            {
                "ts": base + i * 1000,
                "values": {k: round(rng.uniform(0, 100), 2) for k in names},
            }
            for i in range(readings)
        ]
        bodies.append((device, encoder.encode(batch)))
    return Load(devices, bodies, requests * per_request, key_ids, first_ts, readings, values)


def warmup_body(load: Load) -> bytes:
    """A one-reading body stamped before the load's range (so it adds no timed rows)."""
    ts = load.first_ts - HOUR_MS
    return msgspec.json.encode([{"ts": ts, "values": {k: 1.0 for k in load.key_ids}}])


# -- the load generator ---------------------------------------------------------------------


def http_request(port: int, device_id: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/devices/{device_id}/telemetry HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def post_all(
    port: int, requests: list[tuple[bytes, int]], clients: int
) -> tuple[float, list[float], int]:
    """Post every request over ``clients`` connections; (seconds, latencies, points accepted)."""
    queue = iter(requests)
    latencies: list[float] = []
    accepted = 0
    errors: list[str] = []

    async def client() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request, points in queue:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                latencies.append((time.perf_counter() - start) * 1000)
                if head[9:12] == b"200":
                    accepted += points
                elif len(errors) < 5:
                    errors.append(f"{head[:12].decode()} {body[:200].decode(errors='replace')}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError("the server refused requests: " + "; ".join(errors))
    return seconds, latencies, accepted


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    if with_uvloop:
        return uvloop.run(coro)
    return asyncio.run(coro)


# -- the ceilings -----------------------------------------------------------------------------

TELEMETRY_SQLITE = """
CREATE TABLE telemetry (
    device_pk INTEGER NOT NULL, ts INTEGER NOT NULL, key_id INTEGER NOT NULL,
    num REAL, str TEXT, bool INTEGER,
    PRIMARY KEY (device_pk, ts, key_id)
) WITHOUT ROWID
"""

TELEMETRY_POSTGRES = """
CREATE TABLE telemetry (
    device_pk BIGINT NOT NULL, ts BIGINT NOT NULL, key_id INTEGER NOT NULL,
    num DOUBLE PRECISION, str TEXT, bool BOOLEAN,
    PRIMARY KEY (device_pk, ts, key_id)
)
"""


def sqlite_ceiling(
    path: Path, rows: list[tuple[int, int, int, float, None, None]], chunk: int
) -> float:
    """Rows/s of executemany into a fresh telemetry table, ``chunk`` rows per transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # The server's settings (m2mhub.store.sqlite): WAL, synchronous=NORMAL.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(TELEMETRY_SQLITE)
        start = time.perf_counter()
        for i in range(0, len(rows), chunk):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO telemetry VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows[i : i + chunk],
            )
            conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        (count,) = conn.execute("SELECT count(*) FROM telemetry").fetchone()
        assert count == len(rows), (count, len(rows))
    finally:
        conn.close()
    return len(rows) / seconds


def postgres_ceiling(
    pg_url: str, schema: str, rows: list[tuple[int, int, int, float, None, None]], chunk: int
) -> float:
    """Rows/s of binary COPY into a fresh telemetry table, ``chunk`` rows per transaction."""
    with psycopg.connect(pg_url, options=f"-c search_path={schema}") as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(TELEMETRY_POSTGRES)
        conn.commit()
        start = time.perf_counter()
        for i in range(0, len(rows), chunk):
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY telemetry (device_pk, ts, key_id, num, str, bool) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "int8", "int4", "float8", "text", "bool"])
                for row in rows[i : i + chunk]:
                    copy.write_row(row)
            conn.commit()
        seconds = time.perf_counter() - start
        count = conn.execute("SELECT count(*) FROM telemetry").fetchone()
        assert count is not None and count[0] == len(rows), (count, len(rows))
    return len(rows) / seconds


# -- one backend ------------------------------------------------------------------------------


@contextlib.contextmanager
def store_url(backend: str, args: argparse.Namespace, work: Path, name: str) -> Iterator[str]:
    """A fresh, empty database for one run."""
    if backend == "sqlite":
        yield f"sqlite:///{work / name}.db"
    else:
        with pg_schema(args.pg_url, f"bench_{name}") as schema:
            yield pg_store_url(args.pg_url, schema)


def http_run(
    backend: str, args: argparse.Namespace, work: Path, database_url: str, clients: int
) -> tuple[Run, Load]:
    """Post the load over ``clients`` connections to a fresh server on an empty database."""
    devices, key_ids = asyncio.run(prepare(database_url, args.devices, args.values))
    load = build_load(
        devices, key_ids, points=args.points, readings=args.readings, values=args.values
    )
    with run_server(database_url, work, roles=args.roles) as server:
        port = server.port
        requests = [
            (http_request(port, devices[d][0], devices[d][2], body), args.readings * args.values)
            for d, body in load.bodies
        ]
        # Warm-up: every device authenticates once and the keys are known; not timed.
        warm = warmup_body(load)
        warmups = [(http_request(port, d[0], d[2], warm), args.values) for d in devices]
        run_loop(post_all(port, warmups, clients))
        if backend == "postgres":
            pg_checkpoint(args.pg_url)
        with CpuMeter(server, with_postgres=backend == "postgres") as cpu:
            seconds, latencies, accepted = run_loop(post_all(port, requests, clients))
        transactions = scrape_metric(
            httpx.get(f"{server.url}/metrics").text, "m2mhub_ingest_transactions_total"
        )
    if accepted != load.points:
        raise RuntimeError(f"{accepted} points acknowledged, {load.points} sent")
    stored = asyncio.run(count_stored(database_url)) - len(devices) * args.values
    run = Run(clients, accepted, seconds, latencies, cpu.describe(seconds), stored, transactions)
    return run, load


def bench_backend(backend: str, args: argparse.Namespace, work: Path) -> Result:
    """HTTP runs at each number of clients, then the ceiling with the same rows."""
    runs: list[Run] = []
    load: Load | None = None
    for clients in args.clients:
        print(
            f"{args.points:,} points as requests of {args.readings} readings x {args.values} "
            f"values from {args.devices} devices, {clients} connections ...",
            flush=True,
        )
        with store_url(backend, args, work, f"ingest_{clients}") as database_url:
            run, load = http_run(backend, args, work, database_url, clients)
        runs.append(run)
        report_run(run)
    assert load is not None
    print("measuring the raw ceiling with the same rows ...", flush=True)
    rows = list(load.rows())
    if backend == "sqlite":
        ceiling = sqlite_ceiling(work / "ceiling.db", rows, args.ceiling_chunk)
        what = f"sqlite3 executemany, {args.ceiling_chunk:,} rows per transaction"
    else:
        with pg_schema(args.pg_url, "bench_ceiling") as schema:
            pg_checkpoint(args.pg_url)
            ceiling = postgres_ceiling(args.pg_url, schema, rows, args.ceiling_chunk)
        what = f"psycopg binary COPY, {args.ceiling_chunk:,} rows per transaction"
    print(f"raw ceiling: {ceiling:,.0f} rows/s ({what})")
    return Result(backend, runs, ceiling, what)


def report_run(run: Run) -> None:
    print(
        f"  HTTP ingest: {run.rate:,.0f} points/s ({run.points:,} points in {run.seconds:.2f} s); "
        f"request latency p50 {run.latency(0.5):.0f} ms, p99 {run.latency(0.99):.0f} ms"
    )
    print(f"  {run.cpu}")
    print(
        f"  stored {run.stored:,} new points in {run.transactions:,} write transactions "
        f"(~{run.stored / max(1, run.transactions):,.0f} points per commit)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__)
    parser.add_argument("--points", type=int, default=3_000_000, help="values to post in each run")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=100, help="readings per request")
    parser.add_argument("--values", type=int, default=10, help="values per reading")
    parser.add_argument(
        "--clients",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[16, 64],
        help="concurrent connections; several (e.g. 16,32,64) make one run each",
    )
    parser.add_argument(
        "--roles", default="api", help="server roles (all = also run rollups meanwhile)"
    )
    parser.add_argument(
        "--ceiling-chunk", type=int, default=100_000, help="rows per transaction of the ceiling"
    )
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    rule("machine")
    for line in machine_summary(args.pg_url if "postgres" in backends else None):
        print(line)
    print(f"load generator: this process, {'uvloop' if with_uvloop else 'asyncio'}")
    results = []
    for backend in backends:
        rule(f"HTTP batch ingest into {backend}")
        if backend == "postgres" and postgres_version(args.pg_url) is None:
            print(f"skipped: PostgreSQL not reachable at {args.pg_url}")
            continue
        with temp_dir(f"m2mhub-bench-{backend}-") as work:
            results.append(bench_backend(backend, args, work))
    rule("summary")
    print(
        f"{'store':<9} {'clients':>7} {'HTTP points/s':>14} {'p50 ms':>7} "
        f"{'ceiling rows/s':>15} {'ratio':>6}"
    )
    for result in results:
        for run in result.runs:
            print(
                f"{result.backend:<9} {run.clients:>7} {run.rate:>14,.0f} "
                f"{run.latency(0.5):>7.0f} {result.ceiling_rows_s:>15,.0f} "
                f"{run.rate / result.ceiling_rows_s:>6.0%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
