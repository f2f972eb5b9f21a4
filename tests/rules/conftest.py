"""Fixtures for rules tests: a hub (platform with the rules role) on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.actions.conftest import FAST, receiver
from tests.conftest import drop_schema, new_store
from tests.rules.helpers import Clock, Hub, open_hub, start_time

__all__ = ["hub", "hub_with_outbox", "receiver"]


@pytest.fixture
async def hub(backend: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A platform running the rules role, on SQLite and on PostgreSQL."""
    store, schema = new_store(backend, tmp_path)
    try:
        async with open_hub(store, tmp_path, Clock(start_time())) as opened:
            await opened.device_type("sensor")
            yield opened
    finally:
        if schema:
            drop_schema(schema)


@pytest.fixture
async def hub_with_outbox(backend: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub that also runs the scheduler role: its outbox sends webhooks and notifications."""
    store, schema = new_store(backend, tmp_path)
    try:
        async with open_hub(
            store, tmp_path, Clock(start_time()), roles="api,rules,scheduler", **FAST
        ) as opened:
            await opened.device_type("sensor")
            yield opened
    finally:
        if schema:
            drop_schema(schema)
