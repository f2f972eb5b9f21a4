"""Benchmark: a monthly billing run of N smart meters with 15-minute register reads.

For each store backend (SQLite, PostgreSQL) and each size in ``--meters``:

1. declares one time-of-use tariff and per meter a device, a supply point, an account,
   the meter (one import register, 15-minute intervals), the links and the tariff
   assignment: the first 100 meters through :class:`MeteringService` (the calls
   ``m2mhub metering apply`` makes), the others as copies of the rows it wrote for
   meter 0, in bulk (:func:`clone`);
2. writes October 2026 of cumulative register reads in bulk straight into the
   telemetry table, computed by the database itself (``INSERT ... SELECT`` with a
   running sum, the same values as :func:`register_values`, checked on three meters):
   in Europe/Amsterdam that month has 2,980 quarter-hours (the clocks go back on 25
   October), so 2,981 reads per meter;
3. times the read floor (unless ``--skip-floor``): every read of every meter fetched
   from the store by one plain query, and again through ``Store.history`` one meter
   at a time, as a billing run asks for them;
4. runs ``m2mhub billing run --period 2026-10 [--workers N]`` as a process of its own
   and measures its wall time, CPU time and peak RSS (``wait4``, which counts the
   helper processes it waited for), and checks that it issued one invoice per account.

Then a billing run of ``--profile-meters`` meters under cProfile shows where the
time goes. Before filling, the rows and disk a size needs are estimated and
printed; a size that does not fit the free disk is refused.

Filling 100,000 meters takes 10 to 40 minutes, so it can be done once and reused:
``--data-dir DIR --keep`` keeps the SQLite file (``DIR/billing-<meters>.db``) or the
PostgreSQL schema (``bench_billing_kept_<meters>``) and writes a marker describing
what was filled (``DIR/billing-<backend>-<meters>.json``); ``--reuse`` skips
declaring and filling when the marker matches, and removes the invoices, runs and
leases of earlier billing runs instead. ``--fill-only`` fills and bills nothing.

Run: ``python bench/billing.py --help``; ``--meters 1000,10000`` for the scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import os
import pstats
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from _common import (
    machine_summary,
    new_parser,
    pg_checkpoint,
    pg_schema,
    pg_store_url,
    postgres_version,
    rule,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from m2mhub.apps.metering.models import BillingSettings, MeterKind, RegisterSpec
from m2mhub.apps.metering.service import MeteringService
from m2mhub.registry.service import Registry
from m2mhub.store import Segment, open_store
from m2mhub.store.models import KeySpec

PERIOD = "2026-10"
#: 1 October 2026 00:00 and 1 November 2026 00:00 in Europe/Amsterdam (CEST, then CET).
FIRST_READ_MS = 1_790_805_600_000  # 2026-09-30T22:00:00Z
LAST_READ_MS = 1_793_487_600_000  # 2026-10-31T23:00:00Z
QUARTER_MS = 900_000
DAY_MS = 86_400_000
READS_PER_METER = (LAST_READ_MS - FIRST_READ_MS) // QUARTER_MS + 1  # 2,981
REGISTER = "energy_import_kwh"
TENANT = "bench"
#: Reads per executemany transaction (SQLite) or per COPY (PostgreSQL).
FILL_ROWS = 600_000
#: Disk per stored read (table and primary key), reads written per second while filling
#: and CPU seconds of the billing run per meter, as measured by this benchmark on the
#: machine of docs/performance.md: only for the estimate printed before filling.
BYTES_PER_ROW = {"sqlite": 31, "postgres": 101}
FILL_ROWS_PER_S = {"sqlite": 470_000, "postgres": 300_000}
BILLING_CPU_S_PER_METER = 0.05

TARIFF_YAML = """\
name: Residential ToU 2026
currency: EUR
timezone: Europe/Amsterdam
holidays: {country: NL}
versions:
  - valid_from: 2026-01-01
    tax: {name: VAT, rate: 0.21}
    standing_charge: {per_day: 0.45}
    energy:
      type: time_of_use
      periods:
        - {name: peak, price_per_kwh: 0.30, days: [weekday], hours: [{from: "07:00", to: "23:00"}]}
        - name: off-peak
          price_per_kwh: 0.22
          days: [weekday]
          hours: [{from: "23:00", to: "07:00"}]
        - {name: weekend, price_per_kwh: 0.22, days: [weekend, holiday]}
    energy_tax: {per_kwh: 0.1088}
