"""Teltonika trackers: frames decoded per core, and positions/s from 2,000 TCP trackers to stored
and trip-processed, beside the core HTTP ingest figure of the same run.

1. **Decode** (this process, no sockets): a Codec 8 and a Codec 8 Extended packet of
   ``--records`` records, each with 12 IO elements (ignition, movement, odometer, voltages,
   GNSS status and DOP...), built with m2mhub's encoders, are fed again and again through
   :class:`TcpDeframer` and every record through :func:`to_values`, as the server does.
   Frames/s and records/s per core (CPU time of this process), beside ``msgspec``'s
   decoding of the same readings as the JSON body of an HTTP ingest request.
2. **End to end**, per store: a tenant, a ``tracker`` device type with a fleet profile
   (trips, stops and events are computed as positions arrive) and ``--trackers`` devices
   whose ids are their IMEIs; ``python -m m2mhub serve`` (roles ``api,ingest,rules``) with
   ``M2MHUB_TRACKERS=teltonika:<free port>``. This process opens one TCP connection per
   tracker, logs each in with its IMEI, then, ``--repeat`` times:

   - **steady**: every tracker sends a packet of ``--records`` records every
     ``records / --rate`` seconds (``--rate`` records/s per tracker), the trackers spread
     evenly over that period;
   - **as fast as acks allow**: every tracker sends ``--packets`` packets, each as soon as
     the previous one is acknowledged.

   A tracker waits for each packet's acknowledgement (its record count, written by m2mhub
   once the records are stored) before the next, as real trackers do. Measured: acked
   records/s at the trackers, values newly stored (``m2mhub_ingest_values_total``), ack
   latency, the server's CPU and memory, and the time until the fleet service has
   processed every vehicle up to its last record (read from ``fleet_state``).
   Every record is 10 s of a vehicle's time: 10 records driving at 54 km/h with ignition
   on, then 10 parked with ignition off, so each vehicle makes a trip and a stop every
   20 records (profile: ``min_parking_ms`` 60 s).
3. **Baseline**: bench/ingest_http.py's run (its functions, not a copy) against the same
   store: ``--http-points`` values as requests of 100 readings x 10 values, 64 connections.

Run: ``python bench/trackers.py --help``; ``--quick`` for a small run of every part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from _common import (
    HOUR_MS,
    CpuMeter,
    Server,
    free_port,
    machine_summary,
    new_parser,
    percentile,
    pg_checkpoint,
    postgres_version,
    rss_mb,
    rule,
    run_async,
    run_server,
    spread,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from ingest_http import http_run, report_run, store_url
from m2mhub.connect.trackers.teltonika import (
    AvlPacket,
    AvlRecord,
    TcpDeframer,
    encode_avl_data,
    encode_imei,
    encode_tcp_packet,
    to_values,
)
from m2mhub.connect.trackers.teltonika import const as io
from m2mhub.connect.trackers.teltonika.const import CODEC_8, CODEC_8E
from m2mhub.core.timeutil import now_ms

#: Data time between two records of a tracker (a Teltonika's default period on the move).
RECORD_STEP_MS = 10_000
#: Records driving, then records parked, in each vehicle's cycle.
DRIVE, PARK = 10, 10
SPEED_KMH = 54  # 15 m/s: 150 m between two records
#: Fleet settings of the benchmark's profile: a 100 s halt ends a trip.
FLEET_OVERRIDES = {"min_parking_ms": 60_000}
#: How long a run may take before it is reported as incomplete.
RUN_TIMEOUT_S = 300.0
#: The HTTP baseline's shape: bench/ingest_http.py's defaults, its higher connection count.
HTTP_SHAPE = {"devices": 1000, "readings": 100, "values": 10, "clients": 64}


# -- records and packets -----------------------------------------------------------------------


def imei_of(index: int) -> str:
    """The 15-digit IMEI (and device id) of tracker ``index``."""
    return f"35630704{index:07d}"


def make_record(tracker: int, n: int, first_ts: int) -> AvlRecord:
    """Record ``n`` of a tracker: driving east for DRIVE records, parked for PARK, and so on."""
    cycle, step = divmod(n, DRIVE + PARK)
    driving = step < DRIVE
    metres = (cycle * DRIVE + min(step, DRIVE)) * SPEED_KMH / 3.6 * RECORD_STEP_MS / 1000
    lat = 45.0 + (tracker % 400) * 0.01
    lon = 5.0 + (tracker // 400) * 0.5 + metres / (111_320 * math.cos(math.radians(lat)))
    return AvlRecord(
        ts=first_ts + n * RECORD_STEP_MS,
        priority=0,
        lat=round(lat, 7),
        lon=round(lon, 7),
        altitude_m=212,
        angle_deg=90 if driving else 0,
        satellites=14,
        speed_kmh=SPEED_KMH if driving else 0,
        event_io_id=0,
        io={
            io.IO_IGNITION: int(driving),
            io.IO_MOVEMENT: int(driving),
            io.IO_GSM_SIGNAL: 4,
            io.IO_GNSS_STATUS: 1,
            io.IO_DIGITAL_INPUT_1: int(driving),
            io.IO_DIGITAL_OUTPUT_1: 0,
            io.IO_GNSS_PDOP: 9,
            io.IO_GNSS_HDOP: 7,
            io.IO_EXTERNAL_VOLTAGE: 13_800 if driving else 12_600,
            io.IO_BATTERY_VOLTAGE: 4_100,
            io.IO_BATTERY_CURRENT: 0,
            io.IO_TOTAL_ODOMETER: 1_000_000 + round(metres),
        },
    )


#: The IO groups the trackers send each element in (Teltonika's tables: 1, 2 or 4 bytes).
IO_SIZES = {
    io.IO_GNSS_PDOP: 2,
    io.IO_GNSS_HDOP: 2,
    io.IO_EXTERNAL_VOLTAGE: 2,
    io.IO_BATTERY_VOLTAGE: 2,
    io.IO_BATTERY_CURRENT: 2,
    io.IO_TOTAL_ODOMETER: 4,
}


def make_packet(codec: int, tracker: int, first_n: int, count: int, first_ts: int) -> bytes:
    """A TCP packet of ``count`` records of a tracker, from its record ``first_n`` on."""
    records = [make_record(tracker, n, first_ts) for n in range(first_n, first_n + count)]
    return encode_tcp_packet(encode_avl_data(codec, records, io_sizes=IO_SIZES))


def json_body(packet: bytes) -> bytes:
    """The same readings as an HTTP ingest request's JSON body (the decode baseline)."""
    (event,) = TcpDeframer(expect_imei=False).feed(packet)
    assert isinstance(event, AvlPacket)
    return msgspec.json.encode([{"ts": r.ts, "values": to_values(r)} for r in event.records])


