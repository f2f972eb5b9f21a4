"""Query endpoints: latest values, raw history, aggregates, CSV export, status."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Final

import msgspec
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.api.registry import types_by_id
from m2mhub.api.schemas import (
    AggregateOut,
    DeviceLatest,
    EventPage,
    HistoryPage,
    StatusSummary,
)
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import format_ms, now_ms, parse_duration, parse_time
from m2mhub.core.values import Value
from m2mhub.platform import Platform
from m2mhub.store.base import Segment
from m2mhub.store.models import Device, DeviceType

router = APIRouter(prefix="/api/v1", tags=["telemetry"])

MAX_BUCKETS: Final = 10_000
FUNCTIONS: Final = ("min", "max", "avg", "sum", "count", "first", "last")

Keys = Annotated[str | None, Query(description="Comma-separated keys; all keys when empty.")]
From = Annotated[
    str, Query(alias="from", description="Epoch ms, ISO 8601, 'now' or relative like -24h.")
]
To = Annotated[str, Query(description="Epoch ms, ISO 8601, 'now' or relative (exclusive).")]


def _json(value: object) -> Response:
    return Response(msgspec.json.encode(value), media_type="application/json")


def _keys(keys: str | None) -> list[str] | None:
    return [k.strip() for k in keys.split(",") if k.strip()] if keys else None


def _range(platform: Platform, start: str, end: str) -> tuple[int, int]:
    now = now_ms()
    first = parse_time(start, field="from", now=now)
    # "now" as the end still includes readings stamped slightly ahead by a fast clock.
    last = parse_time(end, field="to", now=now + platform.limits.future_tolerance_ms + 1)
    if last <= first:
        raise PayloadError("to must be after from", field="to")
    return first, last


async def _asset_segments(
    platform: Platform, tenant_id: int, name: str, start: int, end: int
) -> list[Segment]:
    """The asset's devices, each over the time it was assigned, clipped to [start, end)."""
    asset = await platform.store.get_asset(tenant_id, name)
    segments = []
    for a in await platform.store.assignments(asset.id):
        seg_start, seg_end = (
            max(start, a.from_ms),
            min(end, a.to_ms if a.to_ms is not None else end),
        )
        if seg_start < seg_end:
            segments.append(Segment(a.device_pk, seg_start, seg_end))
    return segments


# -- latest values and status ---------------------------------------------------------


@router.get("/devices/{device_id}/latest", response_model=DeviceLatest)
async def device_latest(
    device_id: str, who: Viewer, platform: PlatformDep, keys: Keys = None
) -> Response:
    """The latest value of each key of one device, with its timestamp."""
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    types = await types_by_id(platform, who.tenant_id)
    found = await platform.store.latest([device.pk], _keys(keys))
    return _json(_latest_out(platform, device, types, found[device.pk], now_ms()))


def _latest_out(
    platform: Platform,
    device: Device,
    types: dict[int, DeviceType],
    values: dict[str, tuple[int, Value]],
    now: int,
) -> dict[str, object]:
    return {
        "device": device.id,
        "status": platform.registry.status(device, types[device.type_id], now=now).value,
        "last_seen": device.last_seen_ms,
        "values": {k: {"ts": ts, "value": v} for k, (ts, v) in values.items()},
    }


@router.get("/latest", response_model=list[DeviceLatest])
async def many_latest(
    who: Viewer,
    platform: PlatformDep,
    group: Annotated[str | None, Query(description="Only devices in this group.")] = None,
    type: Annotated[str | None, Query(description="Only devices of this type.")] = None,
    keys: Keys = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: str | None = None,
) -> Response:
    """Latest values of many devices (a group, a type, or all), by device name.

    Pages carry a ``Link: <...>; rel="next"``-style cursor in the
    ``X-Next-Cursor`` header.
    """
    types = await types_by_id(platform, who.tenant_id)
    type_id = (await platform.store.get_device_type(who.tenant_id, name=type)).id if type else None
    group_id = (await platform.store.get_group(who.tenant_id, group)).id if group else None
    after = decode_cursor(cursor, str) if cursor else None
    devices = await platform.store.list_devices(
        who.tenant_id, type_id=type_id, group_id=group_id, after_name=after, limit=limit
    )
    found = await platform.store.latest([d.pk for d in devices], _keys(keys))
    now = now_ms()
    response = _json([_latest_out(platform, d, types, found[d.pk], now) for d in devices])
    if len(devices) == limit:
        response.headers["X-Next-Cursor"] = encode_cursor(devices[-1].name)
    return response


