"""A real platform and a real broker for the device SDK: the embedded one, or a Mosquitto.

``hub`` runs each test against both broker modes (on SQLite: the store is not
what these tests are about). ``Hub.broker_down()`` and ``broker_up()`` stop and
start the broker itself.

With the embedded broker, devices reach it through a ``Doorway``: a TCP
forwarder that lets them in again only once the platform's subscriber is back.
The embedded broker keeps no session of the platform's across a restart, so a
message a device published before the platform subscribed again would be
acknowledged and lost; that is the broker's restart, not what the SDK is tested for.
Mosquitto keeps the platform's persistent session, and devices connect to it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.values import Role
from m2mhub.device import DeviceClient
from m2mhub.platform import Platform
from m2mhub.store import Segment, SqliteStore
from m2mhub.store.models import KeySpec
from tests.conftest import free_port
from tests.mosquitto import Mosquitto, start_mosquitto

DEADLINE_S = 15.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds, failing after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.02)


class Doorway:
    """A TCP forwarder on a port of its own; shut, it closes every connection and listens
    no more (a client then gets "connection refused")."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._writers.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pipes = {
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        }
        self._pipes |= pipes
        # Either side closing closes both.
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes -= pipes
        for side in (writer, up_writer):
            side.close()
            self._writers.discard(side)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@dataclass
class Hub:
    """A running platform with one tenant, its admin key and a way to stop its broker."""

    mode: str
    platform: Platform
    client: httpx.AsyncClient
    admin: dict[str, str]
    port: int  # where devices connect
    mosquitto: Mosquitto | None = None
    doorway: Doorway | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    async def device(self, device_id: str) -> str:
        """Create a device of type "sensor"; its token."""
        tenant = await self.platform.store.get_tenant("acme")
        assert tenant is not None
        device, token = await self.platform.registry.create_device(
            tenant.id, type_name="sensor", name=device_id, device_id=device_id
        )
        self.tokens[device.id] = token
        return token

    def sdk(self, device_id: str, **options: Any) -> DeviceClient:
        """A client for the device, retrying fast (tests wait for reconnections)."""
        options = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.5, **options}
        return DeviceClient(
            device_id, self.tokens[device_id], host="127.0.0.1", port=self.port, **options
        )

    async def points(self, device_id: str) -> list[tuple[int, str, Any]]:
        """Every stored value of the device: (ts, key, value), in time order."""
        device = await self.platform.store.get_device(device_id)
        history = await self.platform.store.history([Segment(device.pk, 0, 2**62)], limit=100_000)
        return [(p.ts, p.key, p.value) for p in history]

    async def get(self, path: str) -> Any:
        response = await self.client.get(path, headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()

    async def broker_down(self) -> None:
        if self.mosquitto is not None:
            await asyncio.to_thread(self.mosquitto.stop)
            return
        assert self.doorway is not None and self.platform.broker is not None
        await self.doorway.shut()
        await self.platform.broker.stop()

    async def broker_up(self) -> None:
        if self.mosquitto is not None:
            await asyncio.to_thread(self.mosquitto.restart)
            return
        assert self.doorway is not None and self.platform.broker is not None
        transport = self.platform.mqtt
        assert transport is not None

        async def subscriber_gone() -> bool:
            return not transport.connected.is_set()

        await eventually(subscriber_gone, "the platform sees its broker gone")
        await self.platform.broker.start()
        await asyncio.wait_for(transport.connected.wait(), DEADLINE_S)
        await self.doorway.open()


@pytest.fixture(params=["embedded", "mosquitto"])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    mosquitto = None
    if request.param == "mosquitto":
        mosquitto = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto")
        request.addfinalizer(mosquitto.stop)
        mqtt: dict[str, Any] = {
            "mqtt_url": f"mqtt://127.0.0.1:{mosquitto.port}",
            "mqtt_username": mosquitto.admin,
            "mqtt_password": mosquitto.password,
            "mqtt_client_id": f"m2mhub-test-{tmp_path.name}",
        }
    else:
        mqtt = {"mqtt_port": free_port()}
    settings = Settings(data_dir=tmp_path, roles="api,ingest", **mqtt)
    async with Platform(settings, store=SqliteStore(tmp_path / "m2mhub.db")) as platform:
        tenant = await platform.registry.create_tenant("acme")
        await platform.registry.create_device_type(
            tenant.id, "sensor", [KeySpec("temp")], report_interval_s=60
        )
        _, key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
        app = create_app(settings, platform=platform)
        transport = httpx.ASGITransport(app=app)
        doorway = None
        if mosquitto is None:
            doorway = Doorway(settings.mqtt_port)
            await doorway.open()
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                yield Hub(
                    request.param,
                    platform,
                    client,
                    {"Authorization": f"Bearer {key}"},
                    mosquitto.port if mosquitto else doorway.port,  # type: ignore[union-attr]
                    mosquitto,
                    doorway,
                )
        finally:
            if doorway is not None:
                await doorway.shut()