# -- 1. decode ---------------------------------------------------------------------------------


@dataclass
class DecodeResult:
    what: str
    frame_bytes: int
    records: int
    frames_per_s: list[float]  # per core: frames / CPU seconds

    def records_per_s(self) -> list[float]:
        return [f * self.records for f in self.frames_per_s]


def decode_rate(packet: bytes, seconds: float) -> float:
    """Frames per CPU second through one TcpDeframer, every record through to_values."""
    deframer = TcpDeframer(expect_imei=False)
    frames = 0
    start = time.process_time()
    while True:
        for _ in range(200):
            for event in deframer.feed(packet):
                if not isinstance(event, AvlPacket):
                    raise RuntimeError(f"the benchmark's frame did not decode: {event!r}")
                for record in event.records:
                    to_values(record)
        frames += 200
        used = time.process_time() - start
        if used >= seconds:
            return frames / used


def json_rate(body: bytes, seconds: float) -> float:
    """Bodies per CPU second through msgspec's JSON decoder (what HTTP ingest does first)."""
    decoder = msgspec.json.Decoder()
    bodies = 0
    start = time.process_time()
    while True:
        for _ in range(200):
            decoder.decode(body)
        bodies += 200
        used = time.process_time() - start
        if used >= seconds:
            return bodies / used


