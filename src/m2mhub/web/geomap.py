"""The map: the last known position of every located device and asset, a device's track,
and the geofences of rules, which admins can reshape.

Positions are the ``lat`` and ``lon`` keys of the latest values (as in geofence rules); the
page carries them as JSON and draws them with Leaflet. Tracks are read by the browser from the
history API, and a reshaped geofence is saved with the rules API.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.api.registry import types_by_id
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.rules.service import rule_of
from m2mhub.web.assets import current_assignments
from m2mhub.web.fleet import all_devices
from m2mhub.web.routing import HEADERS, console_router
from m2mhub.web.rules import has_secrets
from m2mhub.web.templating import render

router = console_router()

LAT: Final = "lat"
LON: Final = "lon"


def tile_origin(url: str) -> str:
    """The origin a tile URL loads from, as a CSP source (``{s}`` subdomains: a wildcard)."""
    parts = urlsplit(url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}"


def content_policy(tile_url: str) -> str:
    """The console's policy, with images also allowed from the tile server when there is one."""
    policy = HEADERS["Content-Security-Policy"]
    if not tile_url:
        return policy
    return policy.replace("img-src 'self' data:", f"img-src 'self' data: {tile_origin(tile_url)}")


def _position(values: dict[str, tuple[int, Any]]) -> tuple[float, float, int] | None:
    lat, lon = values.get(LAT), values.get(LON)
    if lat is None or lon is None:
        return None
    if not all(isinstance(v[1], int | float) and not isinstance(v[1], bool) for v in (lat, lon)):
        return None
    if not (-90 <= lat[1] <= 90 and -180 <= lon[1] <= 180):
        return None
    return float(lat[1]), float(lon[1]), max(lat[0], lon[0])


async def map_data(platform: Platform, tenant_id: int, *, can_edit: bool) -> dict[str, Any]:
    """Devices and assets with a position, and the geofences of the tenant's rules."""
    types = await types_by_id(platform, tenant_id)
    devices = await all_devices(platform, tenant_id)
    latest = await platform.store.latest([d.pk for d in devices], keys=[LAT, LON])
    now = now_ms()
    points: list[dict[str, Any]] = []
    located: dict[int, dict[str, Any]] = {}
    for device in devices:
        where = _position(latest.get(device.pk, {}))
        if where is None:
            continue
        status = platform.registry.status(device, types[device.type_id], now=now).value
        point = {
            "kind": "device",
            "id": device.id,
            "name": device.name,
            "status": status,
            "lat": where[0],
            "lon": where[1],
            "ts": where[2],
        }
        points.append(point)
        located[device.pk] = point
    for asset, device_pks in await current_assignments(platform, tenant_id):
        positions = sorted(
            (located[pk] for pk in device_pks if pk in located), key=lambda p: -p["ts"]
        )
        if positions:
            newest = positions[0]
            points.append(
                {
                    "kind": "asset",
                    "id": asset.name,
                    "name": asset.name,
                    "status": asset.kind,
                    "lat": newest["lat"],
                    "lon": newest["lon"],
                    "ts": newest["ts"],
                    "device": newest["id"],
                }
            )
    fences = []
    for stored in await platform.store.list_rules(tenant_id):
        rule = rule_of(stored)
        fence = rule.condition.geofence if rule.condition else None
        if fence is None:
            continue
        fences.append(
            {
                "rule": stored.name,
                "enabled": stored.enabled,
                "trigger": fence.trigger,
                "circle": fence.circle.model_dump() if fence.circle else None,
                "polygon": [list(p) for p in fence.polygon] if fence.polygon else None,
                # Only a rule shown whole can be saved back (no hidden secrets).
                "definition": rule.to_data() if can_edit and not has_secrets(rule) else None,
            }
        )
    return {
        "points": points,
        "fences": fences,
        "devices": sorted(d.id for d in devices),
    }


@router.get("/map", response_class=HTMLResponse)
async def map_page(request: Request, who: Viewer, platform: PlatformDep) -> HTMLResponse:
    settings = platform.settings
    context = await map_data(platform, who.tenant_id, can_edit=who.role.allows(Role.ADMIN))
    tiles = {"url": settings.console_tile_url, "attribution": settings.console_tile_attribution}
    response = render(
        request,
        "map.html",
        who,
        {
            **context,
            "data": json.dumps({**context, "tiles": tiles}).replace("<", "\\u003c"),
            "tiles": tiles,
        },
    )
    response.headers["Content-Security-Policy"] = content_policy(settings.console_tile_url)
    return response
