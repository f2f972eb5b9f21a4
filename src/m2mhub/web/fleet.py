"""The fleet overview: counts by status, type and group, the latest alarms, the device table.

The table is filtered, sorted and cut into pages on the server. It reads every device of
the tenant once per request (one query, ordered by name) and the latest values of the one
page it shows, which keeps a page of a 10,000-device fleet well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.api.registry import types_by_id
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.platform import Platform
from m2mhub.store.models import Alarm, Device, DeviceType
from m2mhub.web.routing import PREFIX, console_router
from m2mhub.web.templating import SEVERITY_ORDER, render

router = console_router()

PAGE_SIZE: Final = 50
SORTS: Final = ("name", "type", "status", "last_seen", "alarms")
STATUSES: Final = ("online", "offline", "never_seen", "alarming")
# Values shown per device in the table; the device page shows all of them.
VALUES_SHOWN: Final = 4
OPEN: Final = ("active", "acknowledged")
_STATUS_RANK: Final = {"online": 0, "offline": 1, "never_seen": 2}
_PAGE_DEVICES: Final = 5000


@dataclass
class Row:
    """One device as the table shows it."""

    device: Device
    type: DeviceType
    status: str
    alarms: int = 0
    severity: str | None = None
    values: list[tuple[str, Value, str | None]] = field(default_factory=list)


@dataclass
class Counts:
    total: int = 0
    online: int = 0
    offline: int = 0
    never_seen: int = 0
    alarming: int = 0

    def add(self, row: Row) -> None:
        self.total += 1
        setattr(self, row.status, getattr(self, row.status) + 1)
        if row.alarms:
            self.alarming += 1


async def all_devices(platform: Platform, tenant_id: int) -> list[Device]:
    devices: list[Device] = []
    while True:
        page = await platform.store.list_devices(
            tenant_id, after_name=devices[-1].name if devices else None, limit=_PAGE_DEVICES
        )
        devices += page
        if len(page) < _PAGE_DEVICES:
            return devices


async def open_alarms(platform: Platform, tenant_id: int) -> list[Alarm]:
    return await platform.store.list_alarms(tenant_id, status=OPEN, limit=100_000)


async def fleet_rows(platform: Platform, tenant_id: int) -> list[Row]:
    """Every device of the tenant with its status and open alarms, ordered by name."""
    types = await types_by_id(platform, tenant_id)
    alarms = await open_alarms(platform, tenant_id)
    by_device: dict[int, list[Alarm]] = {}
    for alarm in alarms:
        by_device.setdefault(alarm.device_pk, []).append(alarm)
    now = now_ms()
    rows = []
    for device in await all_devices(platform, tenant_id):
        device_type = types[device.type_id]
        row = Row(device, device_type, platform.registry.status(device, device_type, now=now).value)
        mine = by_device.get(device.pk)
        if mine:
            row.alarms = len(mine)
            row.severity = min((a.severity for a in mine), key=_severity_rank)
        rows.append(row)
    return rows


def _severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _sort_key(sort: str) -> Callable[[Row], Any]:
    if sort == "type":
        return lambda r: (r.type.name, r.device.name)
    if sort == "status":
        return lambda r: (_STATUS_RANK[r.status], r.device.name)
    if sort == "last_seen":
        return lambda r: (r.device.last_seen_ms or 0, r.device.name)
    if sort == "alarms":
        return lambda r: (r.alarms, -_severity_rank(r.severity or ""), r.device.name)
    return lambda r: r.device.name


@dataclass
class Table:
    rows: list[Row]
    total: int
    page: int
    pages: int
    query: dict[str, str]

    def url(self, **change: object) -> str:
        """This table's URL with some parameters changed (defaults left out)."""
        params = {**self.query, "page": "1", **{k: str(v) for k, v in change.items()}}
        defaults = {"sort": "name", "dir": "asc", "page": "1"}
        kept = {k: v for k, v in params.items() if v and defaults.get(k) != v}
        return f"{PREFIX}/devices" + (f"?{urlencode(kept)}" if kept else "")

    @property
    def stream_url(self) -> str:
        """Live readings and presence of the devices shown (none: no stream)."""
        if not self.rows:
            return ""
        params = [("events", "readings_stored,presence_changed")]
        return "/api/v1/stream?" + urlencode(params + [("device", r.device.id) for r in self.rows])

    def sort_url(self, column: str) -> str:
        same = self.query.get("sort", "name") == column
        direction = "desc" if same and self.query.get("dir", "asc") == "asc" else "asc"
        return self.url(sort=column, dir=direction)

    def aria_sort(self, column: str) -> str:
        if self.query.get("sort", "name") != column:
            return "none"
        return "descending" if self.query.get("dir") == "desc" else "ascending"


