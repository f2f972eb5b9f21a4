"""The platform's periodic jobs: retention and presence, once across processes."""

from __future__ import annotations

from pathlib import Path

from m2mhub.bus import PresenceChanged
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


async def test_presence_changes_are_announced_once(backend: str, tmp_path: Path) -> None:
    store, schema = new_store(backend, tmp_path)
    settings = Settings(data_dir=tmp_path, roles="api", offline_factor=2)
    try:
        async with Platform(settings, store=store) as first:
            tenant = await first.registry.create_tenant("acme")
            await first.registry.create_device_type(
                tenant.id, "t", [KeySpec("v")], report_interval_s=60
            )
            device, _ = await first.registry.create_device(tenant.id, type_name="t", name="d")
            async with first.bus.subscribe() as events:
                assert await first.announce_presence() == 0  # never heard from: no presence
                now = now_ms()
                await first.writer.write([(device.pk, now, {"v": 1.0})], arrival_ms=now)
                assert await first.announce_presence(now=now + 1000) == 1
                assert await first.announce_presence(now=now + 2000) == 0  # nothing new
                # Silent for more than 2 report intervals of 60 s (and the second last-seen
                # may lag): offline, once, even when a second process looks at the same moment.
                async with Platform(settings, store=same_database(store)) as second:
                    assert await first.announce_presence(now=now + 121_000) == 0
                    assert await first.announce_presence(now=now + 121_001) == 1
                    assert await second.announce_presence(now=now + 122_000) == 0
                announced = [events.queue.get_nowait() for _ in range(events.lag)]
            assert [(e.online, e.reason) for e in announced if isinstance(e, PresenceChanged)] == [
                (True, "reporting"),
                (False, "silent"),
            ]
            stored = await store.events(device.pk, 0, now + 200_000, kind="presence")
            assert [e.data for e in stored] == [
                {"online": False, "reason": "silent"},
                {"online": True, "reason": "reporting"},
            ]
    finally:
        if schema:
            drop_schema(schema)
