"""The live event stream (Server-Sent Events) over a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx

from m2mhub.core.values import Role
from tests.web.conftest import USERS, Console, Live, sign_in

DEADLINE_S = 10


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs, and ("", comment) for comment lines, as they arrive."""
    kind, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "", line[1:].strip()
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            yield kind, data
            kind, data = "", ""


async def _next(events: AsyncIterator[tuple[str, str]], wanted: str) -> str:
    async with asyncio.timeout(DEADLINE_S):
        async for kind, data in events:
            if kind == wanted:
                return data
    raise AssertionError(f"the stream ended before a {wanted!r} event")


@contextlib.asynccontextmanager
async def _signed_in(live: Live, role: Role) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=DEADLINE_S) as client:
        response = await sign_in(client, USERS[role])
        assert response.status_code == 303
        yield client


async def test_a_reading_posted_over_http_arrives_on_the_stream(
    console: Console, live: Live
) -> None:
    async with (
        _signed_in(live, Role.VIEWER) as client,
        client.stream("GET", "/api/v1/stream?device=meter-1") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        await _next(events, "ready")
        await console.api.post("meter-2", {"power_kw": 9})  # another device: filtered out
        posted = await client.post(
            "/api/v1/devices/meter-1/telemetry",
            json={"ts": 1_700_000_000_000, "values": {"power_kw": 42.5}},
            headers=console.api.device("meter-1"),
        )
        assert posted.status_code == 200
        data = json.loads(await _next(events, "readings_stored"))
        assert data == {
            "device_id": "meter-1",
            "readings": [[1_700_000_000_000, {"power_kw": 42.5}]],
        }


async def test_the_stream_filters_event_types_and_tenants(console: Console, live: Live) -> None:
    api = console.api
    other = await api.platform.registry.create_tenant("other")
    await api.platform.registry.create_device_type(other.id, "meter", [])
    foreign, token = await api.platform.registry.create_device(
        other.id, type_name="meter", name="foreign", device_id="foreign"
    )
    async with _signed_in(live, Role.OPERATOR) as client:
        refused = await client.get("/api/v1/stream?device=foreign")
        assert refused.status_code == 404  # another tenant's device does not exist here
        bad = await client.get("/api/v1/stream?events=everything")
        assert bad.status_code == 422
        async with client.stream("GET", "/api/v1/stream?events=alarm_changed") as response:
            events = _events(response)
            await _next(events, "ready")
            await client.post(
                "/api/v1/devices/foreign/telemetry", json={"x": 1}, headers=api.as_key(token)
            )
            await api.post("meter-1", {"power_kw": 1})  # a reading: not asked for
            device = await api.platform.store.get_device("meter-1")
            await api.platform.alarms.raise_alarm(
                tenant_id=api.tenant.id,
                rule_id=1,
                rule_name="hot",
                device_pk=device.pk,
                device_id="meter-1",
                type="overload",
                severity="major",
                message="hot",
                details={},
                actor="rule:1",
            )
            async with asyncio.timeout(DEADLINE_S):
                async for kind, data in events:  # noqa: B007 (used after the loop)
                    if kind:  # the first event that is not a heartbeat
                        break
            assert kind == "alarm_changed"
            assert json.loads(data)["change"] == "raised"
    assert foreign.tenant_id == other.id


async def test_the_stream_needs_a_session_or_a_key(console: Console, live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        assert (await anonymous.get("/api/v1/stream")).status_code == 401
        async with anonymous.stream("GET", "/api/v1/stream", headers=console.api.admin) as response:
            assert response.status_code == 200
            assert await _next(_events(response), "ready")


async def test_an_idle_stream_sends_heartbeats(console: Console, live: Live) -> None:
    platform = console.api.platform
    platform.settings = platform.settings.model_copy(update={"stream_heartbeat_s": 0.2})
    async with (
        _signed_in(live, Role.VIEWER) as client,
        client.stream("GET", "/api/v1/stream") as response,
    ):
        events = _events(response)
        await _next(events, "ready")
        async with asyncio.timeout(DEADLINE_S):
            comments = [data async for kind, data in _take(events, 2)]
        assert comments == ["keep-alive", "keep-alive"]


async def _take(events: AsyncIterator[tuple[str, str]], n: int) -> AsyncIterator[tuple[str, str]]:
    for _ in range(n):
        yield await anext(events)


async def test_open_streams_end_when_the_server_stops(console: Console, live: Live) -> None:
    """uvicorn waits for open responses before stopping: streams must end by themselves."""
    async with (
        _signed_in(live, Role.VIEWER) as client,
        client.stream("GET", "/api/v1/stream") as response,
    ):
        events = _events(response)
        await _next(events, "ready")
        live.server.should_exit = True
        async with asyncio.timeout(5):
            async for _ in events:
                pass  # the stream ends: the server closed it
        async with asyncio.timeout(5):
            await live.task
