"""The audit log view (operators and admins, as the API)."""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from m2mhub.api.deps import Operator, PlatformDep
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms, parse_time
from m2mhub.web.routing import PREFIX, console_router
from m2mhub.web.templating import render

router = console_router()

PAGE_SIZE: Final = 100
RANGES: Final = ("-1h", "-24h", "-7d", "-30d", "-365d")

Text = Annotated[str, Query(max_length=200)]


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    who: Operator,
    platform: PlatformDep,
    actor: Text = "",
    action: Text = "",
    target: Text = "",
    since: Text = "-7d",
    cursor: Text = "",
) -> HTMLResponse:
    if since not in RANGES:
        raise PayloadError(f"since: use one of {', '.join(RANGES)}", field="since")
    now = now_ms()
    entries = await platform.store.list_audit(
        who.tenant_id,
        start=parse_time(since, now=now),
        end=now + 1,
        actor=actor.strip() or None,
        action=action.strip() or None,
        target=target.strip() or None,
        before_id=decode_cursor(cursor, int) if cursor else None,
        limit=PAGE_SIZE,
    )
    filters = {"actor": actor.strip(), "action": action.strip(), "target": target.strip()}
    kept = {k: v for k, v in {**filters, "since": since}.items() if v}
    next_url = None
    if len(entries) == PAGE_SIZE:
        next_url = f"{PREFIX}/audit?" + urlencode({**kept, "cursor": encode_cursor(entries[-1].id)})
    return render(
        request,
        "audit.html",
        who,
        {
            "entries": entries,
            "filters": filters,
            "since": since,
            "ranges": RANGES,
            "next_url": next_url,
            "first_page": not cursor,
        },
    )
