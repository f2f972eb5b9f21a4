"""What the API, the CLI and the console ask of the fleet app, in one place.

That includes reading what people type for a range: times as ``parse_time`` reads them
(epoch ms, ISO 8601, ``now``, ``-24h``) and local days as ``YYYY-MM-DD``.

Trips, stops and events are read as stored by the service. Routes, day summaries and
utilization are computed on request from the stored readings (a day summary reads from
``max_gap_ms`` before the day, so the stretch across midnight is counted on both days).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from m2mhub.apps.fleet import storage
from m2mhub.apps.fleet.errors import FleetError
from m2mhub.apps.fleet.models import DaySummary, FleetEvent, RoutePoint, Stop, Trip, Utilization
from m2mhub.apps.fleet.profiles import FleetProfile
from m2mhub.apps.fleet.reports import route
from m2mhub.apps.fleet.service import reading_keys
from m2mhub.apps.fleet.utilization import Period, group_utilization, summarize_days, utilization
from m2mhub.core.errors import NotFoundError
from m2mhub.core.timeutil import parse_time
from m2mhub.store.base import Store
from m2mhub.store.models import Device

#: The most outputs one request returns unpaged (exports, the console's day).
ALL: int = 100_000


async def vehicle(store: Store, tenant_id: int, device_id: str) -> tuple[Device, FleetProfile]:
    """A device of the tenant that is a vehicle; errors say how to make it one."""
    device = await store.get_device(device_id, tenant_id=tenant_id)
    for profile in await storage.profiles(store, tenant_id):
        if profile.type_id == device.type_id:
            return device, profile
    raise NotFoundError(
        f"device: {device_id!r} is not a vehicle; give its device type a fleet profile "
        "(PUT /api/v1/fleet/profiles/{type}, or m2mhub fleet enable TYPE)",
        field="device",
    )


def day_range(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """A local day as ``[start, end)`` in UTC milliseconds."""
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def check_range(start: int, end: int) -> None:
    """Refuse a time range that ends before it starts."""
    if end <= start:
        raise FleetError("to: give a time after from", field="to")


def parse_range(start: str, end: str) -> tuple[int, int]:
    """The ``from`` and ``to`` a person gave as ``[start, end)`` in epoch milliseconds."""
    span = parse_time(start, field="from"), parse_time(end, field="to")
    check_range(*span)
    return span


def parse_day(text: str | None, field: str) -> date | None:
    """A ``YYYY-MM-DD`` day, None when none is given; the error names ``field``."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FleetError(f"{field}: {text!r} is not a day; use YYYY-MM-DD", field=field) from None


def default_days(
    zone: ZoneInfo, *, days: int = 7, now: datetime | None = None
) -> tuple[date, date]:
    """The last ``days`` local days up to today."""
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    return today - timedelta(days=days - 1), today


def parse_days(start: str | None, end: str | None, zone: ZoneInfo) -> tuple[date, date]:
    """The days ``from`` to ``to`` (included) a person gave; what is not given is taken
    from the last 7 days up to today in ``zone``."""
    first, last = default_days(zone)
    first = parse_day(start, "from") or first
    last = parse_day(end, "to") or last
    if last < first:
        raise FleetError("to: give a day on or after from", field="to")
    return first, last


async def trips(store: Store, device: Device, start: int, end: int) -> list[Trip]:
    """A vehicle's trips overlapping ``[start, end)``, in time order."""
    rows = await storage.outputs(store, [device.pk], storage.TRIP, start, end, limit=ALL)
    return [n.output for _, n in rows if isinstance(n.output, Trip)]


async def stops(store: Store, device: Device, start: int, end: int) -> list[Stop]:
    """A vehicle's stops overlapping ``[start, end)``, in time order."""
    rows = await storage.outputs(store, [device.pk], storage.STOP, start, end, limit=ALL)
    return [n.output for _, n in rows if isinstance(n.output, Stop)]


async def events(store: Store, device: Device, start: int, end: int) -> list[FleetEvent]:
    """A vehicle's fleet events in ``[start, end)``, in time order."""
    rows = await storage.outputs(store, [device.pk], storage.EVENT, start, end, limit=ALL)
    return [n.output for _, n in rows if isinstance(n.output, FleetEvent) and n.output.ts < end]


async def route_of(
    store: Store, device: Device, profile: FleetProfile, start: int, end: int
) -> list[RoutePoint]:
    """The positions a vehicle reported in ``[start, end)``."""
    keys = reading_keys(profile.settings)
    return route(await storage.readings(store, device.pk, keys, start=start, end=end))


