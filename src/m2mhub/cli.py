"""The ``m2mhub`` command line: run the platform, manage tenants, keys, types and devices.

Management commands work directly on the configured database
(``M2MHUB_DATABASE_URL`` or the SQLite file in ``M2MHUB_DATA_DIR``), so they
run on the platform's host with or without the server running.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import getpass
import json
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from m2mhub.apps.fleet import cli as fleet_cli
from m2mhub.apps.metering.cli import billing_app, metering_app
from m2mhub.audit import AuditLog
from m2mhub.bus import Bus
from m2mhub.commands.service import CommandService
from m2mhub.config import Settings, load_settings
from m2mhub.connect.mqtt.dynsec import DynamicSecurity
from m2mhub.connect.mqtt.transport import BrokerAddress
from m2mhub.core.errors import M2MHubError
from m2mhub.core.net import port_is_free
from m2mhub.core.timeutil import parse_duration
from m2mhub.core.values import Role, ValueType
from m2mhub.platform import Platform
from m2mhub.registry.service import ImportRejected, Registry, parse_labels
from m2mhub.sim.fleet import Fleet
from m2mhub.store import Store, open_store
from m2mhub.store.models import Command, DeviceType, KeySpec, MethodSpec, ParamSpec
from m2mhub.store.postgres import redact

if TYPE_CHECKING:
    from m2mhub.sim.loadgen import LoadRun, SimDevice, Tally

T = TypeVar("T")

app = typer.Typer(help="m2mhub: a machine-to-machine platform.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants: isolated fleets with their own users and keys.")
key_app = typer.Typer(help="API keys for people and systems.")
user_app = typer.Typer(help="People who sign in, with their role.")
type_app = typer.Typer(help="Device types: keys, units, report interval.")
device_app = typer.Typer(help="Devices and their tokens.")
db_app = typer.Typer(help="The database: migrations and jobs.")
command_app = typer.Typer(help="Commands to devices: send one by hand, see what became of it.")
rules_app = typer.Typer(help="Rules: conditions on device data and the actions they take.")
alarms_app = typer.Typer(help="Alarms raised by rules.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(key_app, name="apikey")
app.add_typer(user_app, name="user")
app.add_typer(type_app, name="type")
app.add_typer(device_app, name="device")
app.add_typer(db_app, name="db")
app.add_typer(command_app, name="command")
app.add_typer(rules_app, name="rules")
app.add_typer(alarms_app, name="alarms")
app.add_typer(fleet_cli.app, name="fleet")
app.add_typer(metering_app, name="metering")
app.add_typer(billing_app, name="billing")

# soft_wrap: keys, tokens and commands must stay on one line to be copied from a pipe or log.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

TenantOpt = Annotated[
    str, typer.Option("--tenant", "-t", envvar="M2MHUB_TENANT", help="Tenant slug.")
]


def main() -> None:
    """Entry point of the ``m2mhub`` script."""
    app()


def _settings(**overrides: Any) -> Settings:
    """The settings, or a plain message naming the one that is wrong."""
    try:
        return load_settings(**overrides)
    except M2MHubError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def _run(work: Callable[[Store, Registry], Awaitable[T]]) -> T:
    """Open the configured store, run ``work``, and report m2mhub errors plainly."""
    settings = _settings()

    async def go() -> T:
        async with open_store(settings.resolved_database_url()) as store:
            registry = Registry(store, offline_factor=settings.offline_factor)
            if not (settings.mqtt_url and settings.mqtt_dynsec):
                return await work(store, registry)
            # Devices made here need their accounts at the external broker too.
            async with DynamicSecurity(BrokerAddress.from_settings(settings)) as accounts:
                registry.accounts = accounts
                return await work(store, registry)

    try:
        return asyncio.run(go())
    except ImportRejected as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        for e in exc.errors:
            err.print(f"  row {e.row}, {e.field}: {e.message}")
        raise typer.Exit(2) from None
    except M2MHubError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


# -- running -------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    roles: Annotated[
        str | None, typer.Option(help="Comma-separated: api, ingest, scheduler, or all.")
    ] = None,
) -> None:
    """Run the platform (REST API, ingest and background jobs) until stopped."""
    from m2mhub.api.app import create_app

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port, "roles": roles}.items() if v
    }
    settings = _settings(**overrides)
    _logging(settings)
    _check_ports(settings, http=True)
    first_key = _run(_bootstrap)
    if first_key:
        out.print("empty database: created tenant [bold]default[/bold]")
        out.print(f"admin API key (shown once): [bold]{first_key}[/bold]")
    out.print(f"m2mhub on http://{settings.host}:{settings.port}  (store: {_safe_url(settings)})")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def demo(
    port: Annotated[
        int | None, typer.Option(help="Port of the demo server (default: the port setting, 8080).")
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            help="Device time runs this many times faster: the last day is replayed, "
            "then the fleet keeps pace with the clock."
        ),
    ] = 1.0,
    backfill: Annotated[
        str, typer.Option(help="History written at start, e.g. 1d, 30d; 0 for none.")
    ] = "1d",
    fleet: Annotated[
        Path | None,
        typer.Option(help="A fleet file (python -m m2mhub.sim prints the shipped one)."),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds of device time between reports, for every device."),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the simulated fleet.")] = 1,
) -> None:
    """Run m2mhub on the embedded defaults with a simulated fleet on MQTT, and its rules."""
    from m2mhub.sim.fleet import load_fleet

    settings = _settings(**({"port": port} if port else {}))
    _logging(settings)
    if speed < 1:
        err.print("[red]error:[/red] speed: must be 1 or more (1 = real time)")
        raise typer.Exit(2)
    if interval is not None and interval <= 0:
        err.print("[red]error:[/red] interval: must be more than 0 seconds")
        raise typer.Exit(2)
    try:
        backfill_ms = 0 if backfill.strip() in ("0", "") else parse_duration(backfill)
        simulated = load_fleet(fleet)
    except M2MHubError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    embedded = settings.mqtt_enabled and not settings.mqtt_url
    if not settings.mqtt_enabled:
        err.print("[red]error:[/red] mqtt_enabled: the demo's devices need MQTT")
        raise typer.Exit(2)
    if embedded and not port_is_free(settings.mqtt_host, settings.mqtt_port):
        # A demo should run anywhere: another broker on 1883 is common. (serve refuses
        # instead, and names the setting, since devices are configured with the port.)
        with socket.socket() as probe:
            probe.bind((settings.mqtt_host, 0))
            free = int(probe.getsockname()[1])
        out.print(
            f"port {settings.mqtt_port} is taken (another MQTT broker?): the demo's broker "
            f"uses {free} (set M2MHUB_MQTT_PORT to choose)"
        )
        settings = settings.model_copy(update={"mqtt_port": free})
    _check_ports(settings, http=True)
    run = DemoRun(simulated, speed=speed, backfill_ms=backfill_ms, interval=interval, seed=seed)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_demo(settings, run, duration))
    except M2MHubError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    out.print("demo stopped; run it again to resume with the same data")


@dataclass(frozen=True)
class DemoRun:
    """How the demo's fleet runs: the fleet and the options of ``m2mhub demo``."""

    fleet: Fleet
    speed: float
    backfill_ms: int
    interval: float | None
    seed: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _teltonika_address(settings: Settings) -> tuple[str, int] | None:
    """Where the platform's Teltonika server listens, if it runs one."""
    port = settings.tracker_ports().get("teltonika")
    if port is None:
        return None
    host = settings.tracker_host if settings.tracker_host != "0.0.0.0" else "127.0.0.1"
    return host, port


