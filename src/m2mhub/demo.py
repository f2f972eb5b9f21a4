"""The demo: a tenant, device types and a handful of simulated devices on the embedded defaults.

Credentials are kept in ``<data_dir>/demo-credentials.json`` (the store keeps
only hashes), so a second start resumes the same tenant, devices and data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Final

import msgspec

from m2mhub.core.values import Role, ValueType
from m2mhub.platform import Platform
from m2mhub.sim.models import DeviceModel, EnvironmentSensor, Meter, TankLevel
from m2mhub.store.models import KeySpec

TENANT: Final = "demo"

TYPES: Final = {
    "meter": [
        KeySpec("power_kw", ValueType.NUMBER, "kW"),
        KeySpec("energy_kwh", ValueType.NUMBER, "kWh"),
        KeySpec("voltage_v", ValueType.NUMBER, "V"),
    ],
    "environment": [
        KeySpec("temperature_c", ValueType.NUMBER, "°C"),
        KeySpec("humidity_pct", ValueType.NUMBER, "%"),
        KeySpec("door_open", ValueType.BOOL),
    ],
    "tank": [KeySpec("level_pct", ValueType.NUMBER, "%"), KeySpec("pump", ValueType.STRING)],
}

DEVICES: Final = [
    ("meter-001", "meter"),
    ("meter-002", "meter"),
    ("meter-003", "meter"),
    ("room-101", "environment"),
    ("room-102", "environment"),
    ("tank-north", "tank"),
]


class DemoCredentials(msgspec.Struct):
    admin_key: str
    tokens: dict[str, str]  # device id -> token


async def prepare(platform: Platform, data_dir: Path, *, report_interval_s: int) -> DemoCredentials:
    """Create (or find again) the demo tenant, types, devices, group and asset."""
    path = data_dir / "demo-credentials.json"
    if path.is_file() and await platform.store.get_tenant(TENANT):
        return msgspec.json.decode(path.read_bytes(), type=DemoCredentials)
    registry = platform.registry
    tenant = await registry.create_tenant(TENANT, "Demo")
    _, admin_key = await registry.create_api_key(tenant.id, "demo admin", Role.ADMIN)
    for name, keys in TYPES.items():
        await registry.create_device_type(
            tenant.id, name, keys, report_interval_s=report_interval_s
        )
    tokens = {}
    for name, type_name in DEVICES:
        device, token = await registry.create_device(
            tenant.id, type_name=type_name, name=name, device_id=name
        )
        tokens[device.id] = token
    group = await platform.store.create_group(tenant.id, "meters")
    meters = [(await platform.store.get_device(d)).pk for d, t in DEVICES if t == "meter"]
    await platform.store.set_group_members(group.id, add=meters)
    credentials = DemoCredentials(admin_key=admin_key, tokens=tokens)
    _save(path, credentials)
    return credentials


def _save(path: Path, credentials: DemoCredentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(msgspec.to_builtins(credentials), indent=2))
    path.chmod(0o600)


def model_for(device_id: str, rng: random.Random) -> DeviceModel:
    """The physical model behind a demo device."""
    type_name = dict(DEVICES)[device_id]
    if type_name == "meter":
        return Meter(rng)
    if type_name == "environment":
        return EnvironmentSensor(rng)
    return TankLevel(rng)