async def day_summaries(
    store: Store,
    device: Device,
    profile: FleetProfile,
    first: date,
    last: date,
    *,
    zone: ZoneInfo | None = None,
) -> list[DaySummary]:
    """A vehicle's summary of each local day from ``first`` to ``last`` it has data on."""
    if last < first:
        raise FleetError("to: give a day on or after from", field="to")
    zone = zone or profile.zone
    settings = profile.settings
    start, _ = day_range(first, zone)
    _, end = day_range(last, zone)
    readings = await storage.readings(
        store, device.pk, reading_keys(settings), start=start - settings.max_gap_ms, end=end
    )
    return [d for d in summarize_days(readings, settings, zone=zone) if first <= d.day <= last]


async def asset_utilization(
    store: Store,
    tenant_id: int,
    first: date,
    last: date,
    *,
    period: Period,
    asset: str | None = None,
    device: str | None = None,
    group: str | None = None,
) -> list[Utilization]:
    """Utilization of an asset (its devices over their assignments), a device, or a group
    of devices (summed, ``assets`` counted) per day or ISO week."""
    if sum(x is not None for x in (asset, device, group)) != 1:
        raise FleetError("asset: give exactly one of asset, device or group", field="asset")
    if asset is not None:
        found = await store.get_asset(tenant_id, asset)
        days: list[DaySummary] = []
        for assignment in await store.assignments(found.id):
            member = (await store.devices_by_pk([assignment.device_pk])).get(assignment.device_pk)
            profile = await _profile_of(store, tenant_id, member) if member else None
            if member is None or profile is None:
                continue
            for day in await day_summaries(store, member, profile, first, last):
                start, end = day_range(day.day, profile.zone)
                if assignment.from_ms < end and (
                    assignment.to_ms is None or assignment.to_ms > start
                ):
                    days.append(day)
        return utilization(found.name, days, period=period)
    if device is not None:
        member, profile = await vehicle(store, tenant_id, device)
        days = await day_summaries(store, member, profile, first, last)
        return utilization(member.id, days, period=period)
    assert group is not None
    found_group = await store.get_group(tenant_id, group)
    pks = await store.device_pks(tenant_id, group_id=found_group.id)
    rows: list[Utilization] = []
    for member in (await store.devices_by_pk(pks)).values():
        profile = await _profile_of(store, tenant_id, member)
        if profile is not None:
            days = await day_summaries(store, member, profile, first, last)
            rows += utilization(member.id, days, period=period)
    return group_utilization(found_group.name, rows)


async def fleet_utilization(
    store: Store, tenant_id: int, first: date, last: date, *, period: Period
) -> tuple[list[Utilization], list[Utilization]]:
    """Every vehicle's utilization, and each device group's that has vehicles in it."""
    vehicles = await vehicles_of(store, tenant_id)
    rows: list[Utilization] = []
    for member, profile in vehicles:
        days = await day_summaries(store, member, profile, first, last)
        rows += utilization(member.id, days, period=period)
    groups: list[Utilization] = []
    by_device = {r.asset for r in rows}
    for group in await store.list_groups(tenant_id):
        pks = set(await store.device_pks(tenant_id, group_id=group.id))
        ids = {m.id for m, _ in vehicles if m.pk in pks} & by_device
        if ids:
            groups += group_utilization(group.name, [r for r in rows if r.asset in ids])
    return rows, groups


async def utilization_of(
    store: Store,
    tenant_id: int,
    first: date,
    last: date,
    *,
    period: Period,
    asset: str | None = None,
    device: str | None = None,
    group: str | None = None,
) -> tuple[list[Utilization], list[Utilization]]:
    """The utilization rows of an asset, a device or a group (and no group rows), or with
    none of them given, every vehicle's rows and each device group's."""
    if asset is None and device is None and group is None:
        return await fleet_utilization(store, tenant_id, first, last, period=period)
    rows = await asset_utilization(
        store, tenant_id, first, last, period=period, asset=asset, device=device, group=group
    )
    return rows, []


async def vehicles_of(store: Store, tenant_id: int) -> list[tuple[Device, FleetProfile]]:
    """The tenant's devices whose type has a fleet profile, by id."""
    found: list[tuple[Device, FleetProfile]] = []
    for profile in await storage.profiles(store, tenant_id):
        devices = await store.list_devices(tenant_id, type_id=profile.type_id, limit=ALL)
        found += [(device, profile) for device in devices]
    return sorted(found, key=lambda pair: pair[0].id)


async def _profile_of(store: Store, tenant_id: int, device: Device) -> FleetProfile | None:
    for profile in await storage.profiles(store, tenant_id):
        if profile.type_id == device.type_id:
            return profile
    return None


__all__ = [
    "asset_utilization",
    "check_range",
    "day_range",
    "day_summaries",
    "default_days",
    "events",
    "fleet_utilization",
    "parse_day",
    "parse_days",
    "parse_range",
    "route_of",
    "stops",
    "trips",
    "utilization_of",
    "vehicle",
    "vehicles_of",
]
