"""The device page: live values, a chart, attributes, twin, events, alarms, commands and
manual mode. Each section is also a fragment that htmx reloads when the live stream says
it changed."""

from __future__ import annotations

from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse

from m2mhub.api.alarms import alarm_out
from m2mhub.api.commands import command_out, twin_out
from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.core.errors import NotFoundError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import ValueType
from m2mhub.platform import Platform
from m2mhub.registry.service import Principal
from m2mhub.rules.engine import ALL_RULES
from m2mhub.store.models import Device
from m2mhub.web.routing import console_router
from m2mhub.web.templating import render

router = console_router()

EVENTS_SHOWN: Final = 20
ALARMS_SHOWN: Final = 20
COMMANDS_SHOWN: Final = 20
# The chart's ranges (label, milliseconds): from 30 days down to a minute.
RANGES: Final = (
    ("1m", 60_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("6h", 21_600_000),
    ("24h", 86_400_000),
    ("7d", 604_800_000),
    ("30d", 2_592_000_000),
)


async def _device(platform: Platform, who: Principal, device_id: str) -> Device:
    return await platform.store.get_device(device_id, tenant_id=who.tenant_id)


async def _values(platform: Platform, device: Device) -> dict[str, Any]:
    device_type = await platform.store.get_device_type(device.tenant_id, type_id=device.type_id)
    latest = (await platform.store.latest([device.pk]))[device.pk]
    units = {k.key: k.unit for k in device_type.keys}
    declared = [k.key for k in device_type.keys]
    keys = [k for k in declared if k in latest] + sorted(set(latest) - set(declared))
    numeric = [k.key for k in device_type.keys if k.type == ValueType.NUMBER]
    numeric += [
        k
        for k in sorted(latest)
        if k not in numeric
        and k not in declared
        and isinstance(latest[k][1], int | float)
        and not isinstance(latest[k][1], bool)
    ]
    return {
        "type": device_type,
        "status": platform.registry.status(device, device_type).value,
        "values": [(k, latest[k][1], latest[k][0], units.get(k)) for k in keys],
        "missing": [k for k in declared if k not in latest],
        "numeric": numeric,
        "units": units,
    }


async def _automation(platform: Platform, device: Device) -> dict[str, Any]:
    pauses = await platform.store.rule_pauses(device.tenant_id)
    mine = [p for p in pauses if p.device_pk == device.pk and p.rule_id == ALL_RULES]
    return {"paused": mine[0] if mine else None}


async def _alarms(platform: Platform, device: Device) -> dict[str, Any]:
    alarms = await platform.store.list_alarms(
        device.tenant_id, device_pk=device.pk, limit=ALARMS_SHOWN
    )
    return {"alarms": [alarm_out(a) for a in alarms]}


async def _commands(platform: Platform, device: Device) -> dict[str, Any]:
    commands = await platform.store.list_commands(device.pk, before=None, limit=COMMANDS_SHOWN)
    return {"commands": [command_out(c, device.id) for c in commands]}


async def _twin(platform: Platform, device: Device) -> dict[str, Any]:
    twin = twin_out(await platform.store.twin(device.pk))
    keys = sorted(set(twin.desired) | set(twin.reported))
    return {"twin": twin, "twin_keys": keys}


async def _events(platform: Platform, device: Device) -> dict[str, Any]:
    now = now_ms()
    events = await platform.store.events(
        device.pk, now - 30 * 86_400_000, now + 1, limit=EVENTS_SHOWN
    )
    attributes = await platform.store.attributes(device.pk)
    return {"events": events, "attributes": sorted(attributes.items())}


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(
    request: Request, device_id: str, who: Viewer, platform: PlatformDep
) -> HTMLResponse:
    device = await _device(platform, who, device_id)
    context: dict[str, Any] = {"device": device, "ranges": RANGES}
    for part in (_values, _automation, _alarms, _commands, _twin, _events):
        context.update(await part(platform, device))
    return render(request, "device.html", who, context)


_FRAGMENTS: Final = {
    "values": (_values, "_values.html"),
    "automation": (_automation, "_automation.html"),
    "alarms": (_alarms, "_device_alarms.html"),
    "commands": (_commands, "_commands.html"),
    "twin": (_twin, "_twin.html"),
    "events": (_events, "_events.html"),
}


@router.get("/devices/{device_id}/{part}", response_class=HTMLResponse)
async def device_fragment(
    request: Request, device_id: str, part: str, who: Viewer, platform: PlatformDep
) -> HTMLResponse:
    """One section of the device page, for htmx to swap in."""
    device = await _device(platform, who, device_id)
    if part not in _FRAGMENTS:
        raise NotFoundError(f"the device page has no section {part!r}")
    load, template = _FRAGMENTS[part]
    return render(request, template, who, {"device": device, **await load(platform, device)})
