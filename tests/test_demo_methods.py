"""The demo declares its fleet's command methods, also on a demo made before they existed."""

from __future__ import annotations

from pathlib import Path

from m2mhub.config import Settings
from m2mhub.demo import TENANT, prepare
from m2mhub.platform import Platform
from m2mhub.sim.fleet import load_fleet


async def test_prepare_declares_the_fleet_s_methods_and_upgrades_an_older_demo(
    tmp_path: Path,
) -> None:
    fleet = load_fleet()
    settings = Settings(data_dir=tmp_path, roles="api", mqtt_enabled=False)
    async with Platform(settings) as platform:
        # A demo tenant from before: its pump type declares no method.
        tenant = await platform.registry.create_tenant(TENANT, "Demo")
        old = fleet.types["pump"]
        await platform.registry.create_device_type(tenant.id, "pump", list(old.keys))
        await prepare(platform, tmp_path, fleet, webhook_url="http://127.0.0.1:9/webhook")
        types = {t.name: t for t in await platform.store.list_device_types(tenant.id)}
        assert types["pump"].methods == fleet.types["pump"].methods
        assert [m.name for m in types["pump"].methods] == ["set_pump"]
        assert types["tank"].methods == ()  # the tank handles no command
        # A second start changes nothing.
        await prepare(platform, tmp_path, fleet, webhook_url="http://127.0.0.1:9/webhook")
        again = await platform.store.get_device_type(tenant.id, name="pump")
        assert again.methods == types["pump"].methods