def bench_decode(records: int, repeat: int, seconds: float) -> list[DecodeResult]:
    first_ts = now_ms() - HOUR_MS
    packets = {
        "Codec 8": make_packet(CODEC_8, 0, 0, records, first_ts),
        "Codec 8 Extended": make_packet(CODEC_8E, 0, 0, records, first_ts),
    }
    results = []
    for name, packet in packets.items():
        rates = [decode_rate(packet, seconds) for _ in range(repeat)]
        results.append(
            DecodeResult(f"{name}: TcpDeframer + to_values", len(packet), records, rates)
        )
    body = json_body(packets["Codec 8"])
    rates = [json_rate(body, seconds) for _ in range(repeat)]
    results.append(
        DecodeResult("baseline: the same readings as JSON, msgspec", len(body), records, rates)
    )
    return results


def report_decode(results: Sequence[DecodeResult]) -> None:
    print(f"{'frame':<48} {'bytes':>6} {'frames/s per core':>24} {'records/s per core':>26}")
    for r in results:
        print(
            f"{r.what:<48} {r.frame_bytes:>6,} {spread(r.frames_per_s):>24} "
            f"{spread(r.records_per_s()):>26}"
        )


# -- 2. end to end: provisioning ---------------------------------------------------------------


async def provision(database_url: str, trackers: int, fleet: bool) -> None:
    """Tenant, ``tracker`` type (with a fleet profile) and the trackers, by CSV import."""
    from m2mhub.apps.fleet import storage
    from m2mhub.registry.service import Registry
    from m2mhub.store import open_store

    async with open_store(database_url) as store:
        registry = Registry(store)
        tenant = await registry.create_tenant("bench")
        device_type = await registry.create_device_type(tenant.id, "tracker")
        if fleet:
            await storage.set_profile(store, tenant.id, device_type.id, FLEET_OVERRIDES, "UTC")
        csv = "name,type,id\n" + "".join(
            f"tracker {i:05d},tracker,{imei_of(i)}\n" for i in range(trackers)
        )
        await registry.import_devices_csv(tenant.id, csv)


class _State(msgspec.Struct):
    last_ts: int | None = None


