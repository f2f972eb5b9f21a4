"""Telemetry acknowledged with HTTP 200 survives ``kill -9`` of the server.

Each test provisions a tenant, a device type and devices, starts ``m2mhub
serve`` as a real process, posts batches with the devices' tokens, kills the
process with SIGKILL (no shutdown handler, nothing flushed), starts it again
on the same database and reads everything back through the API.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from m2mhub.config import Settings
from m2mhub.core.values import Role, ValueType
from m2mhub.registry.service import Registry
from m2mhub.store import open_store
from m2mhub.store.models import KeySpec
from tests.conftest import POSTGRES_URL, require_postgres
from tests.processes import Server, m2mhub_env, serving

#: (device id, ts, key) -> value
Values = dict[tuple[str, int, str], Any]
Batch = list[dict[str, Any]]

READINGS_PER_BATCH = 20
KEYS = ("energy_kwh", "state", "door")


@pytest.fixture
def env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of the server and its database: a SQLite file or a PostgreSQL schema."""
    if backend == "sqlite":
        yield m2mhub_env(tmp_path)
        return
    require_postgres()
    schema = f"kill_{uuid.uuid4().hex[:12]}"
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
    try:
        yield m2mhub_env(tmp_path, M2MHUB_DATABASE_URL=url)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def provision(env: dict[str, str], device_ids: list[str]) -> tuple[str, dict[str, str]]:
    """A tenant, its admin key, a ``meter`` type and devices; (admin key, id -> token)."""
    settings = Settings(
        data_dir=Path(env["M2MHUB_DATA_DIR"]), database_url=env.get("M2MHUB_DATABASE_URL", "")
    )

    async def go() -> tuple[str, dict[str, str]]:
        async with open_store(settings.resolved_database_url()) as store:
            registry = Registry(store)
            tenant = await registry.create_tenant("acme", "Acme")
            _, key = await registry.create_api_key(tenant.id, "admin", Role.ADMIN)
            await registry.create_device_type(
                tenant.id,
                "meter",
                [
                    KeySpec("energy_kwh", ValueType.NUMBER, "kWh"),
                    KeySpec("state", ValueType.STRING),
                    KeySpec("door", ValueType.BOOL),
                ],
            )
            tokens = {}
            for device_id in device_ids:
                _, token = await registry.create_device(
                    tenant.id, type_name="meter", name=device_id, device_id=device_id
                )
                tokens[device_id] = token
            return key, tokens

    return asyncio.run(go())


def make_batch(device: int, number: int, base: int) -> Batch:
    """Batch ``number`` of device ``device``: readings one second apart, every key."""
    batch = []
    for i in range(READINGS_PER_BATCH):
        n = number * READINGS_PER_BATCH + i
        batch.append(
            {
                "ts": base + n * 1000,
                "values": {
                    "energy_kwh": n + device / 8 + 0.125,
                    "state": f"s{n}",
                    "door": n % 3 == 0,
                },
            }
        )
    return batch


def values_of(device_id: str, batch: Batch) -> Values:
    return {(device_id, r["ts"], k): v for r in batch for k, v in r["values"].items()}


