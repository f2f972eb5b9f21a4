"""Migrations upgrade an existing database in place, keeping its data."""

from __future__ import annotations

from pathlib import Path

from m2mhub.store import PostgresStore, SqliteStore, migrations
from m2mhub.store.models import MethodSpec, ParamSpec, ParamType
from tests.conftest import drop_schema, new_store, same_database

# Rows as version 1 wrote them. Today's code expects the newest schema, so the
# old rows go in as plain SQL.
VERSION_1_ROWS = [
    "INSERT INTO tenants (id, slug, name, created_ms) VALUES (1, 'a', 'A', 0)",
    "INSERT INTO device_types (id, tenant_id, name, keys, strict, report_interval_s, created_ms) "
    "VALUES (1, 1, 'meter', '[]', ?, 60, 0)",
    "INSERT INTO devices (pk, id, tenant_id, type_id, name, token_hash, created_ms) "
    "VALUES (7, 'm1', 1, 1, 'm1', 'h', 0)",
    "INSERT INTO keys (id, name) VALUES (1, 'kwh')",
    "INSERT INTO telemetry (device_pk, ts, key_id, num) VALUES (7, 1764000000000, 1, 2.5)",
]


async def test_upgrade_from_version_1_keeps_data(backend: str, tmp_path: Path) -> None:
    store, schema = new_store(backend, tmp_path)
    try:
        await store.open()
        assert isinstance(store, SqliteStore | PostgresStore)
        assert await store.migrate(target=1) == [1]
        async with store.transaction() as tx:
            for sql in VERSION_1_ROWS:
                await tx.execute(sql, (False,) if "?" in sql else ())
        await store.close()

        reopened = same_database(store)
        async with reopened:  # opens and migrates to the latest version
            assert await reopened.schema_version() == len(migrations.SQLITE)
            device = await reopened.get_device("m1")
            assert (device.pk, device.rejected, device.connected) == (7, 0, None)
            assert await reopened.count_points(7) == 1
            assert await reopened.write_readings([(7, 1_764_000_000_001, {"kwh": 1.0})]) == 1
            assert await reopened.migrate() == []
    finally:
        if schema:
            drop_schema(schema)


def test_backends_have_the_same_number_of_migrations() -> None:
    assert len(migrations.SQLITE) == len(migrations.POSTGRES)


async def test_device_types_made_before_methods_declare_none(backend: str, tmp_path: Path) -> None:
    store, schema = new_store(backend, tmp_path)
    try:
        await store.open()
        assert isinstance(store, SqliteStore | PostgresStore)
        assert await store.migrate(target=8) == list(range(1, 9))
        async with store.transaction() as tx:
            for sql in VERSION_1_ROWS[:2]:
                await tx.execute(sql, (False,) if "?" in sql else ())
        await store.close()

        reopened = same_database(store)
        async with reopened:  # opens and migrates: 9 adds device_types.methods
            assert await reopened.schema_version() == len(migrations.SQLITE)
            meter = await reopened.get_device_type(1, name="meter")
            assert meter.methods == ()
            methods = (MethodSpec("reset", params=(ParamSpec("hard", ParamType.BOOLEAN),)),)
            updated = await reopened.update_device_type(
                1,
                meter.id,
                keys=meter.keys,
                strict=meter.strict,
                report_interval_s=meter.report_interval_s,
                retention_days=None,
                methods=methods,
            )
            assert updated.methods == methods
            assert (await reopened.list_device_types(1))[0].methods == methods
    finally:
        if schema:
            drop_schema(schema)