#: How much device time ``--speed`` replays before the fleet keeps pace with the clock.
SPEED_LEAD_MS = 86_400_000


async def _demo(settings: Settings, run: DemoRun, duration: float | None) -> None:
    from m2mhub import demo as demo_setup
    from m2mhub.api.app import create_app
    from m2mhub.sim.fleet import build_models
    from m2mhub.sim.runner import FleetRunner, LiveClock

    if any(d.transport == "teltonika" for d in run.fleet.devices) and not settings.trackers:
        # The fleet's Teltonika trackers need the platform's Teltonika port: a free one.
        settings = settings.model_copy(update={"trackers": f"teltonika:{_free_port()}"})
    platform = Platform(settings)
    api = create_app(settings, platform=platform)
    server = uvicorn.Server(
        uvicorn.Config(
            api, host=settings.host, port=settings.port, log_level="warning", access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise M2MHubError(f"the server could not start on port {settings.port}")
        await asyncio.sleep(0.05)
    # Another system the rules call: a webhook receiver beside m2mhub, on a free port.
    receiver_socket = socket.socket()
    receiver_socket.bind(("127.0.0.1", 0))
    webhook_url = f"http://127.0.0.1:{receiver_socket.getsockname()[1]}/webhook"
    receiver = uvicorn.Server(
        uvicorn.Config(
            demo_setup.webhook_receiver(out.print), log_level="warning", access_log=False
        )
    )
    receiving = asyncio.create_task(receiver.serve(sockets=[receiver_socket]))
    with out.status("preparing the demo tenant, its fleet and rules ..."):
        credentials = await demo_setup.prepare(
            platform, settings.data_dir, run.fleet, webhook_url=webhook_url
        )
    clock = LiveClock(run.speed, lead_ms=SPEED_LEAD_MS)
    if platform.broker is not None:
        broker_host, broker_port = settings.mqtt_host, settings.mqtt_port
    else:
        address = BrokerAddress.from_settings(settings)
        broker_host, broker_port = address.host, address.port
    url = f"http://{settings.host}:{settings.port}"
    fleet = FleetRunner(
        run.fleet,
        build_models(run.fleet, run.seed, origin_ms=clock.start_ms),
        credentials.tokens,
        host=broker_host,
        port=broker_port,
        clock=clock,
        backfill_ms=run.backfill_ms,
        interval_s=run.interval,
        http_url=url,
        teltonika=_teltonika_address(settings),
    )
    shown = demo_setup.SHOWN_DEVICE
    token = credentials.tokens[shown]
    out.print(
        f"\n[bold green]m2mhub demo[/bold green] running at [bold]{url}[/bold]"
        f"  (API docs: {url}/docs)"
    )
    out.print(f"store: {_safe_url(settings)}")
    out.print(
        f"MQTT broker: mqtt://{broker_host}:{broker_port} "
        "(username = device id, password = its token)"
    )
    if credentials.console_password:
        out.print(
            f"console: [bold]{url}/console/[/bold]  user [bold]{demo_setup.CONSOLE_USER}[/bold] "
            f"password [bold]{credentials.console_password}[/bold]"
        )
    out.print(f"admin API key: [bold]{credentials.admin_key}[/bold]")
    out.print(f"device [bold]{shown}[/bold] token: [bold]{token}[/bold]")
    pace = "real time" if run.speed == 1 else f"{run.speed:g}x until it catches up with the clock"
    over = {t: sum(1 for d in run.fleet.devices if d.transport == t) for t in ("http", "teltonika")}
    teltonika = _teltonika_address(settings)
    if teltonika is not None:
        out.print(f"Teltonika trackers: tcp://{teltonika[0]}:{teltonika[1]} (IMEI = device id)")
    out.print(
        f"{len(run.fleet.devices) - sum(over.values())} simulated devices report over MQTT, "
        f"{over['http']} over HTTP and {over['teltonika']} as Teltonika trackers ({pace}); "
        "the demo's rules raise alarms and run the water tower's pump. Try:"
    )
    out.print(f"  curl -H 'Authorization: Bearer {credentials.admin_key}' {url}/api/v1/latest")
    out.print(
        f"  curl -H 'Authorization: Bearer {credentials.admin_key}' "
        f"'{url}/api/v1/alarms?status=active'"
    )
    out.print(
        f"  curl -H 'Authorization: Bearer {token}' -d '{{\"power_kw\": 2.5}}' "
        f"{url}/api/v1/devices/{shown}/telemetry"
    )
    out.print(
        f"  mosquitto_pub -h {broker_host} -p {broker_port} -q 1 "
        f"-u {shown} -P {token} -t m2m/{shown}/telemetry "
        "-m '{\"power_kw\": 1.5}'"
    )
    out.print("Ctrl-C stops.\n")
    running = asyncio.create_task(fleet.run())
    try:
        await asyncio.wait(
            [running, serving], timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
        if running.done():
            running.result()  # the fleet failed: say why
    finally:
        running.cancel()
        # A device cut off while it connected or said goodbye is not the demo's failure.
        [stopped] = await asyncio.gather(running, return_exceptions=True)
        if isinstance(stopped, Exception):
            logging.getLogger(__name__).warning("the simulated fleet stopped: %r", stopped)
        server.should_exit = True
        await serving
        receiver.should_exit = True
        await receiving
        receiver_socket.close()
        out.print(f"fleet sent {fleet.reports} reports, {fleet.failed} failed")


@app.command()
def simulate(
    devices: Annotated[
        int | None,
        typer.Option(help="Simulated devices (default: every device of --tokens, else 100)."),
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Messages per second for the whole fleet; 0: as fast as acked.")
    ] = 0.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default 10 without --count)."),
    ] = None,
    transport: Annotated[str, typer.Option(help="mqtt or http.")] = "mqtt",
    broker: Annotated[str, typer.Option(help="MQTT broker, mqtt://host:port.")] = (
        "mqtt://127.0.0.1:1883"
    ),
    api: Annotated[
        str, typer.Option(help="m2mhub's URL, for --transport http and --provision.")
    ] = "http://127.0.0.1:8080",
    tokens: Annotated[
        Path | None,
        typer.Option(help="id,name,token CSV of the devices; with --provision, written there."),
    ] = None,
    provision: Annotated[
        bool, typer.Option("--provision", help="Create the devices through the API first.")
    ] = False,
    key: Annotated[
        str | None,
        typer.Option(envvar="M2MHUB_API_KEY", help="Admin API key for --provision (m2k_...)."),
    ] = None,
    type_name: Annotated[
        str | None, typer.Option("--type", help="Device type to provision (default: sim-MODEL).")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Ids of generated devices: PREFIX-00001...")] = "sim",
    model: Annotated[
        str, typer.Option(help="Values: random, or a simulation model (electricity_meter, ...).")
    ] = "random",
    keys: Annotated[int, typer.Option(help="With --model random: keys per reading, 1-5.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the values.")] = 1,
    qos: Annotated[int, typer.Option(help="MQTT QoS, 0 or 1.")] = 1,
    window: Annotated[
        int, typer.Option(help="Unconfirmed messages per MQTT connection at most.")
    ] = 100,
    topic: Annotated[str, typer.Option(help="MQTT topic; {device} is the device id.")] = (
        "m2m/{device}/telemetry"
    ),
    username: Annotated[
        str | None, typer.Option(help="One MQTT login for every device, instead of their tokens.")
    ] = None,
    password: Annotated[str | None, typer.Option(help="Password of --username.")] = None,
    sdk: Annotated[
        bool, typer.Option("--sdk", help="Run each device through the device SDK (slower).")
    ] = False,
    buffer_dir: Annotated[
        Path | None, typer.Option(help="With --sdk: keep each device's buffer in a file here.")
    ] = None,
    connections: Annotated[int, typer.Option(help="HTTP requests in flight at once.")] = 16,
    batch: Annotated[int, typer.Option(help="HTTP readings per request.")] = 1,
    workers: Annotated[int, typer.Option(help="Processes sharing the devices.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Load m2mhub (or any MQTT broker) with simulated devices, then print what became of it.

    Devices log in with their own tokens (--tokens FILE, or --provision to create
    them) or with one --username. The run stops by itself after --count messages
    or --duration seconds (Ctrl-C stops it early), and prints
    "sent N, acknowledged N, failed N, X msg/s". Exit code 1 when any failed.
    """
    from m2mhub.sim import loadvalues
    from m2mhub.sim.loadgen import LoadRun, LoadSpec, SimDevice
    from m2mhub.sim.provision import device_ids, read_tokens

    def fail(message: str) -> NoReturn:
        err.print(f"[red]error:[/red] {escape(message)}")
        raise typer.Exit(2)

    if devices is not None and devices < 1:
        fail("devices: must be at least 1")
    if transport not in ("mqtt", "http"):
        fail(f"transport: {transport!r} is not mqtt or http")
    parts = urlsplit(broker)
    if parts.scheme != "mqtt" or not parts.hostname:
        fail(f"broker: {broker!r} is not mqtt://host:port (TLS is not supported here)")
    if urlsplit(api).scheme not in ("http", "https"):
        fail(f"api: {api!r} is not an http:// or https:// URL")
    try:
        loadvalues.check_values(model, keys)
        if provision and tokens is not None and tokens.exists():
            fail(f"tokens: {tokens} exists; --provision writes a new file, choose another")
        if provision:
            if not key:
                fail("key: --provision needs an admin API key (--key m2k_... or M2MHUB_API_KEY)")
            ids = device_ids(prefix, devices or 100)
            found = _provision(
                api,
                key,
                ids,
                type_name or f"sim-{model}".replace("_", "-"),
                model,
                keys,
                tokens or Path("device-tokens.csv"),
            )
        elif tokens is not None:
            found = read_tokens(tokens)
            if devices is not None:
                if devices > len(found):
                    fail(f"devices: {tokens} lists {len(found)} devices, fewer than {devices}")
                found = found[:devices]
        else:
            found = [SimDevice(i) for i in device_ids(prefix, devices or 100)]
        spec = LoadSpec(
            devices=tuple(found),
            transport="http" if transport == "http" else "mqtt",
            rate=rate,
            count=count,
            duration_s=duration if duration is not None or count is not None else 10.0,
            model=model,
            keys=keys,
            seed=seed,
            host=parts.hostname,
            port=parts.port or 1883,
            qos=qos,
            window=window,
            username=username,
            password=password,
            topic=topic,
            sdk=sdk,
            buffer_dir=buffer_dir,
            api_url=api,
            connections=connections,
            batch=batch,
            workers=workers,
        )
    except M2MHubError as exc:
        fail(exc.message)
    if buffer_dir is not None:
        buffer_dir.mkdir(parents=True, exist_ok=True)
    run = LoadRun(spec)
    tally = asyncio.run(_simulate(run, quiet=as_json))
    if as_json:
        out.print_json(data={"devices": len(found), "transport": transport, **tally.to_json()})
    else:
        for reason, n in sorted(tally.errors.items(), key=lambda item: -item[1])[:5]:
            out.print(f"{n} x {escape(reason)}")
        out.print(tally.summary())
    if tally.failed:
        raise typer.Exit(1)


def _provision(
    api: str, key: str, ids: list[str], type_name: str, model: str, keys: int, tokens: Path
) -> list[SimDevice]:
    """Create the devices through the API, their tokens written to ``tokens`` as they come."""
    from m2mhub.sim import loadvalues
    from m2mhub.sim.provision import provision

    try:
        fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        err.print(f"[red]error:[/red] tokens: cannot create {tokens} ({exc.strerror})")
        raise typer.Exit(2) from None
    with os.fdopen(fd, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "name", "token"])

        def created(rows: list[tuple[str, str, str]]) -> None:
            writer.writerows(rows)
            handle.flush()

        with err.status(f"creating {len(ids)} devices of type {type_name} ..."):
            found = asyncio.run(
                provision(
                    api,
                    key,
                    ids=ids,
                    type_name=type_name,
                    keys=loadvalues.key_specs(model, keys),
                    created=created,
                )
            )
    err.print(f"created {len(found)} devices; their tokens are in {tokens}")
    return found


async def _simulate(run: LoadRun, *, quiet: bool) -> Tally:
    """Run the load with a live display on a terminal; Ctrl-C stops it cleanly."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        loop.add_signal_handler(signal.SIGINT, run.stop)
        loop.add_signal_handler(signal.SIGTERM, run.stop)
    spec = run.spec
    if quiet or not err.is_terminal:
        return await run.run()
    total = spec.count if spec.count is not None else spec.duration_s
    columns = (
        TextColumn("[bold]simulate[/bold]"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
    )
    with Progress(*columns, console=err, transient=True) as shown:
        task = shown.add_task("load", total=total, line="connecting ...")
        last = [0.0, 0]

        def progress(t: Tally) -> None:
            dt = t.seconds - last[0]
            speed = (t.sent - last[1]) / dt if dt > 0 else 0.0
            last[0], last[1] = t.seconds, t.sent
            done = t.acknowledged + t.failed if spec.count is not None else t.seconds
            shown.update(
                task,
                completed=done,
                line=f"sent {t.sent:,} ({speed:,.0f}/s)  acked {t.acknowledged:,}  "
                f"failed {t.failed:,}",
            )

        return await run.run(progress)


def _check_ports(settings: Settings, *, http: bool) -> None:
    """Say which setting to change when a port this process needs is taken."""
    taken = []
    if http and not port_is_free(settings.host, settings.port):
        taken.append(f"port: {settings.host}:{settings.port} is in use; choose another with --port")
    embedded = settings.mqtt_enabled and not settings.mqtt_url and "ingest" in settings.role_set()
    if embedded and not port_is_free(settings.mqtt_host, settings.mqtt_port):
        taken.append(
            f"mqtt_port: {settings.mqtt_host}:{settings.mqtt_port} is in use (another MQTT "
            "broker?); set M2MHUB_MQTT_PORT to a free port, or M2MHUB_MQTT_URL to use that broker"
        )
    for problem in taken:
        err.print(f"[red]error:[/red] {problem}")
    if taken:
        raise typer.Exit(2)


async def _audit(store: Store, tenant_id: int, action: str, target: str, **details: Any) -> None:
    """Record a management command in the audit log, as done by the OS user running it."""
    await AuditLog(store).record(
        tenant_id=tenant_id,
        actor=f"cli:{getpass.getuser()}",
        action=action,
        target=target,
        details=details,
    )


async def _bootstrap(store: Store, registry: Registry) -> str | None:
    """On an empty database, create the ``default`` tenant and return its first admin key."""
    if await store.list_tenants():
        return None
    tenant = await registry.create_tenant("default", "Default")
    _, key = await registry.create_api_key(tenant.id, "admin", Role.ADMIN)
    return key


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Libraries that log every request or state change would drown what matters.
    for chatty in ("httpx", "amqtt", "transitions", "gmqtt", "m2mhub.device"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _safe_url(settings: Settings) -> str:
    return redact(settings.resolved_database_url())


# -- database ------------------------------------------------------------------------------


@db_app.command("migrate")
def db_migrate() -> None:
    """Bring the database schema up to date (the server also does this at start)."""

    async def work(store: Store, registry: Registry) -> int:
        return await store.schema_version()

    out.print(f"schema version {_run(work)}")


@db_app.command("rollups")
def db_rollups() -> None:
    """Compute pending rollups now."""

    async def work(store: Store, registry: Registry) -> int:
        total = 0
        while done := await store.refresh_rollups(limit=500):
            total += done
        return total

    out.print(f"recomputed {_run(work)} device-hours")


# -- tenants and keys ----------------------------------------------------------------------


@tenant_app.command("create")
def tenant_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    admin_key: Annotated[bool, typer.Option(help="Also create an admin API key.")] = True,
) -> None:
    """Create a tenant (and, by default, its first admin API key)."""

    async def work(store: Store, registry: Registry) -> str | None:
        tenant = await registry.create_tenant(slug, name)
        if admin_key:
            _, key = await registry.create_api_key(tenant.id, "admin", Role.ADMIN)
            return key
        return None

    key = _run(work)
    out.print(f"tenant [bold]{slug}[/bold] created")
    if key:
        out.print(f"admin API key (shown once): [bold]{key}[/bold]")


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""

    async def work(store: Store, registry: Registry) -> list[Any]:
        return await store.list_tenants()

    table = Table("slug", "name", "retention (days)")
    for t in _run(work):
        table.add_row(t.slug, t.name, str(t.retention_days or "all"))
    out.print(table)


@key_app.command("create")
def key_create(
    tenant: TenantOpt = "default",
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    role: Annotated[Role, typer.Option(help="viewer, operator or admin.")] = Role.VIEWER,
) -> None:
    """Create an API key; it is printed once."""

    async def work(store: Store, registry: Registry) -> str:
        t = await registry.tenant(tenant)
        record, key = await registry.create_api_key(t.id, name, role)
        await _audit(store, t.id, "apikey.create", f"apikey:{record.id}", role=role.value)
        return key

    out.print(_run(work))


@user_app.command("create")
def user_create(
    email: str,
    tenant: TenantOpt = "default",
    role: Annotated[Role, typer.Option(help="viewer, operator or admin.")] = Role.VIEWER,
    password: Annotated[
        str | None,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters."
        ),
    ] = None,
) -> None:
    """Add a person to a tenant; the password is asked for unless given."""

    async def work(store: Store, registry: Registry) -> None:
        await registry.create_user((await registry.tenant(tenant)).id, email, role, password)

    _run(work)
    out.print(f"user [bold]{email}[/bold] ({role.value}) created")


# -- device types --------------------------------------------------------------------------


def _parse_key_spec(text: str) -> KeySpec:
    """``name[:type[:unit]]``, e.g. ``temperature:number:°C``."""
    parts = text.split(":", 2)
    try:
        value_type = ValueType(parts[1]) if len(parts) > 1 and parts[1] else ValueType.NUMBER
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: type must be number, bool or string", param_hint="--key"
        ) from None
    return KeySpec(parts[0], value_type, parts[2] if len(parts) > 2 else None)


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` and exit with code 2 (bad input)."""
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)


MethodsFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="YAML or JSON file of the command methods its devices handle "
        "(docs/commands.md#declaring-methods).",
    ),
]


def _read_methods(path: Path) -> tuple[MethodSpec, ...]:
    """The methods of a YAML (or JSON) file: a list, or ``methods:`` holding one."""
    import yaml

    from m2mhub.registry.methods import parse_methods

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"methods file: cannot read {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        _fail(f"methods file: {path}{where} is not valid YAML or JSON")
    if isinstance(raw, dict) and set(raw) == {"methods"}:
        raw = raw["methods"]
    try:
        return parse_methods(raw)
    except M2MHubError as exc:
        _fail(f"{path}: {exc.message}")


@type_app.command("create")
def type_create(
    name: str,
    tenant: TenantOpt = "default",
    key: Annotated[list[str] | None, typer.Option(help="name[:type[:unit]], repeatable.")] = None,
    interval: Annotated[int, typer.Option(help="Expected seconds between reports.")] = 60,
    strict: Annotated[bool, typer.Option(help="Refuse undeclared keys.")] = False,
    retention_days: Annotated[int | None, typer.Option(help="Days of raw data kept.")] = None,
    methods_file: MethodsFileOpt = None,
) -> None:
    """Declare a device type."""
    specs = [_parse_key_spec(k) for k in key or []]
    methods = _read_methods(methods_file) if methods_file else ()

    async def work(store: Store, registry: Registry) -> None:
        t = await registry.tenant(tenant)
        await registry.create_device_type(
            t.id,
            name,
            specs,
            strict=strict,
            report_interval_s=interval,
            retention_days=retention_days,
            methods=methods,
        )

    _run(work)
    out.print(f"device type [bold]{name}[/bold] created")


@type_app.command("update")
def type_update(
    name: str,
    methods_file: MethodsFileOpt = None,
    clear_methods: Annotated[
        bool, typer.Option(help="Declare no method: commands are sent as given.")
    ] = False,
    tenant: TenantOpt = "default",
) -> None:
    """Change the command methods a device type declares."""
    if (methods_file is None) == (not clear_methods):
        _fail("methods: give either --methods-file or --clear-methods")
    methods = _read_methods(methods_file) if methods_file else ()

    async def work(store: Store, registry: Registry) -> None:
        t = await registry.tenant(tenant)
        await registry.update_device_type(t.id, name, methods=methods)

    _run(work)
    out.print(f"device type [bold]{name}[/bold] now declares {len(methods)} method(s)")


@type_app.command("list")
def type_list(tenant: TenantOpt = "default") -> None:
    """List device types."""

    async def work(store: Store, registry: Registry) -> list[Any]:
        return await store.list_device_types((await registry.tenant(tenant)).id)

    table = Table("name", "keys", "interval (s)", "strict", "retention (days)")
    types = _run(work)
    for t in types:
        keys = escape(", ".join(f"{k.key}{f' [{k.unit}]' if k.unit else ''}" for k in t.keys))
        table.add_row(
            t.name,
            keys,
            str(t.report_interval_s),
            "yes" if t.strict else "no",
            str(t.retention_days or "-"),
        )
    out.print(table)
    # Below the table, which has no room left on a narrow terminal.
    declaring = [t for t in types if t.methods]
    if declaring:
        out.print("command methods (`m2mhub type show NAME` for their parameters):")
    for t in declaring:
        out.print(escape(f"  {t.name}: {', '.join(m.name for m in t.methods)}"))
    if len(declaring) < len(types):
        out.print("the other types declare no methods: any command is sent as given")


@type_app.command("show")
def type_show(name: str, tenant: TenantOpt = "default") -> None:
    """A device type: its keys and the command methods its devices handle."""

    async def work(store: Store, registry: Registry) -> DeviceType:
        return await store.get_device_type((await registry.tenant(tenant)).id, name=name)

    t = _run(work)
    out.print(f"[bold]{escape(t.name)}[/bold]: reports every {t.report_interval_s} s")
    for k in t.keys:
        unit = f" [{k.unit}]" if k.unit else ""
        about = f" - {k.description}" if k.description else ""
        out.print(escape(f"  key {k.key}: {k.type.value}{unit}{about}"))
    if not t.methods:
        out.print("  methods: none declared; any command is sent as given")
    for m in t.methods:
        kind = "two-way" if m.two_way else "one-way"
        timeout = f", answer within {m.timeout_s} s" if m.timeout_s and m.two_way else ""
        about = f" - {m.description}" if m.description else ""
        out.print(escape(f"  method {m.name} ({kind}{timeout}){about}"))
        for p in m.params:
            out.print(escape(f"    {p.name}: {_describe_param(p)}"))


def _describe_param(p: ParamSpec) -> str:
    """``integer 0..100 rpm, required - speed`` for ``type show``."""
    text = p.type.value
    if p.choices:
        text += " " + "|".join(p.choices)
    if p.min is not None or p.max is not None:
        low = "" if p.min is None else f"{p.min:g}"
        high = "" if p.max is None else f"{p.max:g}"
        text += f" {low}..{high}"
    if p.unit:
        text += f" {p.unit}"
    if p.required:
        text += ", required"
    if p.default is not None:
        text += f", default {json.dumps(p.default)}"
    return text + (f" - {p.description}" if p.description else "")


# -- devices ---------------------------------------------------------------------------------


@device_app.command("create")
def device_create(
    type: Annotated[str, typer.Option("--type", help="Device type name.")],
    name: Annotated[str, typer.Option(help="Device name, unique in the tenant.")],
    tenant: TenantOpt = "default",
    id: Annotated[
        str | None, typer.Option("--id", help="Device id; generated when absent.")
    ] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")] = None,
) -> None:
    """Create a device and print its token (shown once)."""

    async def work(store: Store, registry: Registry) -> tuple[str, str]:
        labels = parse_labels(";".join(label or []))
        t = await registry.tenant(tenant)
        device, token = await registry.create_device(
            t.id, type_name=type, name=name, device_id=id, labels=labels
        )
        await _audit(store, t.id, "device.create", f"device:{device.id}", name=name, type=type)
        return device.id, token

    device_id, token = _run(work)
    out.print(f"device id: [bold]{device_id}[/bold]")
    out.print(f"token (shown once): [bold]{token}[/bold]")


@device_app.command("list")
def device_list(
    tenant: TenantOpt = "default",
    type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
) -> None:
    """List devices with their status."""

    async def work(store: Store, registry: Registry) -> list[tuple[str, str, str, str]]:
        t = await registry.tenant(tenant)
        types = {dt.id: dt for dt in await store.list_device_types(t.id)}
        type_id = (await store.get_device_type(t.id, name=type)).id if type else None
        rows = []
        for d in await store.list_devices(t.id, type_id=type_id, limit=limit):
            rows.append(
                (d.id, d.name, types[d.type_id].name, registry.status(d, types[d.type_id]).value)
            )
        return rows

    table = Table("id", "name", "type", "status")
    for row in _run(work):
        table.add_row(*row)
    out.print(table)


@device_app.command("rotate-token")
def device_rotate(device_id: str, tenant: TenantOpt = "default") -> None:
    """Issue a new token for a device; the old one stops working.

    A running server may accept the old token for up to 10 more seconds, the time it
    trusts a credential it has just checked.
    """

    async def work(store: Store, registry: Registry) -> str:
        t = await registry.tenant(tenant)
        token = await registry.rotate_token(t.id, device_id)
        await _audit(store, t.id, "device.rotate_token", f"device:{device_id}")
        return token

    out.print(f"new token (shown once): [bold]{_run(work)}[/bold]")


@device_app.command("import")
def device_import(
    file: Annotated[Path, typer.Argument(help="CSV with columns name,type[,id,labels].")],
    tenant: TenantOpt = "default",
    tokens: Annotated[
        Path, typer.Option(help="Where to write id,name,token of the new devices.")
    ] = Path("device-tokens.csv"),
) -> None:
    """Create many devices from a CSV file: all rows or, on any error, none."""
    if not file.is_file():
        err.print(f"[red]error:[/red] file: {file} does not exist")
        raise typer.Exit(2)
    text = file.read_text(encoding="utf-8-sig")

    async def work(store: Store, registry: Registry) -> list[tuple[str, str, str]]:
        t = await registry.tenant(tenant)
        created = await registry.import_devices_csv(t.id, text)
        await _audit(store, t.id, "device.import", "devices", ids=[d.id for d, _ in created])
        return [(d.id, d.name, token) for d, token in created]

    # Tokens exist only in this file once the devices are created: make sure it can be
    # written (and is private) before creating anything, and never overwrite an old one.
    try:
        fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        err.print(
            f"[red]error:[/red] tokens: cannot create {tokens} ({exc.strerror}); "
            "choose a new file with --tokens"
        )
        raise typer.Exit(2) from None
    with os.fdopen(fd, "w", newline="") as handle:
        try:
            with out.status(f"importing {file} ..."):
                rows = _run(work)
        except BaseException:
            tokens.unlink()
            raise
        writer = csv.writer(handle, lineterminator="\n")  # shells read lines without \r
        writer.writerow(["id", "name", "token"])
        writer.writerows(rows)
    out.print(f"imported {len(rows)} devices; their tokens are in {tokens}")


# -- commands --------------------------------------------------------------------------------


@command_app.command("send")
def command_send(
    method: Annotated[str, typer.Argument(help="The method the device implements, e.g. reboot.")],
    device: Annotated[str | None, typer.Option(help="Device id.")] = None,
    group: Annotated[str | None, typer.Option(help="Every device of this group.")] = None,
    params: Annotated[str, typer.Option(help="Parameters as a JSON object.")] = "{}",
    oneway: Annotated[bool, typer.Option(help="No result expected: done once delivered.")] = False,
    ttl: Annotated[int, typer.Option(help="Seconds it may wait for an offline device.")] = 3600,
    timeout: Annotated[
        int | None,
        typer.Option(
            help="Seconds to wait for a result once sent; default: the method's, else 30."
        ),
    ] = None,
    wait: Annotated[float, typer.Option(help="Wait this many seconds for the outcome.")] = 0,
    tenant: TenantOpt = "default",
) -> None:
    """Queue a command for a device or a group; a running server delivers it.

    The command goes out from the server (MQTT at once, HTTP devices on their
    next poll). With --wait, the outcome is printed when it is known; the exit
    code is 1 when a command failed or expired, or is still open after --wait.
    """
    if (device is None) == (group is None):
        err.print("[red]error:[/red] device: give either --device or --group")
        raise typer.Exit(2)
    try:
        decoded = json.loads(params)
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] params: not valid JSON ({exc.msg})")
        raise typer.Exit(2) from None
    if not isinstance(decoded, dict):
        err.print("[red]error:[/red] params: must be a JSON object, e.g. '{\"delay_s\": 5}'")
        raise typer.Exit(2)

    async def work(store: Store, registry: Registry) -> list[tuple[Command, str]]:
        t = await registry.tenant(tenant)
        if device is not None:
            targets = [await store.get_device(device, tenant_id=t.id)]
        else:
            found = await store.get_group(t.id, group or "")
            pks = await store.device_pks(t.id, group_id=found.id)
            targets = list((await store.devices_by_pk(pks)).values())
        service = CommandService(store, Bus())
        commands = await service.send(
            targets,
            method,
            decoded,
            oneway=oneway,
            ttl_ms=ttl * 1000,
            timeout_ms=timeout * 1000 if timeout is not None else None,
            created_by=f"cli:{getpass.getuser()}",
        )
        target = f"device:{device}" if device is not None else f"group:{group}"
        await _audit(
            store,
            t.id,
            "command.send",
            target,
            method=method,
            params=decoded,
            commands=[c.id for c in commands],
        )
        if wait > 0:
            commands = await service.wait(commands, wait)
        ids = {d.pk: d.id for d in targets}
        return [(c, ids[c.device_pk]) for c in commands]

    sent = _run(work)
    _print_commands(sent)
    if wait > 0 and any(c.status not in ("delivered", "succeeded") for c, _ in sent):
        raise typer.Exit(1)


@command_app.command("list")
def command_list(
    device: Annotated[str, typer.Argument(help="Device id.")],
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    tenant: TenantOpt = "default",
) -> None:
    """A device's commands, newest first, with their status and result."""

    async def work(store: Store, registry: Registry) -> list[tuple[Command, str]]:
        t = await registry.tenant(tenant)
        found = await store.get_device(device, tenant_id=t.id)
        return [(c, found.id) for c in await store.list_commands(found.pk, limit=limit)]

    _print_commands(_run(work))


def _print_commands(commands: list[tuple[Command, str]]) -> None:
    table = Table("id", "device", "method", "status", "result")
    for command, device_id in commands:
        if command.error:
            outcome = f"error: {command.error}"
        elif command.result is not None:
            outcome = json.dumps(command.result)
        else:
            outcome = ""
        table.add_row(command.id, device_id, command.method, command.status, escape(outcome))
    out.print(table)


# -- rules and alarms ------------------------------------------------------------------------


@rules_app.command("apply")
def rules_apply(
    file: Annotated[Path, typer.Argument(help="A YAML rules file (see docs/rules.md).")],
    prune: Annotated[
        bool, typer.Option(help="Also delete the tenant's rules that the file does not name.")
    ] = False,
) -> None:
    """Create or replace the file's rules (by name) in its tenant; all or none.

    A running server picks the change up within M2MHUB_RULES_RELOAD_S seconds.
    """
    from m2mhub.rules.service import apply_rule_file, prune_rules

    try:
        text = file.read_text()
    except OSError as exc:
        err.print(f"[red]error:[/red] {file}: {exc.strerror}")
        raise typer.Exit(2) from None

    async def work(store: Store, registry: Registry) -> tuple[list[tuple[str, bool]], list[str]]:
        parsed, applied = await apply_rule_file(store, text, source=str(file))
        tenant = await registry.tenant(parsed.tenant)
        for name, created in applied:
            action = "rule.create" if created else "rule.replace"
            await _audit(store, tenant.id, action, f"rule:{name}", file=str(file))
        deleted: list[str] = []
        if prune:
            deleted = await prune_rules(store, tenant.id, {r.name for r in parsed.rules})
            for name in deleted:
                await _audit(store, tenant.id, "rule.delete", f"rule:{name}", file=str(file))
        return applied, deleted

    applied, deleted = _run(work)
    for name, created in applied:
        out.print(f"{'created' if created else 'replaced'} rule [bold]{escape(name)}[/bold]")
    for name in deleted:
        out.print(f"deleted rule [bold]{escape(name)}[/bold]")


@rules_app.command("list")
def rules_list(tenant: TenantOpt = "default") -> None:
    """The tenant's rules: scope, condition and actions."""
    from m2mhub.rules.service import rule_of
    from m2mhub.store.models import StoredRule

    async def work(store: Store, registry: Registry) -> list[StoredRule]:
        return await store.list_rules((await registry.tenant(tenant)).id)

    table = Table("name", "enabled", "source", "scope", "condition", "actions")
    for stored in _run(work):
        data = rule_of(stored).to_data()
        scope = ", ".join(f"{k}={v}" for k, v in data["scope"].items())
        condition = ", ".join(
            f"{k} {v}" if isinstance(v, str) else k
            for k, v in (data.get("condition") or {"compute": ""}).items()
        )
        actions = ", ".join(next(iter(a)) for a in data.get("actions", []))
        table.add_row(
            escape(stored.name),
            "yes" if stored.enabled else "no",
            stored.source,
            escape(scope),
            escape(condition),
            actions,
        )
    out.print(table)


@rules_app.command("test")
def rules_test(
    file: Annotated[Path, typer.Argument(help="A YAML rules file (see docs/rules.md).")],
    start: Annotated[
        str, typer.Option("--from", help="Start: epoch ms, ISO 8601, now or -24h.")
    ] = "-24h",
    end: Annotated[str, typer.Option("--to", help="End (exclusive), like --from.")] = "now",
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
) -> None:
    """Replay stored data through the file's rules and show what they would have done.

    A dry run: nothing is saved, no alarm is raised and no action runs.
    """
    from m2mhub.core.timeutil import format_ms, now_ms, parse_time
    from m2mhub.rules.model import parse_rule_file
    from m2mhub.rules.replay import ReplayReport, replay

    try:
        text = file.read_text()
    except OSError as exc:
        err.print(f"[red]error:[/red] {file}: {exc.strerror}")
        raise typer.Exit(2) from None

    async def work(store: Store, registry: Registry) -> ReplayReport:
        parsed = parse_rule_file(text, source=str(file))
        now = now_ms()
        first = parse_time(start, field="from", now=now)
        last = parse_time(end, field="to", now=now + 1)
        t = await registry.tenant(parsed.tenant)
        return await replay(store, t.id, parsed.rules, start=first, end=last, device=device)

    report = _run(work)
    table = Table("time", "rule", "device", "event", "trigger", "values", "would run")
    for outcome in report.devices:
        for fired in outcome.fired:
            values = ", ".join(f"{k}={v}" for k, v in fired.values.items())
            table.add_row(
                format_ms(fired.ts),
                escape(outcome.rule),
                escape(outcome.device),
                fired.event,
                fired.trigger,
                escape(values),
                escape("; ".join(fired.actions)),
            )
    out.print(table)
    for outcome in report.devices:
        raised = sum(f.event == "raised" for f in outcome.fired)
        out.print(
            f"{escape(outcome.rule)} on {escape(outcome.device)}: {outcome.evaluated} evaluated, "
            f"{raised} raised, {len(outcome.fired) - raised} cleared, "
            f"{'on' if outcome.active else 'off'} at the end"
        )
    for note in report.notes:
        out.print(f"note: {escape(note)}")
    out.print(f"from {format_ms(report.start)} to {format_ms(report.end)}; nothing was changed")


@alarms_app.command("list")
def alarms_list(
    status: Annotated[
        str, typer.Option(help="Comma-separated: active, acknowledged, cleared; empty for all.")
    ] = "active,acknowledged",
    severity: Annotated[str, typer.Option(help="Comma-separated severities.")] = "",
    device: Annotated[str | None, typer.Option(help="Only this device's alarms.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule's alarms.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    tenant: TenantOpt = "default",
) -> None:
    """Alarms, newest first (open ones by default)."""
    from m2mhub.core.timeutil import format_ms
    from m2mhub.store.models import Alarm

    async def work(store: Store, registry: Registry) -> list[Alarm]:
        t = await registry.tenant(tenant)
        device_pk = (await store.get_device(device, tenant_id=t.id)).pk if device else None
        return await store.list_alarms(
            t.id,
            status=[s for s in status.split(",") if s],
            severity=[s for s in severity.split(",") if s],
            device_pk=device_pk,
            rule_name=rule,
            limit=limit,
        )

    table = Table("id", "device", "rule", "severity", "status", "raised", "message")
    for alarm in _run(work):
        table.add_row(
            str(alarm.id),
            escape(alarm.device_id),
            escape(alarm.rule_name),
            alarm.severity,
            alarm.status,
            format_ms(alarm.raised_ms),
            escape(alarm.message),
        )
    out.print(table)
