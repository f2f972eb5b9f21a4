"""MQTT ingest end to end: messages per second from publish to stored, beside the broker's ceiling.

For each store this

1. starts a Mosquitto of its own (dynamic security, ``max_queued_messages 0``,
   ``set_tcp_nodelay true``: the configuration of docs/mqtt.md) on a free
   loopback port;
2. creates a tenant, a device type with 5 numeric keys and ``--devices``
   devices, each with its own token and broker account;
3. starts ``python -m m2mhub serve`` (roles ``api,ingest``) against that
   broker, in its own process;
4. logs every device in over its own connection (this process: a raw-socket
   MQTT client, messages encoded before the clock starts, at most
   ``--window`` unacknowledged QoS 1 messages per connection);
5. ``--repeat`` times, measures in turn
   - the **ceiling**: the same stream (same devices, connections, payloads,
     QoS, topic length) on ``m2m/{id}/benchmark``, which m2mhub does not
     subscribe to, counted by ``mosquitto_sub`` (C) at QoS 1 on the same
     broker; from the first publish to the last message received;
   - **m2mhub**: the stream on ``m2m/{id}/telemetry``, from the first publish
     until m2mhub has committed every value (its ``m2mhub_ingest_values``
     counter), then checks the rows in the store: none lost, none twice.

A short run through the embedded broker (amqtt, in the m2mhub process)
follows, for the figure docs/mqtt.md gives for that mode.

Run: ``python bench/ingest_mqtt.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from _common import (
    HOUR_MS,
    Mosquitto,
    Server,
    count_stored,
    free_port,
    machine_summary,
    mosquitto_missing,
    new_parser,
    pg_checkpoint,
    pg_schema,
    pg_store_url,
    postgres_cpu_seconds,
    postgres_version,
    prepare,
    process_cpu_seconds,
    rule,
    run_mosquitto,
    run_server,
    scrape_metric,
    spread,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from _mqtt import Fleet, connect_fleet, prepare_messages
from m2mhub.core.timeutil import now_ms

try:
    import uvloop

    new_loop = uvloop.new_event_loop
except ImportError:  # the standard loop only costs the load generator a little more CPU
    new_loop = asyncio.new_event_loop

KEYS = 5
#: How long a run may take before it is reported as incomplete.
RUN_TIMEOUT_S = 120.0
#: The ceiling's topic: as long as "telemetry", and not one m2mhub subscribes to.
CEILING_CHANNEL = "benchmark"


@dataclass
class Stream:
    """One run's messages: per device, its prepared payloads; and the values they hold."""

    payloads: list[list[bytes]]
    values: int

    @property
    def messages(self) -> int:
        return sum(len(p) for p in self.payloads)