def stored(client: httpx.Client, device_id: str, start: int, end: int) -> Values:
    """Every raw value of a device in [start, end), through the paginated history API."""
    found: Values = {}
    params = {"from": str(start), "to": str(end), "limit": "10000"}
    while True:
        response = client.get(f"/api/v1/devices/{device_id}/telemetry", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        for point in page["items"]:
            found[(point["device"], point["ts"], point["key"])] = point["value"]
        if not page["next_cursor"]:
            return found
        params["cursor"] = page["next_cursor"]


def latest(client: httpx.Client, device_id: str) -> dict[str, tuple[int, Any]]:
    response = client.get(f"/api/v1/devices/{device_id}/latest")
    assert response.status_code == 200, response.text
    return {k: (v["ts"], v["value"]) for k, v in response.json()["values"].items()}


def an_hour_ago() -> int:
    return (int(time.time()) - 3600) * 1000


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_acknowledged_batches_survive_kill_9(env: dict[str, str], tmp_path: Path) -> None:
    devices = [f"meter-{i}" for i in range(4)]
    key, tokens = provision(env, devices)
    base = an_hour_ago()
    batches = {d: [make_batch(i, n, base) for n in range(15)] for i, d in enumerate(devices)}

    async def post_all(server: Server) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def device_posts(device_id: str) -> None:
                headers = {"Authorization": f"Bearer {tokens[device_id]}"}
                for batch in batches[device_id]:
                    response = await client.post(
                        f"/api/v1/devices/{device_id}/telemetry", json=batch, headers=headers
                    )
                    assert response.status_code == 200, response.text
                    assert response.json()["accepted_readings"] == READINGS_PER_BATCH

            # The devices post at once, so the server commits their batches together.
            await asyncio.gather(*(device_posts(d) for d in devices))

    with serving(env, tmp_path / "serve.log") as server:
        asyncio.run(post_all(server))
        server.kill()  # right after the last 200

    end = base + 15 * READINGS_PER_BATCH * 1000
    with serving(env, tmp_path / "serve.log") as server, server.client(key) as client:
        for device_id in devices:
            sent: Values = {}
            for batch in batches[device_id]:
                sent |= values_of(device_id, batch)
            assert stored(client, device_id, base, end) == sent
            last = batches[device_id][-1][-1]
            assert latest(client, device_id) == {
                k: (last["ts"], v) for k, v in last["values"].items()
            }


@pytest.mark.slow
def test_kill_9_with_batches_in_flight_keeps_every_acknowledged_batch_whole(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Killed mid-stream: acknowledged batches are all there, the others all or nothing."""
    devices = [f"meter-{i}" for i in range(8)]
    key, tokens = provision(env, devices)
    base = an_hour_ago()
    sent: dict[str, list[Batch]] = {d: [] for d in devices}
    acked: dict[str, list[Batch]] = {d: [] for d in devices}

    async def post_until_killed(server: Server, kill_after: int) -> None:
        killed = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def device_posts(index: int, device_id: str) -> None:
                headers = {"Authorization": f"Bearer {tokens[device_id]}"}
                while not killed.is_set():
                    batch = make_batch(index, len(sent[device_id]), base)
                    sent[device_id].append(batch)
                    try:
                        response = await client.post(
                            f"/api/v1/devices/{device_id}/telemetry", json=batch, headers=headers
                        )
                    except httpx.TransportError:
                        return  # the server died with this batch in flight
                    assert response.status_code == 200, response.text
                    acked[device_id].append(batch)
                    if sum(map(len, acked.values())) >= kill_after and not killed.is_set():
                        server.process.kill()  # SIGKILL while other batches are in flight
                        killed.set()

            await asyncio.gather(*(device_posts(i, d) for i, d in enumerate(devices)))

    with serving(env, tmp_path / "serve.log") as server:
        asyncio.run(post_until_killed(server, kill_after=80))
        server.process.wait(timeout=10)

    assert sum(map(len, acked.values())) >= 80
    with serving(env, tmp_path / "serve.log") as server, server.client(key) as client:
        for device_id in devices:
            end = base + (len(sent[device_id]) + 1) * READINGS_PER_BATCH * 1000
            found = stored(client, device_id, base, end)
            for number, batch in enumerate(sent[device_id]):
                expected = values_of(device_id, batch)
                kept = {k: v for k, v in found.items() if k in expected}
                if number < len(acked[device_id]):
                    assert kept == expected, f"{device_id}: acknowledged batch {number} lost"
                else:
                    assert kept in ({}, expected), f"{device_id}: batch {number} stored in part"
            sent_values: Values = {}
            for batch in sent[device_id]:
                sent_values |= values_of(device_id, batch)
            assert found.items() <= sent_values.items(), "values nobody sent"
            if found:
                newest = max(ts for _, ts, _ in found)
                assert latest(client, device_id) == {
                    key_: (newest, found[(device_id, newest, key_)]) for key_ in KEYS
                }


def test_rejected_batches_store_nothing_and_earlier_data_stays(
    env: dict[str, str], tmp_path: Path
) -> None:
    device_id = "meter-0"
    key, tokens = provision(env, [device_id])
    headers = {"Authorization": f"Bearer {tokens[device_id]}"}
    base = an_hour_ago()
    accepted = make_batch(0, 0, base)
    # Later timestamps than the accepted batch: any of them leaking would move latest.
    rejected: list[tuple[Batch, str]] = []
    for number, (index, values, field) in enumerate(
        [
            (3, {"energy_kwh": None}, "[3].values.energy_kwh"),  # null is not a value
            (2, {"energy_kwh": "lots"}, "[2].values.energy_kwh"),  # the type says number
            (4, {"door": "open"}, "[4].values.door"),  # the type says bool
        ],
        start=1,
    ):
        batch = make_batch(0, number, base)
        batch[index]["values"] |= values
        rejected.append((batch, field))
    in_seconds = make_batch(0, 4, base)
    in_seconds[1]["ts"] //= 1000
    rejected.append((in_seconds, "[1].ts"))

    with serving(env, tmp_path / "serve.log") as server, server.client() as client:
        url = f"/api/v1/devices/{device_id}/telemetry"
        assert client.post(url, json=accepted, headers=headers).status_code == 200
        for batch, field in rejected:
            response = client.post(url, json=batch, headers=headers)
            assert response.status_code == 422, response.text
            assert response.json()["error"]["field"] == field
        response = client.post(url, content=b'[{"ts": 1, "values": {', headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "body"
        server.kill()

    with serving(env, tmp_path / "serve.log") as server, server.client(key) as client:
        end = base + 5 * READINGS_PER_BATCH * 1000
        assert stored(client, device_id, 0, end) == values_of(device_id, accepted)
        last = accepted[-1]
        assert latest(client, device_id) == {k: (last["ts"], v) for k, v in last["values"].items()}