"""

SETTINGS = BillingSettings(
    seller_name="Stroom BV",
    seller_address=("Keizersgracht 1", "1015 CJ Amsterdam"),
    vat_id="NL123456789B01",
    iban="DE89370400440532013000",
)


@dataclass
class Store:
    """Where one benchmark store lives: its URL for m2mhub and for a plain connection."""

    backend: str
    url: str
    path: Path | None = None  # SQLite file
    pg_url: str = ""
    schema: str = ""

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A plain DB-API connection to the store's tables."""
        if self.path is not None:
            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                yield conn
        else:
            options = f"-c search_path={self.schema}"
            with psycopg.connect(self.pg_url, options=options) as conn:
                yield conn

    def size_bytes(self) -> int:
        """Disk taken by the telemetry (SQLite: the whole file and its WAL)."""
        if self.path is not None:
            return sum(
                p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.exists()
            )
        with self.connect() as conn:
            row = conn.execute("SELECT pg_total_relation_size('telemetry')").fetchone()
        return int(row[0])


@dataclass
class Result:
    meters: int
    reads: int
    declare_s: float
    fill_s: float
    disk_bytes: int
    floor_sql_s: float
    floor_history_s: float
    billing_s: float
    billing_cpu_s: float
    peak_rss_mb: float
    invoices: int
    outcomes: dict[str, int]


# -- the data ---------------------------------------------------------------------------------


def register_values(meter: int) -> list[float]:
    """The cumulative register (kWh, 3 decimals) of one meter at each quarter-hour.

    Each meter starts at its own value and uses 20 to 400 Wh a quarter-hour, more
    by day than by night; the pattern is shifted per meter so that meters differ.
    """
    start_wh = 10_000_000 + (meter * 7_919) % 5_000_000
    steps = (
        20 + ((i + meter) % 96 >= 28) * 120 + ((i * 37 + meter * 11) % 200)
        for i in range(READS_PER_METER - 1)
    )
    return [wh / 1000 for wh in itertools.accumulate(steps, initial=start_wh)]


async def declare(url: str, meters: int) -> tuple[list[int], int]:
    """Tenant, tariff and per meter: device, supply point, account, meter, links, tariff.

    Returns the meters' device pks and the register's key id.
    """
    async with open_store(url) as store:
        registry = Registry(store)
        tenant = await registry.create_tenant(TENANT)
        await registry.create_device_type(
            tenant.id, "p1-meter", [KeySpec(REGISTER, unit="kWh")], report_interval_s=900
        )
        csv = "name,type,id\n" + "".join(
            f"meter {i:06d},p1-meter,p1-{i:06d}\n" for i in range(meters)
        )
        devices = [d for d, _ in await registry.import_devices_csv(tenant.id, csv)]
        key_id = (await store.key_ids([REGISTER]))[REGISTER]
        service = MeteringService(store, holder="bench")
        await service.storage.save_settings(tenant.id, SETTINGS)
        tariff, _ = await service.put_tariff(tenant.id, yaml_text=TARIFF_YAML)
        installed = FIRST_READ_MS - 30 * 86_400_000
        spec = RegisterSpec(key=REGISTER, digits=6, decimals=3)

        async def one(i: int) -> None:
            code = f"8716871{i:011d}"
            address = (f"Dorpsstraat {i + 1}", "6711 AA Ede")
            number = f"A-{i:06d}"
            await service.add_supply_point(tenant.id, code=code, address=address)
            await service.add_account(tenant.id, number=number, name=f"Klant {i}", address=address)
            await service.add_meter(
                tenant.id,
                name=f"meter-{i:06d}",
                device_id=f"p1-{i:06d}",
                kind=MeterKind.ELECTRICITY,
                registers=[spec],
                interval_minutes=15,
            )
            await service.link_meter(
                tenant.id, meter=f"meter-{i:06d}", supply_point=code, at_ms=installed
            )
            await service.link_account(
                tenant.id, supply_point=code, account=number, at_ms=installed
            )
            await service.assign_tariff(
                tenant.id, account=number, tariff=tariff.name, from_date=date(2026, 1, 1)
            )

        # The first meters through the service; the others are copies of them (clone).
        declared = min(meters, DECLARED)
        for offset in range(0, declared, 16):
            await asyncio.gather(*(one(i) for i in range(offset, min(declared, offset + 16))))
        return [d.pk for d in devices], key_id


