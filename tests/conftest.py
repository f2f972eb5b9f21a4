"""Shared fixtures: a store on each backend, a platform with an HTTP client, a tenant.

PostgreSQL tests use ``M2MHUB_TEST_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/test), each test in a schema of its own.
Without a reachable server they are skipped with a reason, unless
``M2MHUB_REQUIRE_SERVICES=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hypothesis
import psycopg
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.store import PostgresStore, SqliteStore, Store
from m2mhub.store.models import KeySpec, Tenant

POSTGRES_URL = os.environ.get(
    "M2MHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("M2MHUB_REQUIRE_SERVICES") == "1"

# In CI the property tests draw the same examples on every run, so that a landing fails for
# what it changed, not for an old case that a new random draw happened to find; random draws
# (and their explicit @example regressions) run everywhere else.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


_PG_PROBLEM: str | bool | None = False


def require_postgres() -> None:
    """Skip (or, in CI, fail) when PostgreSQL is not reachable."""
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_reachable()
    if _PG_PROBLEM:
        message = f"PostgreSQL at {POSTGRES_URL} not reachable: {_PG_PROBLEM}"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (M2MHUB_REQUIRE_SERVICES=1)")
        pytest.skip(message)


def new_store(backend: str, tmp_path: Path) -> tuple[Store, str | None]:
    """An unopened store; for PostgreSQL also the schema to drop afterwards."""
    if backend == "sqlite":
        return SqliteStore(tmp_path / "m2mhub.db"), None
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    return PostgresStore(POSTGRES_URL, schema=schema), schema


def same_database(store: Store) -> Store:
    """Another, unopened store on the database of ``store``: a second process's view."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url, schema=store.schema)


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        # A connection left in a transaction would block this for ever: fail instead.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using a store runs once per backend."""
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, migrated store."""
    opened, schema = new_store(backend, tmp_path)
    try:
        async with opened:
            yield opened
    finally:
        if schema:
            drop_schema(schema)


@pytest.fixture
async def tenant(store: Store) -> Tenant:
    return await store.create_tenant("acme", "Acme")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Api:
    """A running platform behind an HTTP client, with one tenant and its admin key."""

    client: httpx.AsyncClient
    platform: Platform
    tenant: Tenant
    admin_key: str
    tokens: dict[str, str] = field(default_factory=dict)

    def as_key(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.as_key(self.admin_key)

    def device(self, device_id: str) -> dict[str, str]:
        return self.as_key(self.tokens[device_id])

    async def key(self, role: Role, tenant: Tenant | None = None) -> str:
        _, key = await self.platform.registry.create_api_key(
            (tenant or self.tenant).id, f"{role.value} key", role
        )
        return key

    async def device_type(self, name: str, keys: list[KeySpec] | None = None, **kw: object) -> None:
        await self.platform.registry.create_device_type(self.tenant.id, name, keys or [], **kw)  # type: ignore[arg-type]

    async def new_device(self, name: str, type_name: str = "sensor") -> str:
        device, token = await self.platform.registry.create_device(
            self.tenant.id, type_name=type_name, name=name, device_id=name
        )
        self.tokens[device.id] = token
        return device.id

    async def post(self, device_id: str, body: object) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/devices/{device_id}/telemetry", json=body, headers=self.device(device_id)
        )


@pytest.fixture
async def api(backend: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The REST API on each backend, served in-process over ASGI."""
    settings = Settings(data_dir=tmp_path, roles="api")
    opened, schema = new_store(backend, tmp_path)
    try:
        async with Platform(settings, store=opened) as platform:
            app = create_app(settings, platform=platform)
            tenant = await platform.registry.create_tenant("acme", "Acme")
            _, admin_key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://m2mhub.test"
            ) as client:
                yield Api(client, platform, tenant, admin_key)
    finally:
        if schema:
            drop_schema(schema)
