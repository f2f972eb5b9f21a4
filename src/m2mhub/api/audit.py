"""The audit log: who or which rule did what, when, to what, with which result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from m2mhub.api.deps import Operator, PlatformDep
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms, parse_time

router = APIRouter(prefix="/api/v1", tags=["audit"])


class AuditEntryOut(BaseModel):
    id: int
    ts: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    result: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    who: Operator,
    platform: PlatformDep,
    actor: Annotated[
        str | None, Query(description="user:<email>, key:<id>, rule:<id>, cli:<user>, system.")
    ] = None,
    action: Annotated[
        str | None, Query(description="An action (command.send), or a family (command.*).")
    ] = None,
    target: Annotated[str | None, Query(description="device:<id>, apikey:<id>...")] = None,
    start: Annotated[
        str, Query(alias="from", description="Epoch ms, ISO 8601, 'now' or relative like -24h.")
    ] = "-30d",
    to: Annotated[str, Query(description="Epoch ms, ISO 8601, 'now' or relative.")] = "now",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> AuditPage:
    """The audit log, newest first, a page at a time (operator and admin)."""
    now = now_ms()
    first = parse_time(start, field="from", now=now)
    last = parse_time(to, field="to", now=now + 1)
    if last <= first:
        raise PayloadError("to must be after from", field="to")
    before = decode_cursor(cursor, int) if cursor else None
    entries = await platform.store.list_audit(
        who.tenant_id,
        start=first,
        end=last,
        actor=actor,
        action=action,
        target=target,
        before_id=before,
        limit=limit,
    )
    items = [
        AuditEntryOut(
            id=e.id,
            ts=e.ts,
            actor=e.actor,
            action=e.action,
            target=e.target,
            details=e.details,
            result=e.result,
        )
        for e in entries
    ]
    next_cursor = encode_cursor(entries[-1].id) if len(entries) == limit else None
    return AuditPage(items=items, next_cursor=next_cursor)
