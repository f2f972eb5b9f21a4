"""``m2mhub fleet ...``: which types are vehicles, their trips, and reports as files.

Like the other management commands, these work on the configured database directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from m2mhub.apps.fleet import exports, queries, storage
from m2mhub.apps.fleet.models import Trip
from m2mhub.apps.fleet.profiles import fleet_settings, time_zone
from m2mhub.apps.fleet.utilization import Period
from m2mhub.config import load_settings
from m2mhub.core.errors import M2MHubError
from m2mhub.core.timeutil import format_ms, parse_time
from m2mhub.store import Store, open_store

T = TypeVar("T")

app = typer.Typer(help="Fleet: trips, stops, events and utilization of vehicles (docs/fleet.md).")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

TenantOpt = Annotated[
    str, typer.Option("--tenant", "-t", envvar="M2MHUB_TENANT", help="Tenant slug.")
]
FromOpt = Annotated[
    str, typer.Option("--from", help="Start: epoch ms, ISO 8601 (2026-06-10T00:00Z) or -24h.")
]
ToOpt = Annotated[str, typer.Option("--to", help="End (excluded): epoch ms, ISO 8601 or now.")]


def _run(work: Callable[[Store, int], Awaitable[T]], tenant: str) -> T:
    """Open the configured store, run ``work`` for the tenant, report errors plainly."""

    async def go() -> T:
        settings = load_settings()
        async with open_store(settings.resolved_database_url()) as store:
            found = await store.get_tenant(tenant)
            if found is None:
                raise M2MHubError(f"tenant: {tenant!r} does not exist", field="tenant")
            return await work(store, found.id)

    try:
        return asyncio.run(go())
    except M2MHubError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from None


@app.command("enable")
def enable(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="The device type.")],
    settings: Annotated[
        str,
        typer.Option(
            help='Settings that differ from the defaults, as JSON: {"overspeed_kmh": 110}'
        ),
    ] = "{}",
    timezone: Annotated[str, typer.Option(help="IANA time zone days are counted in.")] = "UTC",
    tenant: TenantOpt = "default",
) -> None:
    """Make every device of a type a vehicle (or change its settings)."""
    try:
        overrides = json.loads(settings)
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] --settings: not JSON: {exc.msg}")
        raise typer.Exit(2) from None
    if not isinstance(overrides, dict):
        err.print('[red]error:[/red] --settings: give a JSON object, e.g. {"overspeed_kmh": 110}')
        raise typer.Exit(2)

    async def work(store: Store, tenant_id: int) -> None:
        fleet_settings(overrides)
        time_zone(timezone)
        device_type = await store.get_device_type(tenant_id, name=type_name)
        await storage.set_profile(store, tenant_id, device_type.id, overrides, timezone)

    _run(work, tenant)
    out.print(f"devices of type {escape(type_name)} are vehicles from their next reading")


@app.command("disable")
def disable(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="The device type.")],
    tenant: TenantOpt = "default",
) -> None:
    """Stop processing a type's devices; what was computed stays."""

    async def work(store: Store, tenant_id: int) -> bool:
        device_type = await store.get_device_type(tenant_id, name=type_name)
        return await storage.delete_profile(store, tenant_id, device_type.id)

    if not _run(work, tenant):
        err.print(f"[red]error:[/red] type: {escape(type_name)} has no fleet profile")
        raise typer.Exit(2)


@app.command("trips")
def trips(
    device: Annotated[str, typer.Argument(help="The vehicle's device id.")],
    start: FromOpt = "-24h",
    end: ToOpt = "now",
    tenant: TenantOpt = "default",
) -> None:
    """A vehicle's trips overlapping the range."""

    async def work(store: Store, tenant_id: int) -> list[Trip]:
        first, last = queries.parse_range(start, end)
        found, _ = await queries.vehicle(store, tenant_id, device)
        return await queries.trips(store, found, first, last)

    table = Table("start", "end", "km", "minutes", "max km/h", "idle min")
    for t in _run(work, tenant):
        table.add_row(
            format_ms(t.start_ts),
            format_ms(t.end_ts),
            f"{t.distance_m / 1000:.1f}",
            f"{t.duration_ms / 60_000:.0f}",
            f"{t.max_speed_kmh:.0f}",
            f"{t.idle_ms / 60_000:.0f}",
        )
    out.print(table)


@app.command("report")
def report(
    kind: Annotated[
        str,
        typer.Argument(metavar="REPORT", help="trips, stops, events, summary, utilization, route"),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    device: Annotated[
        str | None, typer.Option(help="The vehicle (all reports but utilization).")
    ] = None,
    asset: Annotated[str | None, typer.Option(help="Utilization of this asset.")] = None,
    group: Annotated[str | None, typer.Option(help="Utilization of this device group.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="csv, gpx or kml (gpx, kml: a route).")
    ] = "csv",
    period: Annotated[str, typer.Option(help="Utilization per day or week.")] = "day",
    start: FromOpt = "-24h",
    end: ToOpt = "now",
    tenant: TenantOpt = "default",
) -> None:
    """Write a report as CSV, or a vehicle's route as GPX or KML."""
    if period not in ("day", "week"):
        err.print(f"[red]error:[/red] --period: {escape(period)!r} is not day or week")
        raise typer.Exit(2)
    chosen: Period = "week" if period == "week" else "day"

    async def work(store: Store, tenant_id: int) -> exports.Export:
        return await exports.export(
            store,
            tenant_id,
            kind,
            fmt,
            start=parse_time(start, field="from"),
            end=parse_time(end, field="to"),
            device=device,
            asset=asset,
            group=group,
            period=chosen,
        )

    found = _run(work, tenant)
    output.write_bytes(found.content)
    out.print(f"wrote {escape(str(output))} ({len(found.content)} bytes, {found.media_type})")


__all__ = ["app"]
