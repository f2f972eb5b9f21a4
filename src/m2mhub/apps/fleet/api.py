"""Fleet REST API under ``/api/v1/fleet``: profiles, trips, stops, events, routes, day
summaries, utilization and their exports (CSV, GPX, KML).

Viewers read; operators declare which device types are vehicles. Times are epoch
milliseconds, ISO 8601, ``now`` or relative (``-24h``); days are ``YYYY-MM-DD`` in the
profile's time zone. See docs/fleet.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from m2mhub.api.deps import Operator, PlatformDep, Viewer
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.apps.fleet import exports, queries, storage
from m2mhub.apps.fleet.errors import FleetError
from m2mhub.apps.fleet.profiles import FleetProfile, fleet_settings, time_zone
from m2mhub.apps.fleet.utilization import Period
from m2mhub.core.errors import NotFoundError

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])

From = Annotated[str, Query(alias="from", description="Start: epoch ms, ISO 8601 or -24h.")]
To = Annotated[str, Query(alias="to", description="End (excluded): epoch ms, ISO 8601, now.")]
FirstDay = Annotated[str | None, Query(alias="from", description="First day, YYYY-MM-DD.")]
LastDay = Annotated[str | None, Query(alias="to", description="Last day (included).")]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class ProfileIn(BaseModel):
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Fleet settings that differ from the defaults, e.g. "
        '{"overspeed_kmh": 110, "min_parking_ms": 600000} (docs/fleet.md).',
    )
    timezone: str = Field("UTC", description="IANA time zone the days are counted in.")


def _profile(profile: FleetProfile) -> dict[str, Any]:
    return {
        "type": profile.type_name,
        "settings": profile.overrides,
        "effective": msgspec.to_builtins(profile.settings),
        "timezone": profile.timezone,
        "updated_ms": profile.updated_ms,
    }


async def _span(start: From = "-24h", end: To = "now") -> tuple[int, int]:
    return queries.parse_range(start, end)


#: The ``from`` and ``to`` query parameters as ``[start, end)`` in epoch ms.
Span = Annotated[tuple[int, int], Depends(_span)]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """How many items a page holds and where it continues."""

    limit: int
    after: tuple[int, int, int] | None


async def _page_query(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the page before.")] = None,
) -> PageQuery:
    return PageQuery(limit, decode_cursor(cursor, tuple[int, int, int]) if cursor else None)


Paging = Annotated[PageQuery, Depends(_page_query)]


def _download(found: exports.Export) -> Response:
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


# -- profiles -------------------------------------------------------------------------


@router.get("/profiles")
async def list_profiles(platform: PlatformDep, who: Viewer) -> list[dict[str, Any]]:
    """The device types whose devices are vehicles, with their settings."""
    return [_profile(p) for p in await storage.profiles(platform.store, who.tenant_id)]


@router.put("/profiles/{type_name}")
async def put_profile(
    type_name: str, body: ProfileIn, platform: PlatformDep, who: Operator
) -> dict[str, Any]:
    """Make every device of a type a vehicle (or change its settings)."""
    fleet_settings(body.settings)
    time_zone(body.timezone)
    device_type = await platform.store.get_device_type(who.tenant_id, name=type_name)
    await storage.set_profile(
        platform.store, who.tenant_id, device_type.id, body.settings, body.timezone
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="fleet.profile.set",
        target=type_name,
        details={"settings": body.settings, "timezone": body.timezone},
    )
    found = await storage.profiles(platform.store, who.tenant_id)
    return _profile(next(p for p in found if p.type_id == device_type.id))


@router.delete("/profiles/{type_name}", status_code=204)
async def delete_profile(type_name: str, platform: PlatformDep, who: Operator) -> Response:
    """Stop processing a type's devices; what was computed stays."""
    device_type = await platform.store.get_device_type(who.tenant_id, name=type_name)
    if not await storage.delete_profile(platform.store, who.tenant_id, device_type.id):
        raise NotFoundError(f"type {type_name!r} has no fleet profile", field="type")
    await platform.audit.record(
        tenant_id=who.tenant_id, actor=who.subject, action="fleet.profile.delete", target=type_name
    )
    return Response(status_code=204)


# -- one vehicle ----------------------------------------------------------------------


