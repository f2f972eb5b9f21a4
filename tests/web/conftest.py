"""Console fixtures: users of each role, signed-in clients, a live server for streams."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from m2mhub.api.app import create_app
from m2mhub.core.values import Role, ValueType
from m2mhub.store.models import KeySpec
from tests.conftest import Api, free_port

PASSWORD = "correct horse battery"
USERS = {role: f"{role.value}@example.com" for role in Role}


@pytest.fixture
def backend() -> str:
    """The console reads through the same store calls as the API: one backend is enough."""
    return "sqlite"


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert found, "no csrf-token meta in the page"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    """The sign-in form, filled in and sent as a browser does."""
    form = await client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    return await client.post(
        "/console/login",
        data={"email": email, "password": password, "login_token": token.group(1), **extra},
    )


@dataclass
class Console:
    """The API fixture with a device type, two devices and a user of each role."""

    api: Api

    async def client(
        self, role: Role | None, *, base_url: str = "http://m2mhub.test"
    ) -> httpx.AsyncClient:
        """A client on the same app, signed in as the user of ``role`` (None: anonymous)."""
        client = httpx.AsyncClient(transport=self.api.client._transport, base_url=base_url)
        if role is not None:
            response = await sign_in(client, USERS[role])
            assert response.status_code == 303, response.text
        return client

    async def csrf(self, client: httpx.AsyncClient) -> str:
        return csrf_of((await client.get("/console/")).text)


@pytest.fixture
async def console(api: Api) -> Console:
    for role, email in USERS.items():
        await api.platform.registry.create_user(api.tenant.id, email, role, PASSWORD)
    await api.device_type(
        "meter",
        [
            KeySpec("power_kw", ValueType.NUMBER, "kW"),
            KeySpec("voltage_v", ValueType.NUMBER, "V"),
        ],
    )
    await api.new_device("meter-1", "meter")
    await api.new_device("meter-2", "meter")
    return Console(api)


@dataclass
class Live:
    """The console's app served by uvicorn on a loopback port (for streaming responses)."""

    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]


@pytest.fixture
async def live(console: Console) -> AsyncIterator[Live]:
    app = create_app(console.api.platform.settings, platform=console.api.platform)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
