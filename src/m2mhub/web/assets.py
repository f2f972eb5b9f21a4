"""The asset registry: assets with their devices, where they are, how they run and whether
anything is wrong, at a glance; CSV and Excel out and in, and assigning devices.

Creating, importing and assigning are calls to the registry API from the browser.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import Query, Request, Response
from fastapi.responses import HTMLResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.api.registry import types_by_id
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.platform import Platform
from m2mhub.registry.assets_csv import assets_csv
from m2mhub.registry.assets_xlsx import XLSX_MEDIA_TYPE, assets_xlsx
from m2mhub.store.models import Asset, Device
from m2mhub.web.fleet import OPEN, all_devices
from m2mhub.web.routing import console_router
from m2mhub.web.templating import SEVERITY_ORDER, render

router = console_router()

_PAGE: Final = 1000
# Values shown per device; its page shows all of them.
VALUES_SHOWN: Final = 4

Text = Annotated[str, Query(max_length=200)]


async def all_assets(platform: Platform, tenant_id: int) -> list[Asset]:
    assets: list[Asset] = []
    while True:
        page = await platform.store.list_assets(
            tenant_id, after_name=assets[-1].name if assets else None, limit=_PAGE
        )
        assets += page
        if len(page) < _PAGE:
            return assets


async def current_assignments(platform: Platform, tenant_id: int) -> list[tuple[Asset, list[int]]]:
    """Every asset with the devices assigned to it now, by name."""
    out = []
    for asset in await all_assets(platform, tenant_id):
        rows = await platform.store.assignments(asset.id)
        out.append((asset, [r.device_pk for r in rows if r.to_ms is None]))
    return out


@dataclass
class Attached:
    """A device on an asset as the table shows it."""

    device: Device
    status: str
    values: list[tuple[str, Value, str | None]] = field(default_factory=list)
    position: tuple[float, float] | None = None


@dataclass
class AssetRow:
    asset: Asset
    devices: list[Attached]
    alarms: int = 0
    severity: str | None = None

    @property
    def position(self) -> tuple[float, float] | None:
        return next((d.position for d in self.devices if d.position), None)


def _number(value: Value | None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


async def asset_rows(platform: Platform, tenant_id: int) -> list[AssetRow]:
    assigned = await current_assignments(platform, tenant_id)
    pks = [pk for _, device_pks in assigned for pk in device_pks]
    devices = await platform.store.devices_by_pk(pks)
    latest = await platform.store.latest(pks)
    types = await types_by_id(platform, tenant_id)
    alarms = await platform.store.list_alarms(tenant_id, status=OPEN, limit=100_000)
    now = now_ms()
    rows = []
    for asset, device_pks in assigned:
        row = AssetRow(asset, [])
        for pk in device_pks:
            if pk not in devices:
                continue
            device = devices[pk]
            device_type = types[device.type_id]
            values = latest.get(pk, {})
            units = {k.key: k.unit for k in device_type.keys}
            declared = [k.key for k in device_type.keys if k.key in values]
            keys = [*declared, *sorted(set(values) - set(declared) - {"lat", "lon"})]
            lat, lon = (_number(values[k][1]) if k in values else None for k in ("lat", "lon"))
            row.devices.append(
                Attached(
                    device,
                    platform.registry.status(device, device_type, now=now).value,
                    [(k, values[k][1], units.get(k)) for k in keys[:VALUES_SHOWN]],
                    (lat, lon) if lat is not None and lon is not None else None,
                )
            )
        mine = [a for a in alarms if a.device_pk in device_pks]
        if mine:
            row.alarms = len(mine)
            row.severity = min((a.severity for a in mine), key=SEVERITY_ORDER.index)
        rows.append(row)
    return rows


@router.get("/assets", response_class=HTMLResponse)
async def assets_page(
    request: Request, who: Viewer, platform: PlatformDep, q: Text = "", kind: Text = ""
) -> HTMLResponse:
    rows = await asset_rows(platform, who.tenant_id)
    kinds = sorted({r.asset.kind for r in rows})
    needle = q.strip().casefold()
    if needle:
        rows = [
            r
            for r in rows
            if needle in r.asset.name.casefold()
            or any(needle in d.device.id.casefold() for d in r.devices)
        ]
    if kind:
        rows = [r for r in rows if r.asset.kind == kind]
    context = {"rows": rows, "kinds": kinds, "filters": {"q": q.strip(), "kind": kind}}
    if request.headers.get("HX-Request") == "true":
        return render(request, "_assets.html", who, context)
    devices = await all_devices(platform, who.tenant_id)
    return render(request, "assets.html", who, {**context, "device_ids": [d.id for d in devices]})


async def assets_with_device_ids(
    platform: Platform, tenant_id: int
) -> list[tuple[Asset, list[str]]]:
    """Every asset with the ids of the devices assigned to it now: the rows of an export."""
    assigned = await current_assignments(platform, tenant_id)
    devices = await platform.store.devices_by_pk([pk for _, pks in assigned for pk in pks])
    return [(asset, [devices[pk].id for pk in pks if pk in devices]) for asset, pks in assigned]


@router.get("/assets/export.csv")
async def export_assets(who: Viewer, platform: PlatformDep) -> Response:
    """The registry as a spreadsheet: the same columns the import reads."""
    text = assets_csv(await assets_with_device_ids(platform, who.tenant_id))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="assets.csv"'},
    )


@router.get("/assets/export.xlsx")
async def export_assets_xlsx(who: Viewer, platform: PlatformDep) -> Response:
    """The registry as an Excel workbook: the CSV's columns, with typed cells."""
    rows = await assets_with_device_ids(platform, who.tenant_id)
    data = await asyncio.to_thread(assets_xlsx, rows)  # building a workbook blocks
    return Response(
        data,
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="assets.xlsx"'},
    )