async def fleet_progress(store: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Each vehicle's last processed record time (by device id), and the outputs by kind."""
    rows = await store.query(
        "SELECT d.id, s.state FROM fleet_state s JOIN devices d ON d.pk = s.device_pk"
    )
    decoder = msgspec.json.Decoder(_State)
    states = {str(i): decoder.decode(s).last_ts or 0 for i, s in rows}
    kinds = await store.query("SELECT kind, COUNT(*) FROM fleet_outputs GROUP BY kind")
    return states, {str(k): int(c) for k, c in kinds}


def processed_records(
    states: dict[str, int], ranges: dict[str, tuple[int, int]], first_ts: int
) -> int:
    """Records of this run at or before each vehicle's processed state."""
    total = 0
    for device, (low, high) in ranges.items():
        ts = states.get(device, 0)
        if ts >= first_ts:
            total += max(0, min(high, (ts - first_ts) // RECORD_STEP_MS + 1) - low)
    return total


#: No progress for this long with the fleet's bus queue empty: nothing more will be processed.
STALLED_S = 3.0


async def wait_for_fleet(
    store: Any,
    client: httpx.AsyncClient,
    first_ts: int,
    ranges: dict[str, tuple[int, int]],
    clock_start: float,
) -> tuple[int, float]:
    """Wait until the fleet service has processed every record of the run, or stopped
    making progress; (records processed, seconds from the start to the last progress)."""
    wanted = sum(high - low for low, high in ranges.values())
    done, progress_at = -1, time.perf_counter()
    deadline = progress_at + RUN_TIMEOUT_S
    while time.perf_counter() < deadline:
        states, _ = await fleet_progress(store)
        now = time.perf_counter()
        count = processed_records(states, ranges, first_ts)
        if count > done:
            done, progress_at = count, now
        if done >= wanted:
            break
        if now - progress_at > STALLED_S and not await metric(client, "m2mhub_bus_lag", '"fleet"'):
            break
        await asyncio.sleep(0.1)
    return done, progress_at - clock_start


# -- 2. end to end: the trackers ---------------------------------------------------------------


@dataclass
class Tracker:
    """One connected tracker and the next record it will send."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    next_record: int = 0
    packets: list[bytes] = field(default_factory=list)


async def connect_all(port: int, count: int, parallel: int = 100) -> list[Tracker]:
    """Open one connection per tracker and log each in (IMEI, then the 0x01 answer)."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> Tracker:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode_imei(imei_of(index)))
            answer = await asyncio.wait_for(reader.readexactly(1), 30)
            if answer != b"\x01":
                raise RuntimeError(f"tracker {imei_of(index)} refused at login ({answer!r})")
            return Tracker(index, reader, writer)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def close_all(trackers: Sequence[Tracker]) -> None:
    for tracker in trackers:
        tracker.writer.close()
    for tracker in trackers:
        with contextlib.suppress(ConnectionError):
            await tracker.writer.wait_closed()


@dataclass
class E2eRun:
    """One timed run of every tracker."""

    load: str
    records: int
    values: int
    seconds: float  # first packet written to last ack
    processed_s: float | None  # first packet written to the last record processed (no fleet: None)
    processed: int  # records the fleet service processed up to its state
    latencies_ms: list[float]
    cpu: str
    server_cores: float
    rss_mb: float
    offered: float | None = None  # records/s, steady runs
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def processed_rate(self) -> float | None:
        return None if self.processed_s is None else self.processed / self.processed_s


async def metric(client: httpx.AsyncClient, name: str, label: str = "") -> float:
    """The value of one line of /metrics (with ``label``, e.g. ``subscriber="fleet"``)."""
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name) and (label in line) and not line.startswith("#"):
            head = line.split()[0]
            if head == name or head.startswith(name + "{"):
                return float(line.split()[-1])
    return 0.0


async def send_packets(
    tracker: Tracker,
    records: int,
    latencies: list[float],
    start: float,
    period: float | None,
    phase: float,
) -> float:
    """Send the tracker's packets, each after the previous ack; the time of its last ack.

    With ``period``, packet ``n`` is written at ``start + phase + n * period`` (loop time),
    or at once when the previous ack came later than that.
    """
    expected = records.to_bytes(4, "big")
    loop = asyncio.get_running_loop()
    last = start
    for n, packet in enumerate(tracker.packets):
        if period is not None:
            delay = start + phase + n * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        sent = time.perf_counter()
        tracker.writer.write(packet)
        ack = await tracker.reader.readexactly(4)
        last = time.perf_counter()
        latencies.append((last - sent) * 1000)
        if ack != expected:
            raise RuntimeError(f"tracker {imei_of(tracker.index)}: ack {ack.hex()}, not {records}")
    return last


@dataclass
class Session:
    """The connected trackers of one backend's server and what the runs share."""

    trackers: list[Tracker]
    server: Server
    database_url: str
    backend: str
    fleet: bool
    first_ts: int  # data time of every tracker's record 0
    args: argparse.Namespace


async def run_trackers(
    session: Session, *, load: str, packets: int, period: float | None
) -> E2eRun:
    """Every tracker sends ``packets`` packets; measured until the fleet has processed them."""
    trackers, server, args = session.trackers, session.server, session.args
    first_ts, backend = session.first_ts, session.backend
    ranges: dict[str, tuple[int, int]] = {}  # each vehicle's record numbers in this run
    for tracker in trackers:
        ranges[imei_of(tracker.index)] = (
            tracker.next_record,
            tracker.next_record + packets * args.records,
        )
        tracker.packets = [
            make_packet(
                args.codec,
                tracker.index,
                tracker.next_record + p * args.records,
                args.records,
                first_ts,
            )
            for p in range(packets)
        ]
        tracker.next_record += packets * args.records
    records = len(trackers) * packets * args.records
    values_per_record = len(to_values(make_record(0, 0, first_ts)))
    latencies: list[float] = []
    problems: list[str] = []
    from m2mhub.store import open_store

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        open_store(session.database_url) as store,
    ):
        stored_before = await metric(client, "m2mhub_ingest_values_total")
        refused_before = await metric(client, "m2mhub_positions_refused_total")
        fleet_dropped_before = await metric(client, "m2mhub_bus_dropped_total", '"fleet"')
        if backend == "postgres":
            pg_checkpoint(args.pg_url)
        loop = asyncio.get_running_loop()
        # Steady load: the trackers' first packets spread evenly over one period.
        phases = [i / len(trackers) * (period or 0.0) for i in range(len(trackers))]
        with CpuMeter(server, with_postgres=backend == "postgres") as cpu:
            clock_start = time.perf_counter()
            start = loop.time() + 0.05
            ends = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        send_packets(t, args.records, latencies, start, period, phase)
                        for t, phase in zip(trackers, phases, strict=True)
                    )
                ),
                RUN_TIMEOUT_S,
            )
            seconds = max(ends) - clock_start
            processed_s: float | None = None
            processed = 0
            if session.fleet:
                processed, processed_s = await wait_for_fleet(
                    store, client, first_ts, ranges, clock_start
                )
                if processed < records:
                    left = records - processed
                    problems.append(
                        f"{left:,} records not trip-processed: the fleet service's bus queue "
                        "dropped the last events of their vehicles, which wait for their next "
                        "packet"
                    )
            # The server's CPU until the last record was processed (or acked, without fleet).
            elapsed = processed_s or seconds
        rss = rss_mb(server.process.pid)
        stored = await metric(client, "m2mhub_ingest_values_total") - stored_before
        refused = await metric(client, "m2mhub_positions_refused_total") - refused_before
        dropped = await metric(client, "m2mhub_bus_dropped_total", '"fleet"') - fleet_dropped_before
    values = records * values_per_record
    if stored != values:
        problems.append(f"{stored:,.0f} values newly stored, {values:,} sent")
    if refused:
        problems.append(f"{refused:,.0f} readings refused by the position filter")
    if dropped:
        problems.append(f"the fleet service's bus queue dropped {dropped:,.0f} events (caught up)")
    server_cores = cpu.used["server"] / elapsed
    return E2eRun(
        load,
        records,
        values,
        seconds,
        processed_s,
        processed,
        latencies,
        cpu.describe(elapsed),
        server_cores,
        rss,
        offered=len(trackers) * args.records / period if period else None,
        problems=problems,
    )


