"""The fleet's console pages: the vehicles, a vehicle's day on the map, and utilization.

The day page carries its route, trips and stops as JSON for ``fleet-day.js`` to draw
with Leaflet (scripts come from this server only); the lists beside the map are plain
HTML, so they read without scripts too.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.apps.fleet import queries
from m2mhub.apps.fleet.errors import FleetError
from m2mhub.apps.fleet.profiles import time_zone
from m2mhub.web.geomap import content_policy
from m2mhub.web.routing import console_router
from m2mhub.web.templating import render

router = console_router()


@router.get("/vehicles", response_class=HTMLResponse)
async def vehicles_page(request: Request, who: Viewer, platform: PlatformDep) -> HTMLResponse:
    """Every vehicle, with a link to its day."""
    found = await queries.vehicles_of(platform.store, who.tenant_id)
    rows = [
        {"id": d.id, "name": d.name, "type": p.type_name, "last_seen": d.last_seen_ms}
        for d, p in found
    ]
    return render(request, "fleet_vehicles.html", who, {"nav": "vehicles", "vehicles": rows})


@router.get("/vehicles/{device_id}", response_class=HTMLResponse)
async def day_page(
    request: Request,
    device_id: str,
    who: Viewer,
    platform: PlatformDep,
    day: Annotated[str | None, Query(description="The local day, YYYY-MM-DD.")] = None,
) -> HTMLResponse:
    """A vehicle's day: its route, trips and stops on the map, and listed beside it."""
    store = platform.store
    device, profile = await queries.vehicle(store, who.tenant_id, device_id)
    zone = profile.zone
    shown = queries.parse_day(day, "day") or datetime.now(zone).date()
    start, end = queries.day_range(shown, zone)
    trips = await queries.trips(store, device, start, end)
    stops = await queries.stops(store, device, start, end)
    events = await queries.events(store, device, start, end)
    points = await queries.route_of(store, device, profile, start, end)
    summary = await queries.day_summaries(store, device, profile, shown, shown)
    settings = platform.settings
    tiles = {"url": settings.console_tile_url, "attribution": settings.console_tile_attribution}
    data = {
        "route": [[p.lat, p.lon] for p in points],
        "trips": msgspec.to_builtins(trips),
        "stops": msgspec.to_builtins(stops),
        "tiles": tiles,
        "timezone": profile.timezone,
    }
    span = urlencode({"from": start, "to": end})
    base = f"/api/v1/fleet/devices/{device.id}/export"
    response = render(
        request,
        "fleet_day.html",
        who,
        {
            "nav": "vehicles",
            "device": device,
            "profile": profile,
            "day": shown,
            "trips": trips,
            "stops": stops,
            "events": events,
            "summary": summary[0] if summary else None,
            "points": len(points),
            "tiles": tiles,
            "data": json.dumps(data).replace("<", "\\u003c"),
            "downloads": {
                "Trips (CSV)": f"{base}/trips?{span}",
                "Stops (CSV)": f"{base}/stops?{span}",
                "Events (CSV)": f"{base}/events?{span}",
                "Route (GPX)": f"{base}/route?{span}&format=gpx",
                "Route and stops (KML)": f"{base}/stops?{span}&format=kml",
            },
        },
    )
    response.headers["Content-Security-Policy"] = content_policy(settings.console_tile_url)
    return response


@router.get("/utilization", response_class=HTMLResponse)
async def utilization_page(
    request: Request,
    who: Viewer,
    platform: PlatformDep,
    period: Annotated[str, Query()] = "day",
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> HTMLResponse:
    """Driving, idling and off time of each vehicle and group, per day or week."""
    if period not in ("day", "week"):
        raise FleetError(f"period: {period!r} is not day or week", field="period")
    first, last = queries.parse_days(start, end, time_zone("UTC"))
    rows, groups = await queries.fleet_utilization(
        platform.store,
        who.tenant_id,
        first,
        last,
        period="week" if period == "week" else "day",
    )
    query = urlencode({"from": first.isoformat(), "to": last.isoformat(), "period": period})
    context: dict[str, Any] = {
        "nav": "utilization",
        "rows": rows,
        "groups": groups,
        "period": period,
        "first": first,
        "last": last,
        "csv": f"/api/v1/fleet/utilization?{query}&format=csv",
    }
    return render(request, "fleet_utilization.html", who, context)