async def _page(
    platform: PlatformDep,
    tenant_id: int,
    device_id: str,
    kind: str,
    span: tuple[int, int],
    page: PageQuery,
    event_kind: str | None = None,
) -> Page:
    device, _ = await queries.vehicle(platform.store, tenant_id, device_id)
    rows = await storage.outputs(
        platform.store, [device.pk], kind, *span, after=page.after, limit=page.limit
    )
    items = [
        {"seq": n.seq, **msgspec.to_builtins(n.output)}
        for _, n in rows
        if event_kind is None or getattr(n.output, "kind", None) == event_kind
    ]
    more = len(rows) == page.limit
    return Page(
        items=items,
        next_cursor=encode_cursor(storage.cursor_of(*rows[-1])) if more else None,
    )


@router.get("/devices/{device_id}/trips", response_model=Page)
async def list_trips(
    device_id: str, platform: PlatformDep, who: Viewer, span: Span, page: Paging
) -> Page:
    """A vehicle's trips overlapping the range, in time order."""
    return await _page(platform, who.tenant_id, device_id, storage.TRIP, span, page)


@router.get("/devices/{device_id}/stops", response_model=Page)
async def list_stops(
    device_id: str, platform: PlatformDep, who: Viewer, span: Span, page: Paging
) -> Page:
    """A vehicle's stops overlapping the range, in time order."""
    return await _page(platform, who.tenant_id, device_id, storage.STOP, span, page)


@router.get("/devices/{device_id}/events", response_model=Page)
async def list_events(
    device_id: str,
    platform: PlatformDep,
    who: Viewer,
    span: Span,
    page: Paging,
    kind: Annotated[str | None, Query(description="Only this kind, e.g. overspeed.")] = None,
) -> Page:
    """A vehicle's fleet events (ignition, overspeed, idling, fuel drop, offline)."""
    return await _page(platform, who.tenant_id, device_id, storage.EVENT, span, page, kind)


@router.get("/devices/{device_id}/route")
async def get_route(
    device_id: str, platform: PlatformDep, who: Viewer, span: Span
) -> dict[str, Any]:
    """The positions a vehicle reported in the range."""
    device, profile = await queries.vehicle(platform.store, who.tenant_id, device_id)
    points = await queries.route_of(platform.store, device, profile, *span)
    return {"device": device.id, "points": msgspec.to_builtins(points)}


@router.get("/devices/{device_id}/summary")
async def get_summary(
    device_id: str,
    platform: PlatformDep,
    who: Viewer,
    start: FirstDay = None,
    end: LastDay = None,
) -> dict[str, Any]:
    """A vehicle's day summaries (distance, driving, idling, engine time), last 7 days by
    default."""
    device, profile = await queries.vehicle(platform.store, who.tenant_id, device_id)
    first, last = queries.parse_days(start, end, profile.zone)
    days = await queries.day_summaries(platform.store, device, profile, first, last)
    return {"device": device.id, "timezone": profile.timezone, "days": msgspec.to_builtins(days)}


@router.get("/devices/{device_id}/export/{report}")
async def export_report(
    device_id: str,
    report: str,
    platform: PlatformDep,
    who: Viewer,
    span: Span,
    format: Annotated[str, Query(description="csv, gpx or kml")] = "csv",
) -> Response:
    """A vehicle's trips, stops, events, summary or route as a file."""
    first, last = span
    found = await exports.export(
        platform.store, who.tenant_id, report, format, start=first, end=last, device=device_id
    )
    return _download(found)


# -- utilization ----------------------------------------------------------------------


@router.get("/utilization", response_model=None)
async def get_utilization(
    platform: PlatformDep,
    who: Viewer,
    asset: str | None = None,
    device: str | None = None,
    group: str | None = None,
    start: FirstDay = None,
    end: LastDay = None,
    period: Annotated[Period, Query(description="day or week")] = "day",
    format: Annotated[str, Query(description="json or csv")] = "json",
) -> Any:
    """Driving, idling, off and no-data time and distance per day or ISO week: of one
    asset, device or group, or (none given) of every vehicle and group."""
    if format not in ("json", "csv"):
        raise FleetError(f"format: {format!r} is not json or csv", field="format")
    first, last = queries.parse_days(start, end, time_zone("UTC"))
    rows, groups = await queries.utilization_of(
        platform.store,
        who.tenant_id,
        first,
        last,
        period=period,
        asset=asset,
        device=device,
        group=group,
    )
    if format == "csv":
        subject = device or asset or group or "fleet"
        return _download(exports.utilization_file([*rows, *groups], subject, first, period))
    return {
        "period": period,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "assets": [_utilization(r) for r in rows],
        "groups": [_utilization(r) for r in groups],
    }


def _utilization(row: Any) -> dict[str, Any]:
    return {**msgspec.to_builtins(row), "used_ms": row.used_ms, "idle_share": row.idle_share}