def build_stream(devices: int, messages: int, batch: int, first_ts: int, seed: int) -> Stream:
    """Readings of 3 to 5 values; ``batch`` readings per message, one second apart."""
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    per_device = max(1, messages // devices)
    payloads: list[list[bytes]] = []
    values = 0
    for d in range(devices):
        mine = []
        for m in range(per_device):
            readings = []
            for r in range(batch):
                count = 3 + (d + m + r) % 3
                values += count
                readings.append(
                    {
                        "ts": first_ts + (m * batch + r) * 1000,
                        "values": {f"v{k}": round(rng.uniform(0, 100), 2) for k in range(count)},
                    }
                )
            mine.append(encoder.encode(readings[0] if batch == 1 else readings))
        payloads.append(mine)
    return Stream(payloads, values)


@dataclass
class Run:
    """One timed run of one stream."""

    messages: int
    values: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    problem: str = ""
    transactions: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def points(self) -> float:
        return self.values / self.seconds


@dataclass
class Result:
    """The runs of one broker mode and store."""

    mode: str
    store: str
    batch: int
    runs: list[Run]
    ceilings: list[Run]


# -- measuring ---------------------------------------------------------------------------------


class Cpu:
    """CPU seconds of the processes that share the machine during one run, in cores."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids

    def sample(self) -> dict[str, float]:
        sample = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        sample["load generator"] = time.process_time()
        return sample

    @staticmethod
    def cores(start: dict[str, float], end: dict[str, float], seconds: float) -> dict[str, float]:
        return {k: (end[k] - start[k]) / seconds for k in start}


def describe_cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())


async def stored_values(client: httpx.AsyncClient) -> int:
    response = await client.get("/metrics")
    return scrape_metric(response.text, "m2mhub_ingest_values_total")


async def transactions(client: httpx.AsyncClient) -> int:
    response = await client.get("/metrics")
    return scrape_metric(response.text, "m2mhub_ingest_transactions_total")


def poll_interval(done: int, remaining: int, start: float) -> float:
    """How long to wait before asking /metrics again: half the time the rest should take.

    Each answer costs the server CPU that it would otherwise spend on ingest, so
    it is asked rarely while far from done (at most every 0.5 s) and more often
    near the end, which it finds to within 20 ms.
    """
    elapsed = time.perf_counter() - start
    if done <= 0 or elapsed <= 0:
        return 0.1
    return min(0.5, max(0.02, remaining / (done / elapsed) / 2))


async def run_platform(
    fleet: Fleet,
    server: Server,
    stream: Stream,
    window: int,
    cpu: Cpu,
    with_postgres: bool,
) -> Run:
    """Publish ``stream`` on the devices' telemetry topics; time until every value is committed."""
    for device, payloads in zip(fleet.devices, stream.payloads, strict=True):
        device.load(prepare_messages(f"m2m/{device.device_id}/telemetry", payloads))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        before = await stored_values(client)
        tx_before = await transactions(client)
        target = before + stream.values
        pg_before = postgres_cpu_seconds() if with_postgres else 0.0
        start_cpu = cpu.sample()
        start = time.perf_counter()
        publishing = asyncio.create_task(fleet.publish(window))
        stored = before
        deadline = start + RUN_TIMEOUT_S
        while stored < target and time.perf_counter() < deadline:
            await asyncio.sleep(poll_interval(stored - before, target - stored, start))
            stored = await stored_values(client)
        seconds = time.perf_counter() - start
        cores = Cpu.cores(start_cpu, cpu.sample(), seconds)
        if with_postgres:
            cores["postgres"] = (postgres_cpu_seconds() - pg_before) / seconds
        await asyncio.wait_for(publishing, RUN_TIMEOUT_S)
        await asyncio.sleep(0.5)  # anything stored twice would show now
        stored = await stored_values(client)
        committed = await transactions(client) - tx_before
    problem = ""
    if stored != target:
        problem = f"{stored - before:,} values stored of {stream.values:,}"
    return Run(stream.messages, stream.values, seconds, cores, problem, committed)


def start_counter(broker: Mosquitto, topic: str, out: Path) -> subprocess.Popen[bytes]:
    """mosquitto_sub at QoS 1 writing one byte per message ('-F .': a dot, no newline)."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            [
                "mosquitto_sub",
                *("-h", "127.0.0.1", "-p", str(broker.port)),
                *("-u", broker.admin, "-P", broker.password),
                *("-i", f"bench-ceiling-{os.getpid()}", "-q", "1", "-t", topic, "-F", ".", "-N"),
                *os.environ.get("CEIL_ARGS", "").split(),
            ],
            stdout=sink,
            stderr=subprocess.DEVNULL,
        )


async def run_ceiling(
    fleet: Fleet, broker: Mosquitto, stream: Stream, window: int, cpu: Cpu, work: Path
) -> Run:
    """The same stream on a topic m2mhub ignores, counted by mosquitto_sub at QoS 1."""
    out = work / "ceiling.out"
    counter = start_counter(broker, f"m2m/+/{CEILING_CHANNEL}", out)
    try:
        # Probe until mosquitto_sub receives: it has subscribed. Each probe waits long
        # enough on this idle broker that a probe not counted was published too early.
        probe = fleet.devices[0]
        for _ in range(100):
            probe.publish(f"m2m/{probe.device_id}/{CEILING_CHANNEL}", b"probe")
            await asyncio.sleep(0.1)
            if out.stat().st_size:
                break
        else:
            raise RuntimeError("mosquitto_sub received nothing: did it connect?")
        base = out.stat().st_size
        for device, payloads in zip(fleet.devices, stream.payloads, strict=True):
            device.load(prepare_messages(f"m2m/{device.device_id}/{CEILING_CHANNEL}", payloads))
        cpu.pids["mosquitto_sub"] = counter.pid
        start_cpu = cpu.sample()
        start = time.perf_counter()
        publishing = asyncio.create_task(fleet.publish(window))
        target = base + stream.messages
        deadline = start + RUN_TIMEOUT_S
        while time.perf_counter() < deadline:
            if out.stat().st_size >= target:
                break
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - start
        cores = Cpu.cores(start_cpu, cpu.sample(), seconds)
        await asyncio.wait_for(publishing, RUN_TIMEOUT_S)
        await asyncio.sleep(0.5)
        received = out.stat().st_size - base
    finally:
        cpu.pids.pop("mosquitto_sub", None)
        counter.terminate()
        counter.wait(timeout=10)
    problem = "" if received == stream.messages else f"{received:,} of {stream.messages:,} received"
    return Run(stream.messages, stream.messages, seconds, cores, problem)


def report(what: str, run: Run, *, points: bool) -> None:
    extra = f", {run.points:,.0f} values/s" if points else ""
    if run.transactions:
        extra += f", {run.messages / run.transactions:,.1f} messages per transaction"
    print(
        f"  {what}: {run.rate:,.0f} msg/s{extra} ({run.messages:,} messages in "
        f"{run.seconds:.2f} s){'  PROBLEM: ' + run.problem if run.problem else ''}"
    )
    print(f"    CPU cores busy: {describe_cpu(run.cpu)} (of {os.cpu_count()})", flush=True)


# -- one store -----------------------------------------------------------------------------------


@contextlib.contextmanager
def store_url(backend: str, args: argparse.Namespace, work: Path, name: str) -> Iterator[str]:
    """A fresh, empty database."""
    if backend == "sqlite":
        yield f"sqlite:///{work / name}.db"
    else:
        with pg_schema(args.pg_url, f"bench_{name}") as schema:
            yield pg_store_url(args.pg_url, schema)


def first_ts(run: int, args: argparse.Namespace, batch: int) -> int:
    """Each run's readings in a time range of their own, in the past."""
    span = (args.messages // args.devices + 2) * batch * 1000
    start = now_ms() - 30 * 24 * HOUR_MS
    return (start + run * span) // 1000 * 1000


async def warm_up(fleet: Fleet, server: Server, args: argparse.Namespace) -> None:
    """Every device sends one reading: m2mhub knows them all before the clock starts."""
    stream = build_stream(len(fleet.devices), len(fleet.devices), 1, first_ts(-1, args, 1), 0)
    cpu = Cpu()
    run = await run_platform(fleet, server, stream, 1, cpu, False)
    if run.problem:
        raise RuntimeError(f"warm-up: {run.problem}")


async def measure_mosquitto(
    backend: str,
    args: argparse.Namespace,
    batch: int,
    broker: Mosquitto,
    server: Server,
    credentials: list[tuple[str, str]],
    work: Path,
) -> Result:
    fleet = await connect_fleet(broker.port, credentials)
    result = Result("Mosquitto", backend, batch, [], [])
    try:
        await warm_up(fleet, server, args)
        cpu = Cpu(m2mhub=server.process.pid, mosquitto=broker.process.pid)
        for n in range(args.repeat):
            stream = build_stream(
                len(credentials), args.messages, batch, first_ts(n, args, batch), n
            )
            print(f"run {n + 1} of {args.repeat}:", flush=True)
            ceiling = await run_ceiling(fleet, broker, stream, args.window, cpu, work)
            report("ceiling (mosquitto_sub)", ceiling, points=False)
            if backend == "postgres":
                pg_checkpoint(args.pg_url)
            run = await run_platform(
                fleet, server, stream, args.window, cpu, with_postgres=backend == "postgres"
            )
            report("m2mhub", run, points=True)
            print(f"    share of the ceiling: {run.rate / ceiling.rate:.0%}")
            result.ceilings.append(ceiling)
            result.runs.append(run)
    finally:
        await fleet.close()
    return result


async def measure_embedded(
    backend: str,
    args: argparse.Namespace,
    batch: int,
    port: int,
    server: Server,
    credentials: list[tuple[str, str]],
) -> Result:
    fleet = await connect_fleet(port, credentials)
    result = Result("embedded", backend, batch, [], [])
    try:
        await warm_up(fleet, server, args)
        cpu = Cpu(m2mhub=server.process.pid)
        for n in range(args.repeat):
            stream = build_stream(
                len(credentials), args.embedded_messages, batch, first_ts(n, args, batch), n
            )
            print(f"run {n + 1} of {args.repeat}:", flush=True)
            run = await run_platform(
                fleet, server, stream, args.window, cpu, with_postgres=backend == "postgres"
            )
            report("m2mhub (embedded broker)", run, points=True)
            result.runs.append(run)
    finally:
        await fleet.close()
    return result


def verify_rows(database_url: str, result: Result, warm_values: int) -> None:
    """Every value of every run is in the store once: none lost, none twice."""
    expected = warm_values + sum(r.values for r in result.runs)
    stored = asyncio.run(count_stored(database_url))
    verdict = "none lost, none twice" if stored == expected else "MISMATCH"
    print(f"  rows in the store: {stored:,}, expected {expected:,}: {verdict}")
    if stored != expected:
        for run in result.runs:
            run.problem = run.problem or f"store holds {stored:,} rows, expected {expected:,}"


def warm_values(devices: int) -> int:
    return sum(3 + d % 3 for d in range(devices))


def bench_mosquitto(backend: str, args: argparse.Namespace, batch: int, work: Path) -> Result:
    with (
        run_mosquitto(work / f"mosquitto-{backend}-{batch}") as broker,
        store_url(backend, args, work, f"mqtt_{batch}") as database_url,
    ):
        print(f"creating {args.devices:,} devices with broker accounts ...", flush=True)
        devices, _ = asyncio.run(prepare(database_url, args.devices, KEYS, broker=broker))
        credentials = [(d, token) for d, _, token in devices]
        env = {
            **broker.env(),
            "M2MHUB_MQTT_ENABLED": "true",
            "M2MHUB_MQTT_CLIENT_ID": f"m2mhub-bench-{os.getpid()}",
        }
        with run_server(database_url, work, roles="api,ingest", env=env) as server:
            print(
                f"{args.messages:,} messages of {batch} reading(s) x 3-5 values from "
                f"{args.devices:,} devices, QoS 1, window {args.window} per connection",
                flush=True,
            )
            result = run_loop(
                measure_mosquitto(backend, args, batch, broker, server, credentials, work)
            )
        verify_rows(database_url, result, warm_values(args.devices))
    return result


def bench_embedded(backend: str, args: argparse.Namespace, batch: int, work: Path) -> Result:
    with store_url(backend, args, work, f"embedded_{batch}") as database_url:
        devices, _ = asyncio.run(prepare(database_url, args.devices, KEYS))
        credentials = [(d, token) for d, _, token in devices]
        port = free_port()
        env = {"M2MHUB_MQTT_ENABLED": "true", "M2MHUB_MQTT_PORT": str(port)}
        with run_server(database_url, work, roles="api,ingest", env=env) as server:
            print(
                f"{args.embedded_messages:,} messages of {batch} reading(s) x 3-5 values from "
                f"{args.devices:,} devices, QoS 1, window {args.window} per connection",
                flush=True,
            )
            result = run_loop(measure_embedded(backend, args, batch, port, server, credentials))
        verify_rows(database_url, result, warm_values(args.devices))
    return result


def run_loop(coro: object) -> Result:
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)  # type: ignore[arg-type]
    finally:
        loop.close()


# -- summary ---------------------------------------------------------------------------------


def summary(results: list[Result]) -> None:
    rule("summary (median of the runs, range in brackets)")
    print(
        f"{'mode':10} {'store':8} {'batch':>5}  {'msg/s':>24}  {'values/s':>26}  "
        f"{'ceiling msg/s':>24}  {'share':>14}"
    )
    for r in results:
        rates = [x.rate for x in r.runs]
        points = [x.points for x in r.runs]
        ceiling = spread([c.rate for c in r.ceilings]) if r.ceilings else "-"
        shares = (
            spread([x.rate / c.rate * 100 for x, c in zip(r.runs, r.ceilings, strict=True)], ".0f")
            if r.ceilings
            else "-"
        )
        print(
            f"{r.mode:10} {r.store:8} {r.batch:>5}  {spread(rates):>24}  {spread(points):>26}  "
            f"{ceiling:>24}  {shares + ' %' if r.ceilings else '-':>14}"
        )
        if any(x.problem for x in r.runs + r.ceilings):
            print("    PROBLEMS: " + "; ".join(x.problem for x in r.runs + r.ceilings if x.problem))
        cpu_keys = r.runs[0].cpu.keys()
        median_cpu = {k: statistics.median(x.cpu.get(k, 0.0) for x in r.runs) for k in cpu_keys}
        print(f"    m2mhub runs, CPU cores: {describe_cpu(median_cpu)}")


def main(argv: list[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    parser = new_parser(__doc__)
    parser.set_defaults(backends="sqlite")
    parser.add_argument("--devices", type=int, default=1000, help="devices, one connection each")
    parser.add_argument(
        "--messages", type=int, default=300_000, help="messages per run through Mosquitto"
    )
    parser.add_argument("--batch", default="1", help="readings per message: 1, 10 or both (1,10)")
    parser.add_argument("--qos", type=int, default=1, choices=[1], help="QoS (1 only)")
    parser.add_argument(
        "--window", type=int, default=10, help="unacknowledged messages per connection"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument(
        "--brokers", default="mosquitto,embedded", help="mosquitto, embedded or both"
    )
    parser.add_argument(
        "--embedded-messages",
        type=int,
        default=15_000,
        help="messages per run through the embedded broker (a short run)",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    batches = [int(b) for b in args.batch.split(",")]
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    for line in machine_summary(args.pg_url if "postgres" in backends else None):
        print(line)
    if "mosquitto" in brokers and (why := mosquitto_missing()):
        print(f"Mosquitto part skipped: {why}")
        brokers.remove("mosquitto")
    if "postgres" in backends and postgres_version(args.pg_url) is None:
        print(f"PostgreSQL part skipped: no server at {args.pg_url}")
        backends.remove("postgres")
    results: list[Result] = []
    with temp_dir("m2mhub-bench-mqtt-") as work:
        for backend in backends:
            for batch in batches:
                if "mosquitto" in brokers:
                    rule(f"Mosquitto, {backend}, batch {batch}")
                    results.append(bench_mosquitto(backend, args, batch, work))
                if "embedded" in brokers:
                    rule(f"embedded broker (amqtt), {backend}, batch {batch}")
                    results.append(bench_embedded(backend, args, batch, work))
    summary(results)
    return 1 if any(x.problem for r in results for x in r.runs + r.ceilings) else 0


if __name__ == "__main__":
    sys.exit(main())