def report_e2e(run: E2eRun) -> None:
    offered = f" (offered {run.offered:,.0f})" if run.offered else ""
    print(
        f"  {run.load}: {run.rate:,.0f} records/s acked{offered}, "
        f"{run.values / run.seconds:,.0f} values/s stored "
        f"({run.records:,} records in {run.seconds:.1f} s); ack latency "
        f"p50 {percentile(run.latencies_ms, 0.5):.0f} ms, "
        f"p99 {percentile(run.latencies_ms, 0.99):.0f} ms"
    )
    if run.processed_s is not None:
        print(
            f"    trip-processed: {run.processed:,} of {run.records:,} records after "
            f"{run.processed_s:.1f} s ({run.processed_rate:,.0f} records/s)"
        )
    print(f"    {run.cpu}; server RSS {run.rss_mb:,.0f} MiB")
    for problem in run.problems:
        print(f"    NOTE: {problem}")
    sys.stdout.flush()


# -- one backend ---------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    http_rate: float
    steady: list[E2eRun]
    fast: list[E2eRun]
    rss_idle_mb: float
    rss_connected_mb: float
    outputs: dict[str, int]


def http_baseline(backend: str, args: argparse.Namespace, work: Path) -> float:
    """bench/ingest_http.py's run against a fresh database of the same store: values/s."""
    shape = argparse.Namespace(
        points=args.http_points,
        roles="api",
        pg_url=args.pg_url,
        **{k: v for k, v in HTTP_SHAPE.items() if k != "clients"},
    )
    clients = HTTP_SHAPE["clients"]
    print(
        f"baseline: HTTP ingest, {args.http_points:,} values as requests of "
        f"{shape.readings} readings x {shape.values} values, {clients} connections ...",
        flush=True,
    )
    with store_url(backend, args, work, "http_baseline") as database_url:
        run, _ = http_run(backend, shape, work, database_url, clients)
    report_run(run)
    return run.rate


