"""Commands over MQTT: round trip from the API call to the device's result stored, and memory.

For each broker mode (Mosquitto of its own, configured as docs/mqtt.md
recommends; the embedded amqtt broker) this

1. creates ``--devices`` devices (with broker accounts at Mosquitto) and an
   admin API key, and starts ``python -m m2mhub serve`` (roles
   ``api,ingest``) in its own process;
2. reads the resident memory (RSS) of the m2mhub process (and of Mosquitto),
   logs every device in over its own connection (a raw-socket MQTT client in
   this process) subscribed to ``m2m/{id}/commands/+``, sends its birth
   message (``online`` on ``m2m/{id}/status``), waits, and reads the memory
   again: the difference per device;
3. sends ``--commands`` commands through the REST API
   (``POST /api/v1/devices/{id}/commands``) to devices in turn, from
   ``--concurrency`` clients at once; each device answers at once on
   ``m2m/{id}/commands/{cmd}/result``. A round trip is the time from the
   start of the API call to the moment m2mhub stored the result (the
   command's ``finished`` time, in ms), on the same clock.

Run: ``python bench/commands_mqtt.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from _common import (
    Mosquitto,
    Server,
    free_port,
    machine_summary,
    mosquitto_missing,
    new_parser,
    percentile,
    pg_schema,
    pg_store_url,
    postgres_version,
    prepare,
    rss_mb,
    rule,
    run_mosquitto,
    run_server,
    spread,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from _mqtt import DeviceConnection, Fleet, connect_fleet
from m2mhub.core.values import Role
from m2mhub.registry.service import Registry
from m2mhub.store import open_store

try:
    import uvloop

    new_loop = uvloop.new_event_loop
except ImportError:
    new_loop = asyncio.new_event_loop

#: Settle time after the devices connected, before memory is read again; longer than
#: m2mhub's 10 s device cache, so that every device is known to be connected.
SETTLE_S = 11.0
RESULT = msgspec.json.encode({"status": "succeeded", "result": {"ok": True}})


@dataclass
class Round:
    """One batch of commands at one concurrency."""

    concurrency: int
    round_trips_ms: list[float]
    api_ms: list[float]
    seconds: float


@dataclass
class Result:
    mode: str
    store: str
    devices: int
    rss_before_mb: float
    rss_after_mb: float
    broker_before_mb: float | None
    broker_after_mb: float | None
    rounds: list[Round] = field(default_factory=list)

    @property
    def kb_per_device(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1024 / self.devices


def answer(device: DeviceConnection, topic: str, payload: bytes) -> None:
    """A device answers every command at once."""
    if "/commands/" in topic and not topic.endswith("/result"):
        device.publish(f"{topic}/result", RESULT)


async def create_key(database_url: str) -> str:
    async with open_store(database_url) as store:
        tenant = await store.get_tenant("bench")
        assert tenant is not None
        _, key = await Registry(store).create_api_key(tenant.id, "bench", Role.ADMIN)
    return key


async def finished_at(database_url: str, ids: list[str]) -> dict[str, int | None]:
    async with open_store(database_url) as store:
        return {i: (await store.get_command(i)).finished_ms for i in ids}


async def send_commands(
    server: Server, key: str, device_ids: list[str], count: int, concurrency: int
) -> tuple[list[tuple[str, float, float]], float]:
    """(command id, API call start in ms since the epoch, API call ms) per command; seconds."""
    targets = iter(device_ids[i % len(device_ids)] for i in range(count))
    sent: list[tuple[str, float, float]] = []
    body = {"method": "reboot", "params": {"delay_s": 0}}

    async def client(http: httpx.AsyncClient) -> None:
        for device_id in targets:
            start_wall = time.time() * 1000
            start = time.perf_counter()
            response = await http.post(f"/api/v1/devices/{device_id}/commands", json=body)
            api_ms = (time.perf_counter() - start) * 1000
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code} {response.text[:200]}")
            sent.append((response.json()["id"], start_wall, api_ms))

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, limits=limits, timeout=30
    ) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return sent, seconds


async def wait_answered(database_url: str, ids: list[str]) -> dict[str, int]:
    deadline = time.monotonic() + 60
    while True:
        finished = await finished_at(database_url, ids)
        if all(v is not None for v in finished.values()) or time.monotonic() > deadline:
            return {k: v for k, v in finished.items() if v is not None}
        await asyncio.sleep(0.2)


async def measure(
    result: Result,
    args: argparse.Namespace,
    port: int,
    server: Server,
    database_url: str,
    credentials: list[tuple[str, str]],
    broker_pid: int | None,
) -> None:
    key = await create_key(database_url)
    await asyncio.sleep(1)
    result.rss_before_mb = rss_mb(server.process.pid)
    if broker_pid is not None:
        result.broker_before_mb = rss_mb(broker_pid)
    fleet: Fleet = await connect_fleet(port, credentials)
    try:
        for device in fleet.devices:
            device.on_publish = answer
        await fleet.subscribe(lambda device_id: f"m2m/{device_id}/commands/+")
        # The birth message: m2mhub sends commands over MQTT to connected devices only.
        for device in fleet.devices:
            device.publish(f"m2m/{device.device_id}/status", b"online")
        await asyncio.sleep(SETTLE_S)
        result.rss_after_mb = rss_mb(server.process.pid)
        if broker_pid is not None:
            result.broker_after_mb = rss_mb(broker_pid)
        print(
            f"  m2mhub RSS {result.rss_before_mb:.1f} MiB before, {result.rss_after_mb:.1f} MiB "
            f"with {len(credentials):,} devices connected: {result.kb_per_device:.1f} KiB per "
            "device",
            flush=True,
        )
        if result.broker_before_mb is not None and result.broker_after_mb is not None:
            per = (result.broker_after_mb - result.broker_before_mb) * 1024 / len(credentials)
            print(
                f"  Mosquitto RSS {result.broker_before_mb:.1f} -> "
                f"{result.broker_after_mb:.1f} MiB: {per:.1f} KiB per device"
            )
        device_ids = [d for d, _ in credentials]
        # Warm-up: a command to each of a few devices, not counted.
        await send_commands(server, key, device_ids, 20, 4)
        for concurrency in args.concurrency:
            for n in range(args.repeat):
                sent, seconds = await send_commands(
                    server, key, device_ids, args.commands, concurrency
                )
                finished = await wait_answered(database_url, [c for c, _, _ in sent])
                if len(finished) != len(sent):
                    raise RuntimeError(
                        f"{len(sent) - len(finished)} commands not answered; server log:\n"
                        + server.log.read_text()[-3000:]
                    )
                trips = [finished[c] - start for c, start, _ in sent]
                round_ = Round(concurrency, trips, [a for _, _, a in sent], seconds)
                result.rounds.append(round_)
                print(
                    f"  {concurrency:>3} at once, run {n + 1}: round trip p50 "
                    f"{percentile(trips, 0.5):.1f} ms, p99 {percentile(trips, 0.99):.1f} ms; "
                    f"API call p50 {percentile(round_.api_ms, 0.5):.1f} ms; "
                    f"{len(sent) / seconds:,.0f} commands/s",
                    flush=True,
                )
    finally:
        await fleet.close()


@contextlib.contextmanager
def store_url(backend: str, args: argparse.Namespace, work: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{work / name}.db"
    else:
        with pg_schema(args.pg_url, f"bench_{name}") as schema:
            yield pg_store_url(args.pg_url, schema)


def run_loop(coro: object) -> None:
    loop = new_loop()
    try:
        loop.run_until_complete(coro)  # type: ignore[arg-type]
    finally:
        loop.close()


def bench_mode(mode: str, backend: str, args: argparse.Namespace, work: Path) -> Result:
    result = Result(mode, backend, args.devices, 0, 0, None, None)
    with contextlib.ExitStack() as stack:
        broker: Mosquitto | None = None
        if mode == "Mosquitto":
            broker = stack.enter_context(run_mosquitto(work / f"mosquitto-{backend}"))
        database_url = stack.enter_context(store_url(backend, args, work, f"cmd_{mode}"))
        print(f"creating {args.devices:,} devices ...", flush=True)
        devices, _ = asyncio.run(prepare(database_url, args.devices, 3, broker=broker))
        credentials = [(d, token) for d, _, token in devices]
        if broker is not None:
            port = broker.port
            env = {
                **broker.env(),
                "M2MHUB_MQTT_ENABLED": "true",
                "M2MHUB_MQTT_CLIENT_ID": f"m2mhub-bench-{os.getpid()}",
            }
        else:
            port = free_port()
            env = {"M2MHUB_MQTT_ENABLED": "true", "M2MHUB_MQTT_PORT": str(port)}
        server = stack.enter_context(run_server(database_url, work, roles="api,ingest", env=env))
        run_loop(
            measure(
                result,
                args,
                port,
                server,
                database_url,
                credentials,
                broker.process.pid if broker is not None else None,
            )
        )
    return result


def summary(results: list[Result]) -> None:
    rule("summary (median of the runs, range in brackets)")
    print(
        f"{'mode':10} {'store':7} {'at once':>7}  {'round trip p50 ms':>20}  "
        f"{'p99 ms':>22}  {'commands/s':>18}  {'KiB/device':>10}"
    )
    for r in results:
        for concurrency in sorted({x.concurrency for x in r.rounds}):
            rounds = [x for x in r.rounds if x.concurrency == concurrency]
            p50 = [percentile(x.round_trips_ms, 0.5) for x in rounds]
            p99 = [percentile(x.round_trips_ms, 0.99) for x in rounds]
            rate = [len(x.round_trips_ms) / x.seconds for x in rounds]
            print(
                f"{r.mode:10} {r.store:7} {concurrency:>7}  {spread(p50, '.1f'):>20}  "
                f"{spread(p99, '.1f'):>22}  {spread(rate):>18}  {r.kb_per_device:>10.1f}"
            )
        all_trips = [t for x in r.rounds for t in x.round_trips_ms]
        print(
            f"    all {len(all_trips):,} round trips: median {statistics.median(all_trips):.1f} ms;"
            f" m2mhub RSS {r.rss_before_mb:.1f} -> {r.rss_after_mb:.1f} MiB"
        )


def main(argv: list[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    parser = new_parser(__doc__)
    parser.set_defaults(backends="sqlite")
    parser.add_argument("--devices", type=int, default=1000, help="connected devices")
    parser.add_argument("--commands", type=int, default=1000, help="commands per run")
    parser.add_argument(
        "--concurrency", default="1,16", help="API calls at once, e.g. 1,16 (one run set each)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs at each concurrency")
    parser.add_argument(
        "--brokers", default="mosquitto,embedded", help="mosquitto, embedded or both"
    )
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    for line in machine_summary(args.pg_url if "postgres" in backends else None):
        print(line)
    if "mosquitto" in brokers and (why := mosquitto_missing()):
        print(f"Mosquitto part skipped: {why}")
        brokers.remove("mosquitto")
    if "postgres" in backends and postgres_version(args.pg_url) is None:
        print(f"PostgreSQL part skipped: no server at {args.pg_url}")
        backends.remove("postgres")
    results = []
    with temp_dir("m2mhub-bench-commands-") as work:
        for backend in backends:
            for broker in brokers:
                mode = "Mosquitto" if broker == "mosquitto" else "embedded"
                rule(f"{mode}, {backend}, {args.devices:,} devices")
                results.append(bench_mode(mode, backend, args, work))
    summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