async def device_table(
    platform: Platform,
    tenant_id: int,
    rows: list[Row],
    *,
    q: str,
    status: str,
    type_name: str,
    group: str,
    sort: str,
    direction: str,
    page: int,
) -> Table:
    """Filter, sort and cut ``rows``; fill in the latest values of the page shown."""
    if q:
        needle = q.casefold()
        rows = [
            r
            for r in rows
            if needle in r.device.name.casefold() or needle in r.device.id.casefold()
        ]
    if status == "alarming":
        rows = [r for r in rows if r.alarms]
    elif status in _STATUS_RANK:
        rows = [r for r in rows if r.status == status]
    if type_name:
        rows = [r for r in rows if r.type.name == type_name]
    if group:
        found = [g for g in await platform.store.list_groups(tenant_id) if g.name == group]
        members = (
            set(await platform.store.device_pks(tenant_id, group_id=found[0].id))
            if found
            else set()
        )
        rows = [r for r in rows if r.device.pk in members]
    sort = sort if sort in SORTS else "name"
    if sort != "name" or direction == "desc":
        rows = sorted(rows, key=_sort_key(sort), reverse=direction == "desc")
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    latest = await platform.store.latest([r.device.pk for r in shown])
    for row in shown:
        values = latest.get(row.device.pk, {})
        declared = [k for k in row.type.keys if k.key in values]
        units = {k.key: k.unit for k in row.type.keys}
        order = [k.key for k in declared] + sorted(set(values) - {k.key for k in declared})
        row.values = [(k, values[k][1], units.get(k)) for k in order[:VALUES_SHOWN]]
    query = {
        "q": q,
        "status": status,
        "type": type_name,
        "group": group,
        "sort": sort,
        "dir": direction,
        "page": str(page),
    }
    return Table(shown, len(rows), page, pages, query)


Text = Annotated[str, Query(max_length=200)]


@router.get("/", response_class=HTMLResponse)
@router.get("/devices", response_class=HTMLResponse)
async def overview(
    request: Request,
    who: Viewer,
    platform: PlatformDep,
    q: Text = "",
    status: Text = "",
    type: Text = "",
    group: Text = "",
    sort: Text = "name",
    dir: Text = "asc",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    """The overview page; htmx asks /devices for the table alone when filters change."""
    rows = await fleet_rows(platform, who.tenant_id)
    table = await device_table(
        platform,
        who.tenant_id,
        rows,
        q=q.strip(),
        status=status,
        type_name=type,
        group=group,
        sort=sort,
        direction="desc" if dir == "desc" else "asc",
        page=page,
    )
    if request.headers.get("HX-Request") == "true" and request.url.path.endswith("/devices"):
        fragment = render(request, "_devices.html", who, {"table": table})
        # The address bar shows the table's own short URL, not every empty form field.
        fragment.headers["HX-Push-Url"] = table.url(page=table.page)
        return fragment
    types = sorted(
        {r.type.name for r in rows}
        | {t.name for t in (await types_by_id(platform, who.tenant_id)).values()}
    )
    groups = await platform.store.list_groups(who.tenant_id)
    return render(
        request,
        "fleet.html",
        who,
        {
            "table": table,
            "types": types,
            "groups": [g.name for g in groups],
            "statuses": STATUSES,
            **await _summary(platform, who.tenant_id, rows),
        },
    )


async def _summary(platform: Platform, tenant_id: int, rows: list[Row]) -> dict[str, object]:
    """Counts in total, by type and by group, and the latest open alarms."""
    total = Counts()
    by_type: dict[str, Counts] = {}
    by_pk = {r.device.pk: r for r in rows}
    for row in rows:
        total.add(row)
        by_type.setdefault(row.type.name, Counts()).add(row)
    by_group: dict[str, Counts] = {}
    for group in await platform.store.list_groups(tenant_id):
        counts = by_group[group.name] = Counts()
        for pk in await platform.store.device_pks(tenant_id, group_id=group.id):
            if pk in by_pk:
                counts.add(by_pk[pk])
    alarms = await platform.store.list_alarms(tenant_id, status=OPEN, limit=10)
    return {
        "total": total,
        "by_type": sorted(by_type.items()),
        "by_group": sorted(by_group.items()),
        "alarms": alarms,
    }


@router.get("/summary", response_class=HTMLResponse)
async def summary(request: Request, who: Viewer, platform: PlatformDep) -> HTMLResponse:
    """The counts and latest alarms alone (refreshed by htmx every few seconds)."""
    rows = await fleet_rows(platform, who.tenant_id)
    return render(request, "_summary.html", who, await _summary(platform, who.tenant_id, rows))
