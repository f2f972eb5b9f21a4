"""Migrations upgrade an existing database in place, keeping its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2mhub.store import PostgresStore, SqliteStore, Store, migrations
from m2mhub.store.models import KeySpec
from tests.conftest import drop_schema, new_store


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_upgrade_from_version_1_keeps_data(backend: str, tmp_path: Path) -> None:
    store, schema = new_store(backend, tmp_path)
    try:
        await store.open()
        assert isinstance(store, SqliteStore | PostgresStore)
        assert await store.migrate(target=1) == [1]
        tenant = await store.create_tenant("acme", "Acme")
        device_type = await store.create_device_type(
            tenant.id,
            "meter",
            [KeySpec("kwh")],
            strict=False,
            report_interval_s=60,
            retention_days=None,
        )
        [device] = await store.create_devices(tenant.id, [("m1", device_type.id, "m1", "h", {})])
        await store.close()

        reopened: Store = new_store_like(store)
        async with reopened:  # opens and migrates to the latest version
            assert await reopened.schema_version() == len(migrations.SQLITE)
            assert (await reopened.get_device("m1")).pk == device.pk
            assert (
                await reopened.write_readings([(device.pk, 1_764_000_000_000, {"kwh": 1.0})]) == 1
            )
            assert await reopened.migrate() == []
    finally:
        if schema:
            drop_schema(schema)


def new_store_like(store: Store) -> Store:
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url, schema=store.schema)


def test_backends_have_the_same_number_of_migrations() -> None:
    assert len(migrations.SQLITE) == len(migrations.POSTGRES)