#: Meters declared through the service; the rest are copied from meter 0 by clone().
DECLARED = 100


def clone(store: Store, device_pks: list[int]) -> None:
    """Meters ``DECLARED`` and on, as copies of the rows the service wrote for meter 0.

    Each row of meter 0 (supply point, account, meter, links, tariff assignment) is
    copied with the meter's own code, number, name, address and ids: the same rows the
    service would write, in bulk instead of six transactions per meter.
    """
    if len(device_pks) <= DECLARED:
        return
    sqlite = store.path is not None
    p = "?" if sqlite else "%s"
    with store.connect() as conn:

        def row(table: str, where: str, value: Any) -> dict[str, Any]:
            cursor = conn.execute(f"SELECT * FROM {table} WHERE {where} = {p}", (value,))
            names = [d[0] for d in cursor.description]
            found = cursor.fetchone()
            return dict(zip(names, found, strict=True))

        def insert(table: str, template: dict[str, Any], rows: list[dict[str, Any]]) -> None:
            names = [n for n in template if n != "id"]
            sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([p] * len(names))})"
            values = [tuple({**template, **r}[n] for n in names) for r in rows]
            if sqlite:
                conn.executemany(sql, values)
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, values)

        def ids(table: str, column: str) -> dict[str, int]:
            return {k: int(v) for k, v in conn.execute(f"SELECT {column}, id FROM {table}")}

        point = row("metering_supply_points", "code", "8716871" + "0" * 11)
        account = row("metering_accounts", "number", "A-000000")
        meter = row("metering_meters", "name", "meter-000000")
        meter_link = row("metering_meter_links", "meter_id", meter["id"])
        account_link = row("metering_account_links", "account_id", account["id"])
        assignment = row("metering_tariff_assignments", "account_id", account["id"])
        numbers = range(DECLARED, len(device_pks))

        def address(i: int, text: str) -> str:
            return text.replace("Dorpsstraat 1", f"Dorpsstraat {i + 1}", 1)

        insert(
            "metering_supply_points",
            point,
            [
                {"code": f"8716871{i:011d}", "address": address(i, point["address"])}
                for i in numbers
            ],
        )
        insert(
            "metering_accounts",
            account,
            [
                {
                    "number": f"A-{i:06d}",
                    "name": f"Klant {i}",
                    "address": address(i, account["address"]),
                }
                for i in numbers
            ],
        )
        insert(
            "metering_meters",
            meter,
            [{"name": f"meter-{i:06d}", "device_pk": device_pks[i]} for i in numbers],
        )
        points = ids("metering_supply_points", "code")
        accounts = ids("metering_accounts", "number")
        meter_ids = ids("metering_meters", "name")
        insert(
            "metering_meter_links",
            meter_link,
            [
                {
                    "meter_id": meter_ids[f"meter-{i:06d}"],
                    "supply_point_id": points[f"8716871{i:011d}"],
                }
                for i in numbers
            ],
        )
        insert(
            "metering_account_links",
            account_link,
            [
                {
                    "supply_point_id": points[f"8716871{i:011d}"],
                    "account_id": accounts[f"A-{i:06d}"],
                }
                for i in numbers
            ],
        )
        insert(
            "metering_tariff_assignments",
            assignment,
            [{"account_id": accounts[f"A-{i:06d}"]} for i in numbers],
        )
        conn.commit()


#: The register of :func:`register_values` computed by the database, for meter ``m.idx``
#: at quarter-hour ``q.i``: the start value plus the steps before it. Integer Wh divided
#: by 1000 in double precision, as in Python, so the values are the same floats.
FILL_SELECT = """
SELECT m.pk, {first} + CAST(q.i AS BIGINT) * {quarter}, {key_id},
       (10000000 + (m.idx * 7919) % 5000000
        + COALESCE(SUM(20 + CASE WHEN (q.i + m.idx) % 96 >= 28 THEN 120 ELSE 0 END
                       + (q.i * 37 + m.idx * 11) % 200)
                   OVER (PARTITION BY m.idx ORDER BY q.i
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) {to_float} / 1000
FROM {meters} AS m CROSS JOIN {quarters} AS q
WHERE m.idx >= {lo} AND m.idx < {hi}
ORDER BY m.idx, q.i
"""