def bench_backend(backend: str, args: argparse.Namespace, work: Path) -> Result:
    http_rate = http_baseline(backend, args, work)
    fleet = not args.no_fleet
    with store_url(backend, args, work, "trackers") as database_url:
        print(f"creating {args.trackers:,} trackers (ids = IMEIs) ...", flush=True)
        started = time.perf_counter()
        run_async(provision(database_url, args.trackers, fleet))
        print(f"  {time.perf_counter() - started:.1f} s")
        port = free_port()
        env = {
            "M2MHUB_TRACKERS": f"teltonika:{port}",
            "M2MHUB_TRACKER_MAX_CONNECTIONS": str(args.trackers + 100),
        }
        with run_server(database_url, work, roles=args.roles, env=env) as server:
            rss_idle = rss_mb(server.process.pid)
            return run_async(
                measure(backend, args, server, database_url, rss_idle, http_rate, fleet, port)
            )


async def measure(
    backend: str,
    args: argparse.Namespace,
    server: Server,
    database_url: str,
    rss_idle: float,
    http_rate: float,
    fleet: bool,
    port: int,
) -> Result:
    started = time.perf_counter()
    trackers = await connect_all(port, args.trackers)
    print(
        f"{len(trackers):,} trackers connected and logged in "
        f"({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    rss_connected = rss_mb(server.process.pid)
    # Each run's records are newer than the last run's: no late data for the fleet.
    total = (args.repeat * (args.steady_packets + args.packets) + 1) * args.records
    first_ts = (now_ms() - total * RECORD_STEP_MS - HOUR_MS) // 1000 * 1000
    result = Result(backend, http_rate, [], [], rss_idle, rss_connected, {})
    session = Session(trackers, server, database_url, backend, fleet, first_ts, args)
    try:
        # Warm-up: one packet each (the devices and their types are cached), not reported.
        await run_trackers(session, load="warm-up", packets=1, period=None)
        period = args.records / args.rate
        for n in range(args.repeat):
            print(f"run {n + 1} of {args.repeat}:", flush=True)
            steady = await run_trackers(
                session,
                load=f"steady, {args.rate:g} record/s per tracker",
                packets=args.steady_packets,
                period=period,
            )
            report_e2e(steady)
            fast = await run_trackers(
                session, load="as fast as acks allow", packets=args.packets, period=None
            )
            report_e2e(fast)
            result.steady.append(steady)
            result.fast.append(fast)
    finally:
        await close_all(trackers)
    if fleet:
        from m2mhub.store import open_store

        async with open_store(database_url) as store:
            _, result.outputs = await fleet_progress(store)
        print(f"  fleet outputs in the store: {result.outputs}")
    return result


# -- main ------------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Enough file descriptors for every connection, here and in the server (it inherits)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"--trackers: {needed:,} file descriptors are needed, the hard limit is {hard:,}; "
            "raise it (ulimit -Hn) or give fewer trackers"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def summary(results: Sequence[Result], args: argparse.Namespace) -> None:
    rule("summary (median of the repeats, range in brackets)")
    for r in results:
        per_record = r.fast[0].values / r.fast[0].records if r.fast else 0
        print(f"{r.backend}: HTTP ingest baseline {r.http_rate:,.0f} values/s")
        for runs in (r.steady, r.fast):
            if not runs:
                continue
            rates = [x.rate for x in runs]
            line = (
                f"  {runs[0].load}: {spread(rates)} records/s acked "
                f"= {spread([x * per_record for x in rates])} values/s"
            )
            if runs is r.fast:
                line += f" ({max(rates) * per_record / r.http_rate:.0%} of HTTP at best)"
            processed = [x.processed_rate for x in runs if x.processed_rate is not None]
            if processed:
                line += f"; trip-processed {spread(processed)} records/s"
            print(line)
            p50 = [percentile(x.latencies_ms, 0.5) for x in runs]
            p99 = [percentile(x.latencies_ms, 0.99) for x in runs]
            cores = [x.server_cores for x in runs]
            print(
                f"    ack p50 {spread(p50)} ms, p99 {spread(p99)} ms; "
                f"server {spread(cores, '.2f')} cores"
            )
        per_connection = (r.rss_connected_mb - r.rss_idle_mb) * 1024 / args.trackers
        print(
            f"  server RSS: {r.rss_idle_mb:,.0f} MiB started, {r.rss_connected_mb:,.0f} MiB with "
            f"{args.trackers:,} connections (~{per_connection:.0f} KiB each)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__)
    parser.add_argument("--trackers", type=int, default=2000, help="simultaneous TCP trackers")
    parser.add_argument("--records", type=int, default=10, help="records per packet")
    parser.add_argument(
        "--codec", type=lambda t: int(t, 0), default=CODEC_8E, help="0x08 or 0x8E (default)"
    )
    parser.add_argument(
        "--rate", type=float, default=1.0, help="steady load: records/s per tracker"
    )
    parser.add_argument("--steady-packets", type=int, default=3, help="packets per tracker, steady")
    parser.add_argument(
        "--packets", type=int, default=5, help="packets per tracker, as fast as acks allow"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each load")
    parser.add_argument("--http-points", type=int, default=1_000_000, help="HTTP baseline size")
    parser.add_argument("--decode-seconds", type=float, default=1.0, help="CPU time per decode run")
    parser.add_argument(
        "--roles", default="api,ingest,rules", help="server roles (rules runs the fleet service)"
    )
    parser.add_argument(
        "--no-fleet", action="store_true", help="no fleet profile: measure to stored only"
    )
    parser.add_argument("--skip-decode", action="store_true", help="only the end-to-end part")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run of every part (50 trackers, 1 repeat, 20,000 HTTP values)",
    )
    args = parser.parse_args(argv)
    if args.codec not in (CODEC_8, CODEC_8E):
        parser.error("--codec: give 0x08 or 0x8E")
    if args.quick:
        args.trackers, args.repeat, args.http_points = 50, 1, 20_000
        args.steady_packets, args.packets, args.rate = 2, 2, 5.0
        args.decode_seconds = 0.2
        HTTP_SHAPE["devices"] = 50
    stop_cleanly_on_sigterm()
    raise_fd_limit(2 * args.trackers + 1024)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    rule("machine")
    for line in machine_summary(args.pg_url if "postgres" in backends else None):
        print(line)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    if not args.skip_decode:
        rule(f"decode: packets of {args.records} records, 12 IO elements each")
        report_decode(bench_decode(args.records, max(3, args.repeat), args.decode_seconds))
    results = []
    for backend in backends:
        rule(f"{args.trackers:,} Teltonika trackers into {backend}")
        if backend == "postgres" and postgres_version(args.pg_url) is None:
            print(f"skipped: PostgreSQL not reachable at {args.pg_url}")
            continue
        with temp_dir(f"m2mhub-bench-trackers-{backend}-") as work:
            results.append(bench_backend(backend, args, work))
    if results:
        summary(results, args)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