@router.get("/status", response_model=StatusSummary)
async def status_summary(who: Viewer, platform: PlatformDep) -> StatusSummary:
    """How many devices are online, offline, or were never seen."""
    types = await types_by_id(platform, who.tenant_id)
    counts = {"online": 0, "offline": 0, "never_seen": 0}
    now = now_ms()
    after: str | None = None
    while True:
        page = await platform.store.list_devices(who.tenant_id, after_name=after, limit=5000)
        for device in page:
            counts[platform.registry.status(device, types[device.type_id], now=now).value] += 1
        if len(page) < 5000:
            return StatusSummary(**counts)
        after = page[-1].name


# -- history -------------------------------------------------------------------------


async def _history(
    platform: Platform,
    segments: Sequence[Segment],
    keys: list[str] | None,
    limit: int,
    cursor: str | None,
    descending: bool,
) -> Response:
    after = tuple(decode_cursor(cursor, tuple[int, int, int])) if cursor else None
    points = await platform.store.history(
        segments,
        keys=keys,
        after=after,
        limit=limit,
        descending=descending,
    )
    devices = await platform.store.devices_by_pk(list({p.device_pk for p in points}))
    items = [
        {"ts": p.ts, "device": devices[p.device_pk].id, "key": p.key, "value": p.value}
        for p in points
    ]
    next_cursor = (
        encode_cursor(await platform.store.cursor_of(points[-1])) if len(points) == limit else None
    )
    return _json({"items": items, "next_cursor": next_cursor})


Limit = Annotated[int, Query(ge=1, le=10_000)]
Order = Annotated[str, Query(pattern="^(asc|desc)$")]


@router.get("/devices/{device_id}/telemetry", response_model=HistoryPage)
async def device_history(
    device_id: str,
    who: Viewer,
    platform: PlatformDep,
    keys: Keys = None,
    start: From = "-24h",
    to: To = "now",
    limit: Limit = 1000,
    cursor: str | None = None,
    order: Order = "asc",
) -> Response:
    """Raw values of a device in time order, a page at a time (pass ``next_cursor`` back)."""
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    first, last = _range(platform, start, to)
    return await _history(
        platform, [Segment(device.pk, first, last)], _keys(keys), limit, cursor, order == "desc"
    )


@router.get("/assets/{name}/telemetry", response_model=HistoryPage)
async def asset_history(
    name: str,
    who: Viewer,
    platform: PlatformDep,
    keys: Keys = None,
    start: From = "-24h",
    to: To = "now",
    limit: Limit = 1000,
    cursor: str | None = None,
    order: Order = "asc",
) -> Response:
    """Raw values of an asset: of each device over the time it was assigned to the asset."""
    first, last = _range(platform, start, to)
    segments = await _asset_segments(platform, who.tenant_id, name, first, last)
    return await _history(platform, segments, _keys(keys), limit, cursor, order == "desc")


@router.get("/devices/{device_id}/events", response_model=EventPage)
async def device_events(
    device_id: str,
    who: Viewer,
    platform: PlatformDep,
    kind: Annotated[str | None, Query(description="Only events of this kind.")] = None,
    start: From = "-7d",
    to: To = "now",
    limit: Limit = 100,
    cursor: str | None = None,
    order: Order = "desc",
) -> Response:
    """Events the device raised, newest first by default, a page at a time."""
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    first, last = _range(platform, start, to)
    after = tuple(decode_cursor(cursor, tuple[int, str])) if cursor else None
    events = await platform.store.events(
        device.pk,
        first,
        last,
        kind=kind,
        after=after,
        limit=limit,
        descending=order == "desc",
    )
    items = [{"ts": e.ts, "kind": e.kind, "data": e.data} for e in events]
    next_cursor = encode_cursor([events[-1].ts, events[-1].kind]) if len(events) == limit else None
    return _json({"items": items, "next_cursor": next_cursor})


# -- aggregates ------------------------------------------------------------------------


