"""The demo: the fleet of ``m2mhub/sim/fleet.yaml`` and its rules, on the embedded defaults.

``prepare`` makes (or finds again) the demo tenant, the fleet's device types,
devices, groups and assets, applies the demo's rules, and declares the electricity
meters' accounts, tariffs and links for billing (``m2mhub/sim/demo-metering.yaml``).
Credentials are kept in ``<data_dir>/demo-credentials.json`` (the store keeps only
hashes), so a second start resumes the same tenant, devices and data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Final

import msgspec
from fastapi import FastAPI, Request

from m2mhub.apps.fleet import storage as fleet_storage
from m2mhub.apps.metering.declarations import apply_declarations, parse_declarations
from m2mhub.apps.metering.service import MeteringService
from m2mhub.auth.secrets import new_password
from m2mhub.core.errors import NotFoundError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.rules.service import apply_rule_file
from m2mhub.sim.fleet import Fleet

TENANT: Final = "demo"
#: The device whose token the demo prints, for the curl and mosquitto_pub examples.
SHOWN_DEVICE: Final = "meter-001"


#: The console account the demo makes (an admin of the demo tenant).
CONSOLE_USER: Final = "demo@example.com"
#: Device types whose devices are vehicles (docs/fleet.md), with their fleet settings: the
#: vans and the trackers on construction equipment get trips, stops and utilization.
FLEET_TYPES: Final[dict[str, dict[str, object]]] = {
    "vehicle": {"overspeed_kmh": 130},
    "asset-tracker": {},
}


class DemoCredentials(msgspec.Struct):
    admin_key: str
    tokens: dict[str, str]  # device id -> token
    console_password: str = ""  # of CONSOLE_USER


def demo_rules(webhook_url: str) -> str:
    """The demo's rules (YAML): the fleet's incidents raise alarms; the tank drives its pump."""
    text = files("m2mhub.sim").joinpath("demo-rules.yaml").read_text(encoding="utf-8")
    return text.replace("{webhook_url}", webhook_url)


def webhook_receiver(show: Callable[[str], None]) -> FastAPI:
    """A stand-in for another system: shows each webhook the demo's rules send it."""
    receiver = FastAPI(openapi_url=None)

    @receiver.post("/webhook")
    async def receive(request: Request) -> dict[str, str]:
        body = await request.json()
        alarm = body.get("alarm") or {}
        show(
            f"webhook received: {body.get('event')} by rule {body.get('rule')} on "
            f"{body.get('device')} {alarm.get('severity', '')} (signed "
            f"{request.headers.get('x-m2mhub-signature', 'no')[:19]}...)"
        )
        return {}

    return receiver


async def prepare(
    platform: Platform, data_dir: Path, fleet: Fleet, *, webhook_url: str
) -> DemoCredentials:
    """Create what the demo needs, or find it again; returns the credentials to use.

    Idempotent: what exists is kept, what the fleet adds is created, and a device
    whose token was lost (an older credentials file) gets a new one.
    """
    path = data_dir / "demo-credentials.json"
    store, registry = platform.store, platform.registry
    tenant = await store.get_tenant(TENANT)
    saved = (
        msgspec.json.decode(path.read_bytes(), type=DemoCredentials)
        if tenant is not None and path.is_file()
        else None
    )
    if tenant is None:
        tenant = await registry.create_tenant(TENANT, "Demo")
    if saved is None:
        _, admin_key = await registry.create_api_key(tenant.id, "demo admin", Role.ADMIN)
        saved = DemoCredentials(admin_key=admin_key, tokens={})
    if await store.get_user(tenant.id, CONSOLE_USER) is None:
        saved.console_password = new_password()
        await registry.create_user(tenant.id, CONSOLE_USER, Role.ADMIN, saved.console_password)
    types = {t.name: t for t in await store.list_device_types(tenant.id)}
    for name, spec in fleet.types.items():
        if name not in types:
            await registry.create_device_type(
                tenant.id,
                name,
                list(spec.keys),
                strict=spec.strict,
                report_interval_s=spec.report_interval_s,
                methods=spec.methods,
            )
        elif spec.methods and not types[name].methods:
            # A demo made before types declared methods: its pump gets its command form.
            await registry.update_device_type(tenant.id, name, methods=spec.methods)
    pks: dict[str, int] = {}
    for device in fleet.devices:
        try:
            pks[device.id] = (await store.get_device(device.id, tenant_id=tenant.id)).pk
            if device.id not in saved.tokens:
                saved.tokens[device.id] = await registry.rotate_token(tenant.id, device.id)
        except NotFoundError:
            created, token = await registry.create_device(
                tenant.id,
                type_name=device.type,
                name=device.name,
                device_id=device.id,
                labels=dict(device.labels),
            )
            pks[device.id] = created.pk
            saved.tokens[device.id] = token
    for name, members in fleet.groups.items():
        try:
            group = await store.get_group(tenant.id, name)
        except NotFoundError:
            group = await store.create_group(tenant.id, name)
        await store.set_group_members(group.id, add=[pks[d] for d in members])
    for asset in fleet.assets:
        try:
            await store.get_asset(tenant.id, asset.name)
        except NotFoundError:
            made = await store.create_asset(
                tenant.id, asset.name, asset.kind, dict(asset.properties)
            )
            for device_id in asset.devices:
                await store.assign_device(made.id, pks[device_id], now_ms())
    profiled = {p.type_name for p in await fleet_storage.profiles(store, tenant.id)}
    for name, overrides in FLEET_TYPES.items():
        if name in fleet.types and name not in profiled:
            found = await store.get_device_type(tenant.id, name=name)
            await fleet_storage.set_profile(
                store, tenant.id, found.id, dict(overrides), fleet.timezone
            )
    await apply_rule_file(store, demo_rules(webhook_url), source="demo-rules.yaml")
    await _declare_billing(platform, tenant.id, fleet)
    _save(path, saved)
    return saved


async def _declare_billing(platform: Platform, tenant_id: int, fleet: Fleet) -> None:
    """The meters' accounts, tariffs and links, once: later starts keep what people
    changed. A fleet file without the demo's meters gets none."""
    text = files("m2mhub.sim").joinpath("demo-metering.yaml").read_text(encoding="utf-8")
    declarations = parse_declarations(text)
    devices = {device.id for device in fleet.devices}
    if not {str(meter["device"]) for meter in declarations.meters} <= devices:
        return
    service = MeteringService(
        platform.store, holder=platform.holder, audit=platform.audit, webhooks=platform.webhooks
    )
    if await service.storage.list_accounts(tenant_id, limit=1):
        return
    await apply_declarations(service, tenant_id, declarations, Path("."))


def _save(path: Path, credentials: DemoCredentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(msgspec.to_builtins(credentials), indent=2))
    path.chmod(0o600)