def fill(store: Store, device_pks: list[int], key_id: int) -> int:
    """Every meter's reads, in bulk, in primary-key order; returns the rows written.

    The values are computed by the database itself (:data:`FILL_SELECT`), in
    transactions of about :data:`FILL_ROWS` reads; :func:`check_fill` compares a few
    meters with :func:`register_values`.
    """
    per_batch = max(1, FILL_ROWS // READS_PER_METER)
    rows = 0
    sqlite = store.path is not None
    with store.connect() as conn:
        if sqlite:
            # A bulk load: a crash means filling again, so no fsync per transaction.
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TEMP TABLE bench_meters (idx INTEGER PRIMARY KEY, pk INTEGER)")
            conn.executemany("INSERT INTO bench_meters VALUES (?, ?)", enumerate(device_pks))
            quarters = (
                f"(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                f"WHERE i < {READS_PER_METER - 1}) SELECT i FROM n)"
            )
            meters, to_float = "bench_meters", "* 1.0"
        else:
            # Room to sort a batch in memory; a crash means filling again.
            conn.execute("SET work_mem = '512MB'")
            conn.execute("SET synchronous_commit = off")
            conn.execute("CREATE TEMP TABLE bench_meters (idx INTEGER PRIMARY KEY, pk BIGINT)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO bench_meters VALUES (%s, %s)", enumerate(device_pks))
            quarters = f"(SELECT generate_series(0, {READS_PER_METER - 1}) AS i)"
            meters, to_float = "bench_meters", "::float8"
        conn.commit()
        for lo in range(0, len(device_pks), per_batch):
            hi = min(len(device_pks), lo + per_batch)
            select = FILL_SELECT.format(
                first=FIRST_READ_MS,
                quarter=QUARTER_MS,
                key_id=key_id,
                to_float=to_float,
                meters=meters,
                quarters=quarters,
                lo=lo,
                hi=hi,
            )
            conn.execute(f"INSERT INTO telemetry (device_pk, ts, key_id, num) {select}")
            conn.commit()
            rows += (hi - lo) * READS_PER_METER
            if lo // per_batch % 100 == 99:
                print(f"    {rows:,} reads written", flush=True)
        # The latest-value table, as ingest would have left it.
        conn.execute(
            "INSERT INTO latest (device_pk, key_id, ts, num) "
            f"SELECT device_pk, key_id, ts, num FROM telemetry WHERE ts = {LAST_READ_MS}"
        )
        conn.commit()
        if not sqlite:
            # What autovacuum does after a bulk load, so that plans see the real table.
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE telemetry")
            conn.execute("VACUUM ANALYZE latest")
    return rows