def _buckets(bucket: str, first: int, last: int) -> tuple[int, int, int]:
    """Bucket width and the range widened to whole buckets (aligned to the epoch, UTC)."""
    bucket_ms = parse_duration(bucket, field="bucket")
    if bucket_ms < 1000:
        raise PayloadError("bucket must be at least 1s", field="bucket")
    first -= first % bucket_ms
    last = -(-last // bucket_ms) * bucket_ms
    if (last - first) // bucket_ms > MAX_BUCKETS:
        raise PayloadError(
            f"{(last - first) // bucket_ms} buckets requested; at most {MAX_BUCKETS}: "
            "widen the bucket or narrow the range",
            field="bucket",
        )
    return bucket_ms, first, last


async def _aggregate(
    platform: Platform, segments: list[Segment], key: str, bucket_ms: int, fn: str | None
) -> Response:
    functions = _keys(fn) or list(FUNCTIONS)
    unknown = [f for f in functions if f not in FUNCTIONS]
    if unknown:
        raise PayloadError(
            f"fn: unknown function {unknown[0]!r}; use {', '.join(FUNCTIONS)}", field="fn"
        )
    buckets = await platform.store.aggregate(segments, key, bucket_ms)
    rows = []
    for b in buckets:
        row: dict[str, object] = {"ts": b.ts}
        for f in functions:
            row[f] = b.avg if f == "avg" else getattr(b, f)
        rows.append(row)
    return _json({"key": key, "bucket_ms": bucket_ms, "buckets": rows})


Key = Annotated[str, Query(description="The numeric key to aggregate.")]
BucketQ = Annotated[str, Query(description="Bucket width: 1m, 15m, 1h, 1d ...")]
Fn = Annotated[str | None, Query(description="Comma-separated: min,max,avg,sum,count,first,last.")]


@router.get("/devices/{device_id}/aggregates", response_model=AggregateOut)
async def device_aggregates(
    device_id: str,
    who: Viewer,
    platform: PlatformDep,
    key: Key,
    bucket: BucketQ = "1h",
    fn: Fn = None,
    start: From = "-24h",
    to: To = "now",
) -> Response:
    """Time-bucket aggregates of one key, served from rollups where buckets allow.

    Buckets are aligned to the epoch in UTC; the range widens to whole buckets.
    """
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    bucket_ms, first, last = _buckets(bucket, *_range(platform, start, to))
    return await _aggregate(platform, [Segment(device.pk, first, last)], key, bucket_ms, fn)


@router.get("/assets/{name}/aggregates", response_model=AggregateOut)
async def asset_aggregates(
    name: str,
    who: Viewer,
    platform: PlatformDep,
    key: Key,
    bucket: BucketQ = "1h",
    fn: Fn = None,
    start: From = "-24h",
    to: To = "now",
) -> Response:
    """Aggregates of an asset's key across the devices assigned to it over time."""
    bucket_ms, first, last = _buckets(bucket, *_range(platform, start, to))
    segments = await _asset_segments(platform, who.tenant_id, name, first, last)
    return await _aggregate(platform, segments, key, bucket_ms, fn)


# -- CSV export --------------------------------------------------------------------------


async def _csv_rows(
    platform: Platform, segments: list[Segment], keys: list[str] | None
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["device", "ts", "time", "key", "value"])
    yield buffer.getvalue()
    names = await platform.store.devices_by_pk(list({s.device_pk for s in segments}))
    for segment in segments:
        after = None
        while True:
            points = await platform.store.history([segment], keys=keys, after=after, limit=5000)
            buffer.seek(0)
            buffer.truncate()
            for p in points:
                writer.writerow(
                    [names[p.device_pk].id, p.ts, format_ms(p.ts), p.key, _csv_value(p.value)]
                )
            yield buffer.getvalue()
            if len(points) < 5000:
                break
            after = await platform.store.cursor_of(points[-1])


def _csv_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_response(rows: AsyncIterator[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        rows,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


CSV_DOC = {200: {"content": {"text/csv": {}}, "description": "device,ts,time,key,value rows"}}


@router.get("/devices/{device_id}/export.csv", responses=CSV_DOC)  # type: ignore[arg-type]
async def export_device(
    device_id: str,
    who: Viewer,
    platform: PlatformDep,
    keys: Keys = None,
    start: From = "-24h",
    to: To = "now",
) -> StreamingResponse:
    """All raw values of a device in a range, as CSV."""
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    first, last = _range(platform, start, to)
    return _csv_response(
        _csv_rows(platform, [Segment(device.pk, first, last)], _keys(keys)), f"{device.id}.csv"
    )


@router.get("/assets/{name}/export.csv", responses=CSV_DOC)  # type: ignore[arg-type]
async def export_asset(
    name: str,
    who: Viewer,
    platform: PlatformDep,
    keys: Keys = None,
    start: From = "-24h",
    to: To = "now",
) -> StreamingResponse:
    """All raw values of an asset (following its assignments), as CSV."""
    first, last = _range(platform, start, to)
    segments = await _asset_segments(platform, who.tenant_id, name, first, last)
    return _csv_response(_csv_rows(platform, segments, _keys(keys)), f"{name}.csv")


@router.get("/groups/{name}/export.csv", responses=CSV_DOC)  # type: ignore[arg-type]
async def export_group(
    name: str,
    who: Viewer,
    platform: PlatformDep,
    keys: Keys = None,
    start: From = "-24h",
    to: To = "now",
) -> StreamingResponse:
    """All raw values of every device in a group, device after device, as CSV."""
    group = await platform.store.get_group(who.tenant_id, name)
    first, last = _range(platform, start, to)
    pks = await platform.store.device_pks(who.tenant_id, group_id=group.id)
    segments = [Segment(pk, first, last) for pk in sorted(pks)]
    return _csv_response(_csv_rows(platform, segments, _keys(keys)), f"{name}.csv")
