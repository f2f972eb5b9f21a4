"""A platform running the rules role behind an HTTP client, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.store import Store
from m2mhub.store.models import Alarm
from tests.conftest import Api, same_database


@dataclass
class Clock:
    """The engine's clock: tests move it, nothing sleeps."""

    now: int

    def __call__(self) -> int:
        return self.now


class Hub(Api):
    """An :class:`Api` whose platform runs the rules engine."""

    clock: Clock

    async def rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post("/api/v1/rules", json=rule, headers=self.admin)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def send(self, device_id: str, ts: int, **values: Any) -> None:
        response = await self.post(device_id, {"ts": ts, "values": values})
        assert response.status_code == 200, response.text
        await self.platform.rules.drain()

    async def alarms(self, **filters: str) -> list[Alarm]:
        return await self.platform.store.list_alarms(self.tenant.id, **filters)  # type: ignore[arg-type]

    async def tick(self, at: int) -> None:
        self.clock.now = at
        await self.platform.rules.tick()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    # A tick and a flush every hour: tests drive them with Hub.tick and RulesEngine.flush.
    return Settings(
        **{
            "data_dir": tmp_path,
            "roles": "api,rules",
            "rules_tick_s": 3600,
            "rules_reload_s": 3600,
            "rules_flush_s": 3600,
            **overrides,
        }
    )


@asynccontextmanager
async def open_hub(
    store: Store, tmp_path: Path, clock: Clock, *, first: bool = True, **overrides: Any
) -> AsyncIterator[Hub]:
    """A platform with the rules role on ``store``; ``first`` creates the tenant and key.

    ``overrides`` are settings, e.g. ``roles="api,rules,scheduler"`` to send webhooks.
    """
    settings = settings_for(tmp_path, **overrides)
    async with Platform(settings, store=store) as platform:
        platform.rules.clock = clock
        app = create_app(settings, platform=platform)
        if first:
            tenant = await platform.registry.create_tenant("acme", "Acme")
        else:
            tenant = await platform.registry.tenant("acme")
        _, admin_key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m2mhub.test") as client:
            hub = Hub(client, platform, tenant, admin_key)
            hub.clock = clock
            yield hub


def reopen(store: Store) -> Store:
    """The same database, as a new process would open it."""
    return same_database(store)


def start_time() -> int:
    """A reading time in the recent past, on a whole minute (well inside ingest's limits)."""
    t = now_ms() - 3_600_000
    return t - t % 60_000
