"""A platform that runs fleet processing (the rules role) behind an HTTP client, with a van."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.values import Role, Value
from m2mhub.platform import Platform
from m2mhub.store import Store
from tests.apps.fleet.vans import HOUR
from tests.conftest import Api, drop_schema, new_store, same_database

#: The van's profile: as the core's tests set it, so results compare to theirs.
PROFILE = {"overspeed_kmh": 100, "offline_after_ms": HOUR}
ZONE = "Europe/Amsterdam"
VAN = "van-1"


class Fleet:
    """Opens platforms on one database, one after the other (a restart between them)."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.settings = Settings(data_dir=tmp_path, roles="api,rules")
        self._store, self.schema = new_store(backend, tmp_path)
        self._opened = False

    def next_store(self) -> Store:
        if not self._opened:
            self._opened = True
            return self._store
        return same_database(self._store)


async def open_api(fleet: Fleet) -> tuple[Platform, Api, httpx.AsyncClient]:
    platform = Platform(fleet.settings, store=fleet.next_store())
    await platform.__aenter__()
    app = create_app(fleet.settings, platform=platform)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://m2mhub.test"
    )
    tenant = await platform.store.get_tenant("acme")
    if tenant is None:
        tenant = await platform.registry.create_tenant("acme", "Acme")
    _, admin_key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
    return platform, Api(client, platform, tenant, admin_key), client


@pytest.fixture
async def fleet(backend: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    made = Fleet(backend, tmp_path)
    try:
        yield made
    finally:
        if made.schema:
            drop_schema(made.schema)


@pytest.fixture
async def api(fleet: Fleet) -> AsyncIterator[Api]:
    """The platform with fleet processing, a ``van`` type with a profile and a van."""
    platform, opened, client = await open_api(fleet)
    try:
        await add_van(opened)
        yield opened
    finally:
        await client.aclose()
        await platform.__aexit__(None, None, None)


async def add_van(api: Api, device_id: str = VAN) -> None:
    """The ``van`` type (a fleet profile through the API) and one device of it."""
    types = {t.name for t in await api.platform.store.list_device_types(api.tenant.id)}
    if "van" not in types:
        await api.device_type("van")
        response = await api.client.put(
            "/api/v1/fleet/profiles/van",
            json={"settings": PROFILE, "timezone": ZONE},
            headers=api.admin,
        )
        assert response.status_code == 200, response.text
    await api.new_device(device_id, "van")


async def send(
    api: Api, device_id: str, readings: Sequence[tuple[int, dict[str, Value]]], *, chunk: int = 40
) -> None:
    """Post readings as the device does (HTTP telemetry, its token), then wait for the
    fleet service to have processed them."""
    for i in range(0, len(readings), chunk):
        body = [{"ts": ts, "values": values} for ts, values in readings[i : i + chunk]]
        response = await api.post(device_id, body)
        assert response.status_code in (200, 202), response.text
    await api.platform.fleet.drain()
