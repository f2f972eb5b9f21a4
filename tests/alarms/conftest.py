"""Fixtures for rules tests: a hub (platform with the rules role) on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import drop_schema, new_store
from tests.rules.helpers import Clock, Hub, open_hub, start_time


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
