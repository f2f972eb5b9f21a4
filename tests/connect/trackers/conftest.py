"""A platform serving the tracker protocols on free ports, with one tenant and device type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.connect.trackers.server import TrackerServer
from m2mhub.core.values import Role, Value
from m2mhub.platform import Platform
from m2mhub.store.models import Tenant
from tests.conftest import drop_schema, new_store

#: Short, so that the slow-client test is quick; whole frames arrive far faster.
IDLE_TIMEOUT_S = 1.0


@dataclass
class Trackers:
    platform: Platform
    client: httpx.AsyncClient
    tenant: Tenant
    admin: dict[str, str]

    def server(self, protocol: str) -> TrackerServer:
        return next(s for s in self.platform.trackers if s.protocol.name == protocol)

    async def connect(self, protocol: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.server(protocol).port)

    async def device(self, imei: str) -> str:
        """Registers a tracker whose id is its IMEI; returns its token."""
        _, token = await self.platform.registry.create_device(
            self.tenant.id, type_name="tracker", name=imei, device_id=imei
        )
        return token

    async def latest(self, imei: str) -> dict[str, Value]:
        device = await self.platform.store.get_device(imei)
        latest = await self.platform.store.latest([device.pk])
        return {key: value for key, (_, value) in latest[device.pk].items()}


@pytest.fixture
async def trackers(backend: str, tmp_path: Path) -> AsyncIterator[Trackers]:
    settings = Settings(
        data_dir=tmp_path,
        roles="api,ingest",
        mqtt_enabled=False,
        trackers="teltonika:0,gt06:0",
        tracker_idle_timeout_s=IDLE_TIMEOUT_S,
    )
    opened, schema = new_store(backend, tmp_path)
    try:
        async with Platform(settings, store=opened) as platform:
            tenant = await platform.registry.create_tenant("fleet", "Fleet")
            await platform.registry.create_device_type(tenant.id, "tracker", [])
            _, key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
            app = create_app(settings, platform=platform)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://m2m.test") as client:
                yield Trackers(platform, client, tenant, {"Authorization": f"Bearer {key}"})
    finally:
        if schema:
            drop_schema(schema)
