"""The alarms console: filter, acknowledge and clear with a comment, live updates."""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from m2mhub.alarms.service import STATUSES
from m2mhub.api.alarms import alarm_out
from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.core.errors import PayloadError
from m2mhub.rules.model import SEVERITIES
from m2mhub.web.routing import PREFIX, console_router
from m2mhub.web.templating import render

router = console_router()

PAGE_SIZE: Final = 50
# The status filter's choices: "open" (not cleared) is what an operator works on.
STATUS_CHOICES: Final = ("open", *STATUSES, "all")

Text = Annotated[str, Query(max_length=200)]


@router.get("/alarms", response_class=HTMLResponse)
async def alarms_page(
    request: Request,
    who: Viewer,
    platform: PlatformDep,
    status: Text = "open",
    severity: Text = "",
    type: Text = "",
    device: Text = "",
    rule: Text = "",
    cursor: Text = "",
) -> HTMLResponse:
    if status not in STATUS_CHOICES:
        raise PayloadError(f"status: use one of {', '.join(STATUS_CHOICES)}", field="status")
    if severity and severity not in SEVERITIES:
        raise PayloadError(f"severity: use one of {', '.join(SEVERITIES)}", field="severity")
    statuses = {"open": ("active", "acknowledged"), "all": ()}.get(status, (status,))
    device_pk = None
    if device.strip():
        device_pk = (await platform.store.get_device(device.strip(), tenant_id=who.tenant_id)).pk
    alarms = await platform.store.list_alarms(
        who.tenant_id,
        status=statuses,
        severity=(severity,) if severity else (),
        device_pk=device_pk,
        rule_name=rule.strip() or None,
        alarm_type=type.strip() or None,
        before_id=decode_cursor(cursor, int) if cursor else None,
        limit=PAGE_SIZE,
    )
    filters = {
        "status": status,
        "severity": severity,
        "type": type.strip(),
        "device": device.strip(),
        "rule": rule.strip(),
    }
    query = urlencode({k: v for k, v in filters.items() if v})
    next_url = None
    if len(alarms) == PAGE_SIZE:
        next_url = f"{PREFIX}/alarms?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "cursor": encode_cursor(alarms[-1].id)}
        )
    context = {
        "alarms": [alarm_out(a) for a in alarms],
        "filters": filters,
        "self_url": f"{PREFIX}/alarms" + (f"?{query}" if query else ""),
        "next_url": next_url,
        "first_page": not cursor,
        "statuses": STATUS_CHOICES,
        "severities": SEVERITIES,
    }
    if request.headers.get("HX-Request") == "true":
        fragment = render(request, "_alarms.html", who, context)
        fragment.headers["HX-Push-Url"] = str(context["self_url"])
        return fragment
    return render(request, "alarms.html", who, context)