def check_fill(store: Store, device_pks: list[int], key_id: int) -> None:
    """The reads of the first, a middle and the last meter are :func:`register_values`."""
    p = "?" if store.path is not None else "%s"
    with store.connect() as conn:
        for i in sorted({0, len(device_pks) // 2, len(device_pks) - 1}):
            stored = [
                (ts, num)
                for ts, num in conn.execute(
                    f"SELECT ts, num FROM telemetry WHERE device_pk = {p} AND key_id = {p} "
                    "ORDER BY ts",
                    (device_pks[i], key_id),
                ).fetchall()
            ]
            expected = list(
                zip(
                    range(FIRST_READ_MS, LAST_READ_MS + 1, QUARTER_MS),
                    register_values(i),
                    strict=True,
                )
            )
            if stored != expected:
                raise RuntimeError(f"meter {i}: stored reads differ from register_values")


# -- the read floor ---------------------------------------------------------------------------


def read_floor_sql(store: Store, key_id: int) -> tuple[float, int]:
    """Every read of the month, one query, rows streamed into Python."""
    sql = (
        "SELECT device_pk, ts, num FROM telemetry WHERE key_id = {p} AND ts >= {p} AND ts <= {p} "
        "ORDER BY device_pk, ts"
    )
    params = (key_id, FIRST_READ_MS, LAST_READ_MS)
    start = time.perf_counter()
    count = 0
    with store.connect() as conn:
        if store.path is not None:
            cursor = conn.execute(sql.format(p="?"), params)
        else:
            cursor = conn.cursor(name="floor")  # server-side: rows streamed, not held
            cursor.itersize = 50_000
            cursor.execute(sql.format(p="%s"), params)
        while rows := cursor.fetchmany(50_000):
            count += len(rows)
        cursor.close()
    return time.perf_counter() - start, count


async def read_floor_history(url: str, device_pks: list[int]) -> tuple[float, int]:
    """Every meter's reads through ``Store.history``, a meter at a time in pages of 5,000
    over the window a billing run reads (the month, four weeks before for estimation
    profiles and two days either side), as the run asks for them."""
    lo, hi = FIRST_READ_MS - 30 * DAY_MS, LAST_READ_MS + 2 * DAY_MS
    async with open_store(url) as store:
        start = time.perf_counter()
        count = 0
        for pk in device_pks:
            after: tuple[int, int, int] | None = None
            while True:
                page = await store.history(
                    [Segment(pk, lo, hi)], keys=[REGISTER], after=after, limit=5000
                )
                count += len(page)
                if len(page) < 5000:
                    break
                after = await store.cursor_of(page[-1])
        return time.perf_counter() - start, count


# -- the billing run --------------------------------------------------------------------------


def billing_env(store: Store, work: Path) -> dict[str, str]:
    config = work / "bench.toml"
    config.write_text("")  # the user's own config must not change the figures
    return {
        **os.environ,
        "M2MHUB_DATA_DIR": str(work / "data"),
        "M2MHUB_DATABASE_URL": store.url,
        "M2MHUB_CONFIG": str(config),
        "M2MHUB_LOG_LEVEL": "WARNING",
        "M2MHUB_MQTT_ENABLED": "false",
        "COLUMNS": "200",
    }


def run_billing(
    store: Store, work: Path, *, profile: Path | None = None, workers: int = 1
) -> tuple[float, float, float]:
    """``m2mhub billing run --period 2026-10 --workers N`` in its own process.

    Returns wall seconds, the CPU seconds (user + system) of the process and its
    helpers and the peak RSS in MiB of the largest of them (``wait4`` and
    ``RUSAGE_CHILDREN`` of the command's process, which waits for its helpers).
    """
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "m2mhub", "billing", "run", "--period", PERIOD, "--tenant", TENANT]
    if workers > 1:
        command += ["--workers", str(workers)]
    log = work / "billing-run.log"
    with log.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, env=billing_env(store, work), cwd=work, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"billing run exited {process.returncode}:\n{log.read_text()[-3000:]}")
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def check_invoices(store: Store, meters: int) -> tuple[int, dict[str, int]]:
    """Invoices of the period, and the run's outcomes counted; both must cover every account."""
    with store.connect() as conn:
        invoices = conn.execute(
            "SELECT count(*) FROM metering_invoices WHERE period = '2026-10' AND kind = 'invoice' "
            "AND status = 'open'"
        ).fetchone()[0]
        summary = conn.execute(
            "SELECT summary FROM metering_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    outcomes: dict[str, int] = {}
    for entry in json.loads(summary):
        outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
    if invoices != meters or outcomes != {"issued": meters}:
        raise RuntimeError(
            f"expected {meters:,} invoices issued, found {invoices:,}; outcomes {outcomes}"
        )
    return int(invoices), outcomes


# -- one backend, one size --------------------------------------------------------------------


#: What a kept store holds; a store is reused only if its marker says the same.
FILL_VERSION = 2


def marker_path(args: argparse.Namespace, backend: str, tag: str) -> Path:
    return Path(args.data_dir) / f"billing-{backend}-{tag}.json"


def wanted_marker(backend: str, meters: int) -> dict[str, Any]:
    return {
        "fill": FILL_VERSION,
        "backend": backend,
        "meters": meters,
        "reads_per_meter": READS_PER_METER,
        "period": PERIOD,
        "tariff": TARIFF_YAML,
    }


@contextlib.contextmanager
def new_store(backend: str, args: argparse.Namespace, work: Path, tag: str) -> Iterator[Store]:
    """A store for one size: temporary, or under ``--data-dir`` (kept with ``--keep``)."""
    keep = bool(args.data_dir and args.keep)
    if backend == "sqlite":
        path = (Path(args.data_dir) if args.data_dir else work) / f"billing-{tag}.db"
        try:
            yield Store(backend, f"sqlite:///{path}", path=path)
        finally:
            if args.data_dir and not keep:
                for file in path.parent.glob(path.name + "*"):
                    file.unlink()
                marker_path(args, backend, tag).unlink(missing_ok=True)
    elif args.data_dir:
        schema = f"bench_billing_kept_{tag}"
        try:
            yield Store(
                backend, pg_store_url(args.pg_url, schema), pg_url=args.pg_url, schema=schema
            )
        finally:
            if not keep:
                with psycopg.connect(args.pg_url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                marker_path(args, backend, tag).unlink(missing_ok=True)
    else:
        with pg_schema(args.pg_url, f"bench_billing_{tag}") as schema:
            yield Store(
                backend, pg_store_url(args.pg_url, schema), pg_url=args.pg_url, schema=schema
            )


def stored_devices(store: Store) -> tuple[list[int], int]:
    """The meters' device pks (in meter order) and the register's key id of a kept store."""
    p = "?" if store.path is not None else "%s"
    with store.connect() as conn:
        pks = [
            int(r[0])
            for r in conn.execute(
                "SELECT d.pk FROM devices d JOIN tenants t ON t.id = d.tenant_id "
                f"WHERE t.slug = {p} ORDER BY d.id",
                (TENANT,),
            ).fetchall()
        ]
        key_id = conn.execute(f"SELECT id FROM keys WHERE name = {p}", (REGISTER,)).fetchone()[0]
    return pks, int(key_id)


def forget_billing(store: Store, marker: dict[str, Any]) -> None:
    """Remove what billing runs wrote since the fill, so that the next run bills afresh."""
    with store.connect() as conn:
        for table in ("metering_invoices", "metering_runs", "metering_sequences", "leases"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute(f"DELETE FROM audit_log WHERE ts > {int(marker['filled_ms'])}")
        conn.execute(f"DELETE FROM outbox WHERE created_ms > {int(marker['filled_ms'])}")
        conn.commit()


def prepare(
    store: Store, meters: int, args: argparse.Namespace, tag: str
) -> tuple[list[int], int, float, float, int]:
    """Declare and fill a store, or reuse a kept one whose marker matches."""
    marker = marker_path(args, store.backend, tag) if args.data_dir else None
    wanted = wanted_marker(store.backend, meters)
    if args.reuse and marker is not None and marker.exists():
        kept = json.loads(marker.read_text())
        if {k: kept.get(k) for k in wanted} == wanted:
            device_pks, key_id = stored_devices(store)
            if len(device_pks) != meters:
                raise RuntimeError(f"{marker}: {len(device_pks):,} meters stored, not {meters:,}")
            forget_billing(store, kept)
            print(
                f"  reused the store filled in {kept['declare_s'] + kept['fill_s']:.0f} s "
                f"({marker})",
                flush=True,
            )
            return device_pks, key_id, kept["declare_s"], kept["fill_s"], meters * READS_PER_METER
        print(f"  {marker} describes other data: filling again", flush=True)
    if marker is not None:
        marker.unlink(missing_ok=True)
        if store.path is not None:
            for file in store.path.parent.glob(store.path.name + "*"):
                file.unlink()
        else:
            with psycopg.connect(store.pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {store.schema} CASCADE")
    start = time.perf_counter()
    device_pks, key_id = asyncio.run(declare(store.url, meters))
    clone(store, device_pks)
    declare_s = time.perf_counter() - start
    print(f"  declared {meters:,} meters, accounts and links in {declare_s:.1f} s", flush=True)
    start = time.perf_counter()
    rows = fill(store, device_pks, key_id)
    fill_s = time.perf_counter() - start
    print(f"  wrote {rows:,} reads in {fill_s:.1f} s ({rows / fill_s:,.0f} reads/s)", flush=True)
    check_fill(store, device_pks, key_id)
    if marker is not None:
        marker.write_text(
            json.dumps(
                {
                    **wanted,
                    "declare_s": declare_s,
                    "fill_s": fill_s,
                    "filled_ms": int(time.time() * 1000),
                }
            )
        )
    return device_pks, key_id, declare_s, fill_s, rows


def bench_size(store: Store, meters: int, work: Path, args: argparse.Namespace) -> Result | None:
    device_pks, key_id, declare_s, fill_s, rows = prepare(store, meters, args, str(meters))
    disk = store.size_bytes()
    print(f"  telemetry on disk: {disk / 2**20:,.0f} MiB ({disk / rows:.0f} bytes per read)")
    if args.fill_only:
        return None
    if store.backend == "postgres":
        pg_checkpoint(args.pg_url)

    floor_sql_s = floor_history_s = float("nan")
    if not args.skip_floor:
        floor_sql_s, count = read_floor_sql(store, key_id)
        assert count == rows, (count, rows)
        print(
            f"  read floor, one query: {floor_sql_s:.1f} s ({rows / floor_sql_s:,.0f} reads/s)",
            flush=True,
        )
        floor_history_s, count = asyncio.run(read_floor_history(store.url, device_pks))
        assert count == rows, (count, rows)
        print(
            f"  read floor, Store.history per meter: {floor_history_s:.1f} s "
            f"({meters / floor_history_s:,.0f} meters/s)",
            flush=True,
        )

    billing_s, cpu_s, rss = run_billing(store, work, workers=args.workers)
    invoices, outcomes = check_invoices(store, meters)
    print(
        f"  billing run: {billing_s:.1f} s wall, {cpu_s:.1f} s CPU, peak RSS {rss:.0f} MiB, "
        f"{invoices:,} invoices, {meters / billing_s:,.1f} meters/s",
        flush=True,
    )
    return Result(
        meters=meters,
        reads=rows,
        declare_s=declare_s,
        fill_s=fill_s,
        disk_bytes=disk,
        floor_sql_s=floor_sql_s,
        floor_history_s=floor_history_s,
        billing_s=billing_s,
        billing_cpu_s=cpu_s,
        peak_rss_mb=rss,
        invoices=invoices,
        outcomes=outcomes,
    )


#: The metering steps whose cumulative time the profile reports.
STEPS = (
    ("run_billing", "the whole run (service.run_billing)"),
    ("_reads", "loading reads (service._reads -> Store.history)"),
    ("derive", "reads -> intervals (consumption.derive)"),
    ("estimate", "estimation.estimate"),
    ("apply_edits", "edits.apply_edits"),
    ("validate", "validation.validate"),
    ("mark", "validation.mark"),
    ("price_period", "pricing (pricing.price_period)"),
    ("_content_hash", "service._content_hash"),
    ("render_invoice_json", "invoice JSON (invoice_export.render_invoice_json)"),
    ("insert_invoice", "storage.insert_invoice"),
)


def profile(backend: str, args: argparse.Namespace, work: Path) -> list[str]:
    """A billing run of ``--profile-meters`` meters under cProfile: steps and top functions."""
    with new_store(backend, args, work, "profile") as store:
        prepare(store, args.profile_meters, args, "profile")
        output = work / "billing.prof"
        seconds, _, _ = run_billing(store, work, profile=output)
        check_invoices(store, args.profile_meters)
    stats = pstats.Stats(str(output))
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in entries.values())
    lines = [
        f"profile of a run of {args.profile_meters:,} meters on {backend} "
        f"({seconds:.1f} s wall under cProfile):",
        "  cumulative time of the metering steps:",
    ]
    for name, label in STEPS:
        found = [
            value[3]
            for (path, _, function), value in entries.items()
            if function == name and "m2mhub" in path
        ]
        if found:
            lines.append(f"    {label:<56} {max(found):7.2f} s  {100 * max(found) / total:5.1f}%")
    text = io.StringIO()
    pstats.Stats(str(output), stream=text).strip_dirs().sort_stats("tottime").print_stats(15)
    lines.append("  top functions by own time:")
    table = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(table) if line.strip().startswith("ncalls"))
    lines += ["    " + line for line in table[start:] if line.strip()]
    return lines


# -- main -------------------------------------------------------------------------------------


def estimate(backend: str, meters: int, free: int) -> tuple[str, bool]:
    """What a size needs (from the figures measured here), and whether its disk fits."""
    rows = meters * READS_PER_METER
    disk = rows * BYTES_PER_ROW[backend]
    fits = disk < 0.8 * free
    fill_min = rows / FILL_ROWS_PER_S[backend] / 60
    billing_min = meters * BILLING_CPU_S_PER_METER / 60
    return (
        f"{backend}, {meters:,} meters: {rows:,} reads, about {disk / 2**30:,.1f} GiB of "
        f"{free / 2**30:,.0f} GiB free; about {fill_min:,.0f} min to fill and "
        f"{billing_min:,.0f} min to bill{'' if fits else ' -- does NOT fit: skipped'}",
        fits,
    )


def print_table(backend: str, results: list[Result]) -> None:
    print(f"{backend}:")
    print(
        f"  {'meters':>8} {'reads':>13} {'disk MiB':>9} {'fill s':>7} {'floor SQL s':>11} "
        f"{'floor history s':>15} {'billing s':>9} {'CPU s':>7} "
        f"{'peak RSS MiB':>12} {'meters/s':>8} {'invoices':>8}"
    )
    for r in results:
        print(
            f"  {r.meters:>8,} {r.reads:>13,} {r.disk_bytes / 2**20:>9,.0f} {r.fill_s:>7.1f} "
            f"{r.floor_sql_s:>11.1f} {r.floor_history_s:>15.1f} {r.billing_s:>9.1f} "
            f"{r.billing_cpu_s:>7.1f} {r.peak_rss_mb:>12.0f} "
            f"{r.meters / r.billing_s:>8.1f} {r.invoices:>8,}"
        )
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        per_meter = (b.billing_s - a.billing_s) / (b.meters - a.meters)
        rss_per_meter = (b.peak_rss_mb - a.peak_rss_mb) / (b.meters - a.meters)
        wall = b.billing_s + per_meter * (100_000 - b.meters)
        rss = b.peak_rss_mb + rss_per_meter * (100_000 - b.meters)
        disk = b.disk_bytes / b.reads * 100_000 * READS_PER_METER
        print(
            f"  PROJECTION to 100,000 meters (linear from the last two sizes): billing about "
            f"{wall / 3600:.1f} h ({per_meter * 1000:.1f} ms per meter), peak RSS about "
            f"{rss:,.0f} MiB ({rss_per_meter * 1024:.1f} KiB per meter), "
            f"telemetry about {disk / 2**30:,.0f} GiB"
        )


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__)
    parser.add_argument(
        "--meters",
        default="1000",
        help="meters to bill, or several sizes for the scaling (1000,10000); 100000 is the "
        "issue's figure",
    )
    parser.add_argument(
        "--profile-meters", type=int, default=50, help="meters of the profiled run (0: none)"
    )
    parser.add_argument(
        "--data-dir",
        help="keep the SQLite files and the markers of what was filled here (PostgreSQL: in "
        "schemas bench_billing_kept_<meters>) instead of temporary ones",
    )
    parser.add_argument(
        "--keep", action="store_true", help="with --data-dir: leave the filled stores for --reuse"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --data-dir: skip declaring and filling a size whose kept store matches, and "
        "remove its earlier runs' invoices instead",
    )
    parser.add_argument(
        "--fill-only", action="store_true", help="declare and fill (with --keep), bill nothing"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes of the billing run (--workers)"
    )
    parser.add_argument("--skip-floor", action="store_true", help="do not measure the read floor")
    args = parser.parse_args(argv)
    if (args.keep or args.reuse) and not args.data_dir:
        parser.error("--keep and --reuse need --data-dir")
    if args.data_dir:
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    stop_cleanly_on_sigterm()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    sizes = [int(n.replace("_", "")) for n in args.meters.split(",") if n.strip()]

    rule("machine")
    for fact in machine_summary(args.pg_url if "postgres" in backends else None):
        print(fact)
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min)")
    rule("sizes")
    print(
        f"October 2026 in Europe/Amsterdam: {READS_PER_METER - 1:,} quarter-hours, "
        f"{READS_PER_METER:,} reads per meter"
    )
    free = shutil.disk_usage(Path(args.data_dir or os.environ.get("TMPDIR", "/tmp"))).free
    runnable: dict[str, list[int]] = {}
    for backend in backends:
        if 100_000 not in sizes:
            print(estimate(backend, 100_000, free)[0].split(" -- ")[0] + " (not run)")
        for meters in sizes:
            line, fits = estimate(backend, meters, free)
            print(line)
            if fits:
                runnable.setdefault(backend, []).append(meters)

    results: dict[str, list[Result]] = {}
    profiles: dict[str, list[str]] = {}
    for backend in backends:
        if backend == "postgres" and postgres_version(args.pg_url) is None:
            print(f"skipped: PostgreSQL not reachable at {args.pg_url}")
            continue
        for meters in runnable.get(backend, []):
            rule(f"billing {meters:,} meters on {backend}")
            with (
                temp_dir(f"m2mhub-bench-billing-{backend}-") as work,
                new_store(backend, args, work, str(meters)) as store,
            ):
                result = bench_size(store, meters, work, args)
                if result is not None:
                    results.setdefault(backend, []).append(result)
        if args.profile_meters and not args.fill_only:
            rule(f"profile on {backend}")
            with temp_dir(f"m2mhub-bench-billing-{backend}-") as work:
                profiles[backend] = profile(backend, args, work)
            print("\n".join(profiles[backend]))

    rule("summary")
    for backend, rows in results.items():
        print_table(backend, rows)
    print(f"load after: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
