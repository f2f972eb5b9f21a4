"""SQLite's write-ahead log is copied into the database beside the writer and starts again."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2mhub.core.timeutil import now_ms
from m2mhub.store import sqlite
from m2mhub.store.models import KeySpec
from m2mhub.store.sqlite import SqliteStore


async def wal_after_writes(path: Path, transactions: int) -> int:
    """Bytes of the WAL after ``transactions`` writes of readings from 5 devices."""
    store = SqliteStore(path)
    await store.open()
    try:
        await store.migrate()
        tenant = await store.create_tenant("acme", "Acme")
        device_type = await store.create_device_type(
            tenant.id,
            "sensor",
            [KeySpec("temp")],
            strict=False,
            report_interval_s=60,
            retention_days=None,
        )
        devices = await store.create_devices(
            tenant.id, [(f"d{i}", device_type.id, f"d{i}", "hash", {}) for i in range(5)]
        )
        ts = now_ms() - 3_600_000
        for n in range(transactions):
            await store.write_readings([(d.pk, ts + n * 1000, {"temp": float(n)}) for d in devices])
        assert await store.count_points(devices[-1].pk) == transactions  # nothing lost
        return (path.parent / (path.name + "-wal")).stat().st_size
    finally:
        await store.close()


async def test_the_wal_starts_again_under_continuous_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "_CHECKPOINT_POLL_S", 3600.0)
    without = await wal_after_writes(tmp_path / "without.db", 300)
    monkeypatch.setattr(sqlite, "_CHECKPOINT_POLL_S", 0.005)
    monkeypatch.setattr(sqlite, "_CHECKPOINT_PAGES", 5)
    monkeypatch.setattr(sqlite, "_WAL_RESTART_PAGES", 10)
    with_checkpoints = await wal_after_writes(tmp_path / "with.db", 300)
    # Without checkpoints the WAL keeps every page of every transaction; with them, it
    # starts again from its beginning once its pages are in the database.
    assert with_checkpoints < without / 3
