"""Group commit: concurrent submissions share transactions; failures reach every waiter."""

from __future__ import annotations

import asyncio

import pytest

from m2mhub.core.errors import StoreError
from m2mhub.ingest.batching import BatchWriter
from m2mhub.store import Store
from m2mhub.store.models import Tenant
from tests.store.test_contract import T0, make_device


async def test_concurrent_writes_are_coalesced(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    writer = BatchWriter(store)
    await writer.start()
    try:
        await asyncio.gather(
            *(
                writer.write([(device.pk, T0 + i, {"t": float(i)})], arrival_ms=T0)
                for i in range(200)
            )
        )
    finally:
        await writer.stop()
    assert await store.count_points(device.pk) == 200
    assert writer.rows_written == 200
    assert writer.transactions < 200


async def test_a_failed_transaction_fails_every_waiter(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    writer = BatchWriter(store)
    await writer.start()
    await store.close()  # the next write cannot succeed
    try:
        results = await asyncio.gather(
            *(writer.write([(device.pk, T0 + i, {"t": 1.0})], arrival_ms=T0) for i in range(5)),
            return_exceptions=True,
        )
    finally:
        await writer.stop()
        await store.open()
    assert all(isinstance(r, StoreError) for r in results), results


async def test_write_before_start_is_refused(store: Store) -> None:
    with pytest.raises(RuntimeError, match="start"):
        await BatchWriter(store).write([], arrival_ms=0)
