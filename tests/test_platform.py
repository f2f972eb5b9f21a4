"""The platform's periodic jobs: rollups and retention, once across processes."""

from __future__ import annotations

from pathlib import Path

from m2mhub.config import Settings
from m2mhub.core.timeutil import now_ms
from m2mhub.platform import Platform
from m2mhub.store.models import KeySpec
from tests.conftest import drop_schema, new_store, same_database


async def test_retention_runs_once_across_processes(backend: str, tmp_path: Path) -> None:
    store, schema = new_store(backend, tmp_path)
    settings = Settings(data_dir=tmp_path, roles="api", retention_interval_s=3600)
    try:
        async with Platform(settings, store=store) as first:
            tenant = await first.registry.create_tenant("acme")
            await first.registry.create_device_type(
                tenant.id, "t", [KeySpec("v")], retention_days=1
            )
            device, _ = await first.registry.create_device(tenant.id, type_name="t", name="d")
            now = now_ms()
            await store.write_readings(
                [(device.pk, now - 2 * 86_400_000, {"v": 1.0}), (device.pk, now, {"v": 2.0})]
            )
            assert await first.run_rollups() == 2
            async with Platform(settings, store=same_database(store)) as second:
                deleted = await first.run_retention()
                assert deleted is not None and deleted["telemetry"] == 1
                assert await second.run_retention() is None  # the lease is held by the first
            assert await store.count_points(device.pk) == 1
    finally:
        if schema:
            drop_schema(schema)
