"""Alarms: list and filter them, acknowledge, clear, comment, read their history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from m2mhub.alarms.service import STATUSES
from m2mhub.api.deps import Operator, PlatformDep, Viewer
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.api.schemas import Strict
from m2mhub.core.errors import PayloadError
from m2mhub.rules.model import SEVERITIES
from m2mhub.store.models import Alarm, AlarmEvent

router = APIRouter(prefix="/api/v1", tags=["alarms"])


class AlarmOut(BaseModel):
    id: int
    device: str
    rule: str
    type: str
    severity: str
    status: str = Field(description="active, acknowledged or cleared")
    message: str
    details: dict[str, Any] = Field(description="The values that raised it.")
    raised: int
    updated: int
    count: int = Field(description="Times the rule raised it while it was open.")
    acknowledged: int | None
    acknowledged_by: str | None
    cleared: int | None
    cleared_by: str | None


class AlarmPage(BaseModel):
    items: list[AlarmOut]
    next_cursor: str | None


class AlarmEventOut(BaseModel):
    ts: int
    kind: str = Field(description="raised, acknowledged, cleared or comment")
    by: str
    comment: str | None


class AlarmChangeIn(Strict):
    comment: str | None = Field(None, max_length=2000)


class CommentIn(Strict):
    text: str = Field(min_length=1, max_length=2000)


def alarm_out(alarm: Alarm) -> AlarmOut:
    return AlarmOut(
        id=alarm.id,
        device=alarm.device_id,
        rule=alarm.rule_name,
        type=alarm.type,
        severity=alarm.severity,
        status=alarm.status,
        message=alarm.message,
        details=alarm.details,
        raised=alarm.raised_ms,
        updated=alarm.updated_ms,
        count=alarm.count,
        acknowledged=alarm.acked_ms,
        acknowledged_by=alarm.acked_by,
        cleared=alarm.cleared_ms,
        cleared_by=alarm.cleared_by,
    )


def event_out(event: AlarmEvent) -> AlarmEventOut:
    return AlarmEventOut(ts=event.ts, kind=event.kind, by=event.actor, comment=event.comment)


def _choices(text: str | None, allowed: tuple[str, ...], field: str) -> list[str]:
    if not text:
        return []
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    for value in chosen:
        if value not in allowed:
            raise PayloadError(f"{field}: {value!r}; use {', '.join(allowed)}", field=field)
    return chosen


@router.get("/alarms", response_model=AlarmPage)
async def list_alarms(
    who: Viewer,
    platform: PlatformDep,
    status: Annotated[
        str | None, Query(description="Comma-separated: active, acknowledged, cleared.")
    ] = None,
    severity: Annotated[
        str | None, Query(description="Comma-separated: critical, major, minor, warning, info.")
    ] = None,
    device: Annotated[str | None, Query(description="Only this device's alarms.")] = None,
    rule: Annotated[str | None, Query(description="Only alarms of this rule.")] = None,
    type: Annotated[str | None, Query(description="Only alarms of this type.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> AlarmPage:
    """Alarms, newest first, a page at a time; pass ``next_cursor`` back for the next page."""
    device_pk = None
    if device is not None:
        device_pk = (await platform.store.get_device(device, tenant_id=who.tenant_id)).pk
    page = await platform.store.list_alarms(
        who.tenant_id,
        status=_choices(status, STATUSES, "status"),
        severity=_choices(severity, SEVERITIES, "severity"),
        device_pk=device_pk,
        rule_name=rule,
        alarm_type=type,
        before_id=decode_cursor(cursor, int) if cursor else None,
        limit=limit,
    )
    next_cursor = encode_cursor(page[-1].id) if len(page) == limit else None
    return AlarmPage(items=[alarm_out(a) for a in page], next_cursor=next_cursor)


@router.get("/alarms/{alarm_id}", response_model=AlarmOut)
async def get_alarm(alarm_id: int, who: Viewer, platform: PlatformDep) -> AlarmOut:
    return alarm_out(await platform.store.get_alarm(alarm_id, tenant_id=who.tenant_id))


@router.get("/alarms/{alarm_id}/history", response_model=list[AlarmEventOut])
async def alarm_history(alarm_id: int, who: Viewer, platform: PlatformDep) -> list[AlarmEventOut]:
    """Raised, acknowledged, cleared and comments, oldest first, with who and when."""
    alarm = await platform.store.get_alarm(alarm_id, tenant_id=who.tenant_id)
    return [event_out(e) for e in await platform.store.alarm_history(alarm.id)]


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmOut)
async def acknowledge_alarm(
    alarm_id: int, who: Operator, platform: PlatformDep, body: AlarmChangeIn | None = None
) -> AlarmOut:
    """active -> acknowledged (409 from any other status)."""
    comment = body.comment if body else None
    alarm = await platform.alarms.acknowledge(
        who.tenant_id, alarm_id, actor=who.subject, comment=comment
    )
    return alarm_out(alarm)


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut)
async def clear_alarm(
    alarm_id: int, who: Operator, platform: PlatformDep, body: AlarmChangeIn | None = None
) -> AlarmOut:
    """active or acknowledged -> cleared (409 when already cleared)."""
    comment = body.comment if body else None
    alarm = await platform.alarms.clear(who.tenant_id, alarm_id, actor=who.subject, comment=comment)
    return alarm_out(alarm)


@router.post("/alarms/{alarm_id}/comments", status_code=201, response_model=AlarmEventOut)
async def comment_alarm(
    alarm_id: int, body: CommentIn, who: Operator, platform: PlatformDep
) -> AlarmEventOut:
    """Add a comment to the alarm's history."""
    alarm = await platform.alarms.comment(
        who.tenant_id, alarm_id, actor=who.subject, text=body.text
    )
    return event_out((await platform.store.alarm_history(alarm.id))[-1])
