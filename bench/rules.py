"""Rules engine: readings per second with 0, 1,000 and 10,000 rules, and reading-to-command latency.

Two measurements, each against a baseline or a goal taken in the same run:

1. **Throughput** (in-process). A platform with the ``rules`` role only, on a fresh
   SQLite store, with 1,000 devices and N rules, is fed ``ReadingsStored`` events on
   its bus as fast as the engine takes them (the feeder keeps the engine's queue
   below its bound, so nothing is dropped). The figure is readings evaluated per
   second, from the first event to the engine being idle again, with the engine's
   queue (its lag) and dropped events read from its bus subscription. In-process
   on purpose: through MQTT the ingest of the same process would share the core
   and set the figure (about 17,000 messages/s on two cores, docs/performance.md),
   and the bus queue's lag is only visible from inside the process.

2. **Latency** (real processes). Mosquitto and ``m2mhub serve`` (roles
   ``api,ingest,rules``) on free loopback ports, 1,000 rules, 1,000 devices
   publishing a steady background of readings (10,000 a second by default), a
   probe device whose reading crosses a threshold (above 50, clear below 40) and
   a target device, connected as a real MQTT client, subscribed to its commands
   and announced with its birth message. The probe alternates 100 and 0, so each
   probe turns the rule on or off; both actions send a command to the target.
   Latency: the probe's PUBLISH written -> the command's PUBLISH received by the
   target, same clock.

The rule mix (``--type-share``, default 1%): most rules are thresholds with
hysteresis on one key of one device (``scope: {device: ...}``), spread evenly over
the devices and their 5 keys; the others watch every device of the type
(``scope: {type: sensor}``). Readings stay between 20 and 60 and no threshold is
below 80, so the throughput runs evaluate and save state without firing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _common import (
    machine_summary,
    mosquitto_missing,
    new_parser,
    percentile,
    prepare,
    process_cpu_seconds,
    rule,
    run_async,
    run_mosquitto,
    run_server,
    scrape_metric,
    spread,
    stop_cleanly_on_sigterm,
    temp_dir,
)
from _mqtt import DeviceConnection, Fleet, connect_fleet
from m2mhub.core.timeutil import now_ms

KEYS = 5
TENANT = "bench"
#: The feeder keeps the engine's queue (10,000 events, RulesEngine._listen) below this.
HIGH_WATER = 200
#: Probes unanswered before a latency run gives up (each waits ``--probe-timeout``).
MISSED_IN_A_ROW = 10


# -- the rules ------------------------------------------------------------------------------


def rule_file(count: int, device_ids: list[str], type_share: float) -> str:
    """``count`` rules as a rules file (JSON is YAML): device and type thresholds."""
    by_type = round(count * type_share)
    rules: list[dict[str, object]] = []
    for i in range(by_type):
        rules.append(
            {
                "name": f"type-{i}",
                "scope": {"type": "sensor"},
                "condition": {
                    "threshold": {"key": f"v{i % KEYS}", "above": 90 + i % 10, "clear_below": 85}
                },
                "actions": [{"alarm": {"severity": "major"}}],
            }
        )
    for i in range(count - by_type):
        device = device_ids[i % len(device_ids)]
        key = f"v{(i // len(device_ids)) % KEYS}"
        rules.append(
            {
                "name": f"dev-{i}",
                "scope": {"device": device},
                "condition": {"threshold": {"key": key, "above": 80 + i % 10, "clear_below": 75}},
                "actions": [{"alarm": {"severity": "warning"}}],
            }
        )
    return json.dumps({"tenant": TENANT, "rules": rules})


def probe_rule(probe: str, target: str) -> dict[str, object]:
    command = {"device": target, "oneway": True}
    return {
        "name": "probe",
        "scope": {"device": probe},
        "condition": {"threshold": {"key": "v0", "above": 50, "clear_below": 40}},
        "actions": [{"command": {**command, "method": "on"}}],
        "clear_actions": [{"command": {**command, "method": "off"}}],
    }


async def apply_rules(database_url: str, text: str) -> None:
    from m2mhub.rules.service import apply_rule_file
    from m2mhub.store import open_store

    async with open_store(database_url) as store:
        await apply_rule_file(store, text, source="bench")


# -- throughput -------------------------------------------------------------------------------


@dataclass
class Throughput:
    rules: int
    evaluations: float  # (rule, device) evaluations per reading
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # process CPU per evaluation (per reading)
    max_lag: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    cores: list[float] = field(default_factory=list)


async def measure_throughput(count: int, args: argparse.Namespace, work: Path) -> Throughput:
    from m2mhub.bus import ReadingsStored
    from m2mhub.config import Settings
    from m2mhub.platform import Platform

    database_url = f"sqlite:///{work / f'rules_{count}.db'}"
    devices, _ = await prepare(database_url, args.devices, KEYS)
    ids = [d for d, _, _ in devices]
    by_type = round(count * args.type_share)
    result = Throughput(count, by_type + (count - by_type) / len(ids))
    if count:
        started = time.monotonic()
        await apply_rules(database_url, rule_file(count, ids, args.type_share))
        print(f"  {count:,} rules applied in {time.monotonic() - started:.1f} s", flush=True)
    settings = Settings(
        database_url=database_url,
        data_dir=work / "data",
        roles="rules",
        mqtt_enabled=False,
        rules_reload_s=3600,
        log_level="WARNING",
    )
    started = time.monotonic()
    async with Platform(settings) as platform:
        engine = platform.rules
        print(
            f"  engine loaded {len(engine.rules):,} rules in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        tenant = await platform.store.get_tenant(TENANT)
        assert tenant is not None
        tenant_id = tenant.id
        rng = random.Random(count)
        values = [{f"v{k}": round(rng.uniform(20, 60), 1) for k in range(KEYS)} for _ in range(997)]
        clock = now_ms()

        def events(n: int) -> list[ReadingsStored]:
            """``n`` readings, device after device, each newer than the last (ms apart)."""
            nonlocal clock
            out = []
            for i in range(n):
                device_id, pk, _ = devices[i % len(devices)]
                clock += 1
                out.append(ReadingsStored(tenant_id, pk, device_id, [(clock, values[i % 997])]))
            return out

        # Warm-up: every (rule, device) gets its saved state, as in a process that has run.
        await feed(engine, events(len(devices)), seconds=120)
        for run in range(args.repeat):
            batch = events(args.readings)
            cpu = process_cpu_seconds(os.getpid())
            start = time.perf_counter()
            sent, max_lag = await feed(engine, batch, seconds=args.seconds)
            elapsed = time.perf_counter() - start
            cores = (process_cpu_seconds(os.getpid()) - cpu) / elapsed
            dropped = engine.platform.bus.stats()["rules"].dropped
            result.rates.append(sent / elapsed)
            result.max_lag.append(max_lag)
            result.dropped.append(dropped)
            result.cores.append(cores)
            result.cpu_us.append(cores / (sent / elapsed) / max(result.evaluations, 1) * 1e6)
            print(
                f"  {count:>6,} rules, run {run + 1}: {sent:,} readings in {elapsed:.1f} s = "
                f"{sent / elapsed:,.0f} readings/s; queue at most {max_lag:,}, dropped "
                f"{dropped}, errors {engine.errors}; process {cores:.2f} cores, "
                f"{result.cpu_us[-1]:.2f} CPU us per {'evaluation' if count else 'reading'}",
                flush=True,
            )
    return result


async def feed(engine: object, batch: list[object], *, seconds: float) -> tuple[int, int]:
    """Publish ``batch`` on the bus, keeping the engine's queue below :data:`HIGH_WATER`,
    for at most ``seconds``; wait until the engine is idle. Returns (sent, largest queue)."""
    from m2mhub.rules.engine import RulesEngine

    assert isinstance(engine, RulesEngine)
    bus = engine.platform.bus

    def lag() -> int:
        return bus.stats()["rules"].lag

    deadline = time.perf_counter() + seconds
    sent = max_lag = 0
    while sent < len(batch) and time.perf_counter() < deadline:
        room = HIGH_WATER - lag()
        if room <= 0:
            await asyncio.sleep(0.002)
            continue
        for event in batch[sent : sent + min(room, 1000)]:
            bus.publish(event)  # type: ignore[arg-type]
        sent += min(room, 1000, len(batch) - sent)
        max_lag = max(max_lag, lag())
        await asyncio.sleep(0)
    await asyncio.wait_for(engine.drain(), 300)
    return sent, max_lag


# -- latency ----------------------------------------------------------------------------------


@dataclass
class Latency:
    runs_p50: list[float] = field(default_factory=list)
    runs_p99: list[float] = field(default_factory=list)
    runs_max: list[float] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    cores: list[dict[str, float]] = field(default_factory=list)


def reading(ts: int, rng: random.Random) -> bytes:
    values = ",".join(f'"v{k}":{rng.uniform(20, 60):.1f}' for k in range(KEYS))
    return f'{{"ts":{ts},"values":{{{values}}}}}'.encode()


async def background(fleet: Fleet, rate: float, stop: asyncio.Event) -> tuple[int, float]:
    """Publish ``rate`` readings a second, spread over the fleet, until ``stop``."""
    rng = random.Random(1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    devices = fleet.devices
    topics = [f"m2m/{d.device_id}/telemetry" for d in devices]
    while not stop.is_set():
        due = int((loop.time() - start) * rate)
        ts = now_ms()
        while sent < due:
            i = sent % len(devices)
            devices[i].publish(topics[i], reading(ts, rng))
            sent += 1
        await asyncio.sleep(0.005)
    return sent, loop.time() - start


async def measure_latency(
    results: dict[float, Latency],
    args: argparse.Namespace,
    port: int,
    credentials: dict[str, list[tuple[str, str]]],
    pids: dict[str, int],
) -> None:
    fleet = await connect_fleet(port, credentials["fleet"])
    probe, target = (
        await connect_fleet(port, credentials["probe"] + credentials["target"])
    ).devices
    arrived: asyncio.Queue[float] = asyncio.Queue()

    def on_command(device: DeviceConnection, topic: str, payload: bytes) -> None:
        if "/commands/" in topic:
            arrived.put_nowait(time.perf_counter())  # uvloop's loop.time() counts whole ms

    target.on_publish = on_command
    await Fleet([target]).subscribe(lambda device_id: f"m2m/{device_id}/commands/+")
    # The birth message: m2mhub sends commands over MQTT to connected devices only.
    target.publish(f"m2m/{target.device_id}/status", b"online")
    await asyncio.sleep(2)
    try:
        for rate, result in results.items():
            for run in range(args.repeat):
                stop = asyncio.Event()
                load = asyncio.create_task(background(fleet, rate, stop))
                await asyncio.sleep(args.warm_up)
                cpu_start = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
                wall = time.perf_counter()
                latencies: list[float] = []
                missed = in_a_row = 0
                for i in range(args.probes):
                    if in_a_row >= MISSED_IN_A_ROW:
                        print(f"  {in_a_row} probes in a row unanswered: the engine is behind")
                        break
                    while not arrived.empty():  # a late command of a missed probe
                        arrived.get_nowait()
                    value = 100 if i % 2 == 0 else 0
                    sent_at = time.perf_counter()
                    probe.publish(
                        f"m2m/{probe.device_id}/telemetry",
                        f'{{"ts":{now_ms()},"values":{{"v0":{value}}}}}'.encode(),
                    )
                    try:
                        received = await asyncio.wait_for(arrived.get(), args.probe_timeout)
                    except TimeoutError:
                        missed += 1
                        in_a_row += 1
                        continue
                    in_a_row = 0
                    latencies.append((received - sent_at) * 1000)
                    await asyncio.sleep(
                        max(0.0, args.probe_interval - (time.perf_counter() - sent_at))
                    )
                wall = time.perf_counter() - wall
                cores = {
                    name: (process_cpu_seconds(pid) - cpu_start[name]) / wall
                    for name, pid in pids.items()
                }
                stop.set()
                sent, seconds = await load
                result.missed.append(missed)
                result.background.append(sent / seconds)
                result.cores.append(cores)
                figures = "no probe answered"
                if latencies:
                    result.runs_p50.append(percentile(latencies, 0.5))
                    result.runs_p99.append(percentile(latencies, 0.99))
                    result.runs_max.append(max(latencies))
                    figures = (
                        f"p50 {result.runs_p50[-1]:.1f} ms, p99 {result.runs_p99[-1]:.1f} ms, "
                        f"max {result.runs_max[-1]:.1f} ms"
                    )
                print(
                    f"  background {sent / seconds:,.0f} readings/s, run {run + 1}: "
                    f"{len(latencies)} probes answered, {figures}, {missed} missed; cores "
                    + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()),
                    flush=True,
                )
                await asyncio.sleep(2)  # let the server catch up before the next run
    finally:
        await fleet.close()
        await Fleet([probe, target]).close()


def bench_latency(args: argparse.Namespace, work: Path) -> dict[float, Latency]:
    problem = mosquitto_missing()
    if problem:
        print(f"latency skipped: {problem}")
        return {}
    results = {float(r): Latency() for r in args.rates.split(",")}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(run_mosquitto(work / "mosquitto"))
        database_url = f"sqlite:///{work / 'latency.db'}"
        print(f"creating {args.devices + 2:,} devices and {args.latency_rules:,} rules ...")
        devices, _ = run_async(prepare(database_url, args.devices + 2, KEYS, broker=broker))
        *fleet, probe, target = [(d, token) for d, _, token in devices]
        rules = json.loads(
            rule_file(args.latency_rules - 1, [d for d, _ in fleet], args.type_share)
        )
        rules["rules"].append(probe_rule(probe[0], target[0]))
        run_async(apply_rules(database_url, json.dumps(rules)))
        env = {
            **broker.env(),
            "M2MHUB_MQTT_ENABLED": "true",
            "M2MHUB_MQTT_CLIENT_ID": f"m2mhub-bench-{os.getpid()}",
        }
        server = stack.enter_context(
            run_server(database_url, work, roles="api,ingest,rules", env=env)
        )
        credentials = {"fleet": fleet, "probe": [probe], "target": [target]}
        pids = {"server": server.process.pid, "mosquitto": broker.process.pid, "bench": os.getpid()}
        run_async(measure_latency(results, args, broker.port, credentials, pids))
        with contextlib.suppress(httpx.HTTPError):
            metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
            stored = scrape_metric(metrics, "m2mhub_ingest_values_total")
            print(f"  values stored by the server: {stored:,}")
    return results


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = new_parser(__doc__)
    parser.set_defaults(backends="sqlite")
    parser.add_argument("--parts", default="throughput,latency", help="throughput, latency or both")
    parser.add_argument("--rules", default="0,1000,10000", help="rule counts for throughput")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--type-share", type=float, default=0.01, help="share of type-scoped rules")
    parser.add_argument("--readings", type=int, default=200_000, help="most readings per run")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="most seconds of feeding per run"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-rules", type=int, default=1000)
    parser.add_argument(
        "--rates", default="0,1000,10000", help="background readings/s during latency runs"
    )
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--probe-timeout", type=float, default=2.0)
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds of load before probes")
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    rule("machine")
    for line in machine_summary(None):
        print(line)
    print(f"load average: {os.getloadavg()}")
    parts = {p.strip() for p in args.parts.split(",")}
    throughput: list[Throughput] = []
    latency: dict[float, Latency] = {}
    with temp_dir("m2mhub-bench-rules-") as work:
        if "throughput" in parts:
            rule("throughput: ReadingsStored events fed to the engine in-process, SQLite")
            for count in [int(c) for c in args.rules.split(",")]:
                print(f"{count:,} rules ...", flush=True)
                throughput.append(run_async(measure_throughput(count, args, work)))
        if "latency" in parts:
            rule(
                f"latency: {args.latency_rules:,} rules, background of {args.rates} readings/s, "
                "through Mosquitto"
            )
            latency = bench_latency(args, work)
    summary(throughput, latency, args)


def summary(
    throughput: list[Throughput], latency: dict[float, Latency], args: argparse.Namespace
) -> None:
    rule(f"summary (median of {args.repeat} runs, range in brackets)")
    print(f"load average: {os.getloadavg()}")
    base = throughput[0].rates if throughput and throughput[0].rules == 0 else None
    for t in throughput:
        share = ""
        if base and t.rules:
            shares = [r / b * 100 for r, b in zip(t.rates, base, strict=True)]
            share = f", {spread(shares, '.2f')}% of no rules"
        per = "evaluation" if t.rules else "reading"
        print(
            f"{t.rules:>6,} rules ({t.evaluations:.1f} evaluations per reading): "
            f"{spread(t.rates)} readings/s; {spread(t.cpu_us, '.2f')} CPU us per {per}; "
            f"queue at most {max(t.max_lag):,}, dropped {max(t.dropped)}; "
            f"cores {spread(t.cores, '.2f')}{share}"
        )
    for rate, result in latency.items():
        figures = "no probe answered"
        if result.runs_p50:
            figures = (
                f"p50 {spread(result.runs_p50, '.1f')} ms, p99 {spread(result.runs_p99, '.1f')} "
                f"ms, max {spread(result.runs_max, '.1f')} ms"
            )
        print(
            f"latency, {args.latency_rules:,} rules, background {rate:,.0f} readings/s "
            f"(sent {spread(result.background)}): {figures}; missed {result.missed} "
            f"of {args.probes} (goal: p99 under 50 ms)"
        )


if __name__ == "__main__":
    sys.exit(main())
