"""The store contract: every test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import pytest

from m2mhub.core.errors import ConflictError, NotFoundError, StoreError
from m2mhub.core.values import Role
from m2mhub.registry.service import DeviceStatus, Registry
from m2mhub.store import Segment, Store
from m2mhub.store.base import HOUR_MS, MINUTE_MS
from m2mhub.store.models import Device, KeySpec, Tenant
from tests.conftest import same_database

T0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS  # an hour boundary in 2025


async def make_device(store: Store, tenant: Tenant, name: str = "d1", **type_kw: object) -> Device:
    types = {t.name: t for t in await store.list_device_types(tenant.id)}
    device_type = types.get("sensor") or await store.create_device_type(
        tenant.id,
        "sensor",
        [KeySpec("temp")],
        strict=False,
        report_interval_s=60,
        retention_days=type_kw.get("retention_days"),  # type: ignore[arg-type]
    )
    [device] = await store.create_devices(tenant.id, [(name, device_type.id, name, "hash", {})])
    return device


# -- transactions --------------------------------------------------------------------


async def test_a_transaction_that_fails_keeps_nothing_and_the_next_one_runs(
    store: Store, tenant: Tenant
) -> None:
    rename = "UPDATE tenants SET name = ? WHERE id = ?"
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.execute(rename, ("Renamed", tenant.id))
            raise RuntimeError("after the first statement")
    with pytest.raises(StoreError):  # the first statement itself fails: the slug is taken
        async with store.transaction() as tx:
            await tx.execute(
                "INSERT INTO tenants (slug, name, created_ms) VALUES (?, ?, ?)",
                (tenant.slug, "x", 0),
            )
    with pytest.raises(StoreError):  # the same, as a statement of its own
        await store._write(
            "INSERT INTO tenants (slug, name, created_ms) VALUES (?, ?, ?)", (tenant.slug, "x", 0)
        )
    async with store.transaction():
        pass  # nothing to write: nothing written, nothing left open
    assert [(t.slug, t.name) for t in await store.list_tenants()] == [(tenant.slug, tenant.name)]
    assert await store._write(rename, ("Renamed", tenant.id)) == 1
    async with store.transaction() as tx:
        assert await tx.execute(rename, ("Again", tenant.id)) == 1
        assert await tx.fetchone("SELECT name FROM tenants WHERE id = ?", (tenant.id,)) == (
            "Again",
        )
    assert [t.name for t in await store.list_tenants()] == ["Again"]


# -- registry ------------------------------------------------------------------------


async def test_tenant_slug_is_unique(store: Store) -> None:
    await store.create_tenant("acme", "Acme")
    with pytest.raises(ConflictError):
        await store.create_tenant("acme", "Other")
    assert [t.slug for t in await store.list_tenants()] == ["acme"]


async def test_device_creation_is_all_or_nothing(store: Store, tenant: Tenant) -> None:
    device_type = await store.create_device_type(
        tenant.id, "sensor", [], strict=False, report_interval_s=60, retention_days=None
    )
    rows = [(f"d{i}", device_type.id, f"n{i}", "h", {}) for i in range(5)]
    rows.append(("d0", device_type.id, "other", "h", {}))  # id taken by the first row
    with pytest.raises(ConflictError):
        await store.create_devices(tenant.id, rows)
    assert await store.list_devices(tenant.id) == []


async def test_device_lookup_is_scoped_to_its_tenant(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    other = await store.create_tenant("other", "Other")
    assert (await store.get_device(device.id, tenant_id=tenant.id)).pk == device.pk
    with pytest.raises(NotFoundError):
        await store.get_device(device.id, tenant_id=other.id)
    assert await store.list_devices(other.id) == []


async def test_devices_by_id_are_those_of_the_tenant(store: Store, tenant: Tenant) -> None:
    d1 = await make_device(store, tenant, "d1")
    d2 = await make_device(store, tenant, "d2")
    other = await store.create_tenant("other", "Other")
    found = await store.devices_by_id(tenant.id, ["d1", "d2", "missing"])
    assert {k: v.pk for k, v in found.items()} == {"d1": d1.pk, "d2": d2.pk}
    assert await store.devices_by_id(other.id, ["d1"]) == {}


async def test_devices_page_by_name(store: Store, tenant: Tenant) -> None:
    for i in range(7):
        await make_device(store, tenant, f"dev-{i}")
    first = await store.list_devices(tenant.id, limit=3)
    second = await store.list_devices(tenant.id, limit=3, after_name=first[-1].name)
    third = await store.list_devices(tenant.id, limit=3, after_name=second[-1].name)
    names = [d.name for d in first + second + third]
    assert names == [f"dev-{i}" for i in range(7)]


async def test_api_key_revocation(store: Store, tenant: Tenant) -> None:
    await store.create_api_key("k1", tenant.id, "ci", Role.VIEWER, "hash")
    await store.revoke_api_key(tenant.id, "k1")
    key = await store.get_api_key("k1")
    assert key is not None and key.revoked_ms is not None
    with pytest.raises(NotFoundError):
        await store.revoke_api_key(tenant.id, "k1")


async def test_groups_membership(store: Store, tenant: Tenant) -> None:
    a, b = await make_device(store, tenant, "a"), await make_device(store, tenant, "b")
    group = await store.create_group(tenant.id, "north")
    await store.set_group_members(group.id, add=[a.pk, b.pk, a.pk])
    await store.set_group_members(group.id, remove=[b.pk])
    assert await store.device_pks(tenant.id, group_id=group.id) == [a.pk]
    assert [d.name for d in await store.list_devices(tenant.id, group_id=group.id)] == ["a"]


async def test_assignment_moves_a_device_between_assets(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    truck = await store.create_asset(tenant.id, "truck-1", "truck", {"plate": "AB-123"})
    spare = await store.create_asset(tenant.id, "truck-2", "truck", {})
    await store.assign_device(truck.id, device.pk, 1000)
    await store.assign_device(spare.id, device.pk, 5000)
    [first] = await store.assignments(truck.id)
    [second] = await store.assignments(spare.id)
    assert (first.from_ms, first.to_ms) == (1000, 5000)
    assert (second.from_ms, second.to_ms) == (5000, None)
    with pytest.raises(ConflictError):
        await store.assign_device(spare.id, device.pk, 6000)
    await store.unassign_device(spare.id, device.pk, 9000)
    assert (await store.assignments(spare.id))[0].to_ms == 9000


# -- telemetry -----------------------------------------------------------------------


async def test_resent_values_are_not_duplicated(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    readings = [(device.pk, T0 + i * 1000, {"temp": float(i), "ok": True}) for i in range(50)]
    assert await store.write_readings(readings) == 100
    assert await store.write_readings(readings[:10]) == 0
    # Same key and ts with another value: the first write wins.
    assert await store.write_readings([(device.pk, T0, {"temp": 99.0})]) == 0
    assert await store.count_points(device.pk) == 100
    [point] = await store.history([Segment(device.pk, T0, T0 + 1)], keys=["temp"])
    assert point.value == 0.0


async def test_values_keep_their_types(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_readings([(device.pk, T0, {"n": 1.5, "i": 3, "b": False, "s": "on"})])
    latest = (await store.latest([device.pk]))[device.pk]
    assert {k: v for k, (_, v) in latest.items()} == {"n": 1.5, "i": 3.0, "b": False, "s": "on"}


async def test_latest_ignores_late_readings(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_readings([(device.pk, T0 + 5000, {"temp": 5.0})])
    await store.write_readings([(device.pk, T0 + 1000, {"temp": 1.0, "hum": 40.0})])
    latest = (await store.latest([device.pk]))[device.pk]
    assert latest["temp"] == (T0 + 5000, 5.0)
    assert latest["hum"] == (T0 + 1000, 40.0)
    # Within one batch, the newest reading wins whatever the order.
    await store.write_readings(
        [(device.pk, T0 + 9000, {"temp": 9.0}), (device.pk, T0 + 7000, {"temp": 7.0})]
    )
    assert (await store.latest([device.pk], ["temp"]))[device.pk] == {"temp": (T0 + 9000, 9.0)}


async def test_write_marks_device_seen(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    assert device.last_seen_ms is None
    await store.write_readings([(device.pk, T0, {"temp": 1.0})], arrival_ms=T0 + 10)
    assert (await store.get_device(device.id)).last_seen_ms == T0 + 10


async def test_last_seen_moves_at_most_once_a_second_but_at_once_after_a_last_will(
    store: Store, tenant: Tenant
) -> None:
    device = await make_device(store, tenant)

    async def seen_after_reading_at(arrival: int) -> int | None:
        await store.write_readings([(device.pk, arrival - 5, {"temp": 1.0})], arrival_ms=arrival)
        return (await store.get_device(device.id)).last_seen_ms

    assert await seen_after_reading_at(T0) == T0
    assert await seen_after_reading_at(T0 + 400) == T0  # within the second: not written
    assert await seen_after_reading_at(T0 + 1000) == T0 + 1000
    await store.set_connected(device.pk, False, T0 + 1100)  # the last will
    assert await seen_after_reading_at(T0 + 1200) == T0 + 1200
    assert (await store.get_device(device.id)).connected is None  # no longer disconnected
    # The readings themselves were all stored.
    points = await store.history([Segment(device.pk, T0 - 10, T0 + 2000)], keys=["temp"])
    assert [p.ts for p in points] == [T0 - 5, T0 + 395, T0 + 995, T0 + 1195]


async def test_a_device_reporting_every_second_stays_online_despite_the_last_seen_lag(
    store: Store, tenant: Tenant
) -> None:
    device_type = await store.create_device_type(
        tenant.id, "fast", [], strict=False, report_interval_s=1, retention_days=None
    )
    [device] = await store.create_devices(tenant.id, [("f1", device_type.id, "f1", "hash", {})])
    for arrival in (T0, T0 + 999):  # the second reading leaves last-seen at T0
        await store.write_readings([(device.pk, arrival, {"v": 1.0})], arrival_ms=arrival)
    device = await store.get_device(device.id)
    assert device.last_seen_ms == T0
    # 2,020 ms after T0, 1,021 after the last reading: within two intervals of 1 s.
    registry = Registry(store, offline_factor=2.0)
    assert registry.status(device, device_type, now=T0 + 2020) is DeviceStatus.ONLINE
    [change] = await store.presence_changes(now=T0 + 2020, offline_factor=2.0)
    assert change.online
    assert registry.status(device, device_type, now=T0 + 3001) is DeviceStatus.OFFLINE
    [change] = await store.presence_changes(now=T0 + 3001, offline_factor=2.0)
    assert not change.online


async def test_a_batch_of_numbers_strings_and_flags_keeps_the_first_of_each_key(
    store: Store, tenant: Tenant
) -> None:
    device = await make_device(store, tenant)
    await store.write_readings(
        [
            (device.pk, T0 + 1000, {"state": "idle", "temp": 20.5, "on": True, "n": 3}),
            (device.pk, T0 + 1000, {"state": 1.5, "temp": "warm", "on": "yes", "n": False}),
            (device.pk, T0 + 2000, {"state": False, "temp": "hot"}),
        ]
    )
    points = await store.history([Segment(device.pk, T0, T0 + 10**6)])
    stored = {(p.ts, p.key): p.value for p in points}
    assert stored == {
        (T0 + 1000, "state"): "idle",
        (T0 + 1000, "temp"): 20.5,
        (T0 + 1000, "on"): True,
        (T0 + 1000, "n"): 3.0,
        (T0 + 2000, "state"): False,
        (T0 + 2000, "temp"): "hot",
    }
    latest = (await store.latest([device.pk]))[device.pk]
    assert latest == {
        "state": (T0 + 2000, False),
        "temp": (T0 + 2000, "hot"),
        "on": (T0 + 1000, True),
        "n": (T0 + 1000, 3.0),
    }
    # A key that changes kind clears the other columns of its latest value (a value is read
    # from the first column set: number, then string, then flag).
    await store.write_readings([(device.pk, T0 + 3000, {"temp": 30.0, "state": "busy"})])
    await store.write_readings([(device.pk, T0 + 4000, {"n": "three", "state": True})])
    latest = (await store.latest([device.pk], ["temp", "state", "n"]))[device.pk]
    assert latest == {
        "temp": (T0 + 3000, 30.0),
        "state": (T0 + 4000, True),
        "n": (T0 + 4000, "three"),
    }


async def test_latest_of_a_batch_with_one_ts_twice_keeps_the_first(
    store: Store, tenant: Tenant
) -> None:
    device = await make_device(store, tenant)
    await store.write_readings(
        [(device.pk, T0 + 9000, {"temp": 9.0}), (device.pk, T0 + 9000, {"temp": 8.0})]
    )
    assert (await store.latest([device.pk], ["temp"]))[device.pk] == {"temp": (T0 + 9000, 9.0)}
    [point] = await store.history([Segment(device.pk, T0, T0 + 10**6)], keys=["temp"])
    assert point.value == 9.0


async def test_a_large_batch_of_many_devices_is_stored_whole_and_once(
    store: Store, tenant: Tenant
) -> None:
    # More rows and devices than one statement takes, in a number that is not round.
    devices = [await make_device(store, tenant, f"d{i}") for i in range(261)]
    readings = [
        (d.pk, T0 + r * 1000, {"temp": r / 3, "n": r, "on": r % 2 == 0, "s": f"x{r}"})
        for d in devices
        for r in range(3)
    ]
    assert await store.write_readings(readings, arrival_ms=T0 + 10**6) == 4 * len(readings)
    assert await store.write_readings(readings, arrival_ms=T0 + 10**6) == 0
    assert await store.count_points() == 4 * len(readings)
    latest = await store.latest([d.pk for d in devices])
    assert all(
        latest[d.pk]
        == {
            "temp": (T0 + 2000, 2 / 3),
            "n": (T0 + 2000, 2.0),
            "on": (T0 + 2000, True),
            "s": (T0 + 2000, "x2"),
        }
        for d in devices
    )
    seen = [(await store.get_device(d.id)).last_seen_ms for d in devices[::50]]
    assert seen == [T0 + 10**6] * len(seen)


async def test_concurrent_writes_all_land(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await asyncio.gather(
        *(store.write_readings([(device.pk, T0 + i, {"temp": float(i)})]) for i in range(40))
    )
    assert await store.count_points(device.pk) == 40


async def test_history_pages_with_cursor_in_both_orders(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_readings(
        [(device.pk, T0 + i * 1000, {"a": float(i), "b": float(-i)}) for i in range(25)]
    )
    segment = [Segment(device.pk, T0, T0 + 10**9)]
    for descending in (False, True):
        seen: list[tuple[int, str]] = []
        after = None
        while True:
            page = await store.history(segment, after=after, limit=7, descending=descending)
            seen += [(p.ts, p.key) for p in page]
            if len(page) < 7:
                break
            after = await store.cursor_of(page[-1])
        assert len(seen) == 50 and len(set(seen)) == 50
        timestamps = [ts for ts, _ in seen]
        assert timestamps == sorted(timestamps, reverse=descending)
    only_a = await store.history(segment, keys=["a"], limit=100)
    assert {p.key for p in only_a} == {"a"} and len(only_a) == 25
    assert await store.history(segment, keys=["unknown"]) == []


async def test_attributes_keep_newest(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_attributes(device.pk, 2000, {"fw": "1.2", "config": {"rate": 5}})
    await store.write_attributes(device.pk, 1000, {"fw": "1.1"})
    attributes = await store.attributes(device.pk)
    assert attributes == {"config": (2000, {"rate": 5}), "fw": (2000, "1.2")}


# -- aggregates and rollups ------------------------------------------------------------


def brute_force(
    points: list[tuple[int, float]], start: int, end: int, bucket: int
) -> dict[int, tuple]:
    buckets: dict[int, list[tuple[int, float]]] = {}
    for ts, value in points:
        if start <= ts < end:
            buckets.setdefault(ts - ts % bucket, []).append((ts, value))
    result = {}
    for b, items in buckets.items():
        items.sort()
        values = [v for _, v in items]
        result[b] = (
            min(values),
            max(values),
            round(sum(values), 6),
            len(values),
            items[0][1],
            items[-1][1],
        )
    return result


def summary(buckets: list) -> dict[int, tuple]:
    return {b.ts: (b.min, b.max, round(b.sum, 6), b.count, b.first, b.last) for b in buckets}


@pytest.mark.parametrize("bucket", [10_000, MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS])
async def test_aggregates_match_raw_points(store: Store, tenant: Tenant, bucket: int) -> None:
    device = await make_device(store, tenant)
    rng = random.Random(7)
    points = sorted(
        {T0 + rng.randrange(0, 5 * HOUR_MS, 1000): rng.uniform(-5, 30) for _ in range(3000)}.items()
    )
    await store.write_readings([(device.pk, ts, {"temp": v}) for ts, v in points])
    # Ragged edges: the range starts and ends inside hours and minutes.
    start, end = T0 + 17 * MINUTE_MS + 3000, T0 + 4 * HOUR_MS + 41 * MINUTE_MS + 500
    got = await store.aggregate([Segment(device.pk, start, end)], "temp", bucket)
    assert summary(got) == brute_force(points, start, end, bucket)
    # Buckets of whole minutes read rollups, which are brought up to date first.
    assert await store.pending_rollups() == (0 if bucket % MINUTE_MS == 0 else 5)


async def test_rollups_absorb_late_readings(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_readings([(device.pk, T0 + i * 60_000, {"temp": 10.0}) for i in range(60)])
    [hour] = await store.aggregate([Segment(device.pk, T0, T0 + HOUR_MS)], "temp", HOUR_MS)
    assert (hour.count, hour.max) == (60, 10.0)
    # A late reading for the same hour, and a re-sent one: counted once.
    await store.write_readings([(device.pk, T0 + 30_500, {"temp": 50.0})])
    await store.write_readings([(device.pk, T0, {"temp": 10.0})])
    assert await store.pending_rollups() == 1
    assert await store.refresh_rollups() == 1
    [hour] = await store.aggregate([Segment(device.pk, T0, T0 + HOUR_MS)], "temp", HOUR_MS)
    assert (hour.count, hour.max, hour.first, hour.last) == (61, 50.0, 10.0, 10.0)


async def test_aggregates_merge_segments_of_several_devices(store: Store, tenant: Tenant) -> None:
    old, new = await make_device(store, tenant, "old"), await make_device(store, tenant, "new")
    await store.write_readings([(old.pk, T0 + i * 60_000, {"temp": 1.0}) for i in range(120)])
    await store.write_readings([(new.pk, T0 + i * 60_000, {"temp": 3.0}) for i in range(120)])
    swap = T0 + 90 * 60_000
    segments = [Segment(old.pk, T0, swap), Segment(new.pk, swap, T0 + 2 * HOUR_MS)]
    first, second = await store.aggregate(segments, "temp", HOUR_MS)
    assert (first.count, first.avg) == (60, 1.0)
    assert (second.count, second.min, second.max, second.first, second.last) == (
        60,
        1.0,
        3.0,
        1.0,
        3.0,
    )


async def test_aggregate_of_unknown_key_is_empty(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    assert await store.aggregate([Segment(device.pk, T0, T0 + HOUR_MS)], "nope", HOUR_MS) == []


# -- retention and leases --------------------------------------------------------------------


async def test_retention_per_type_and_tenant(store: Store, tenant: Tenant) -> None:
    kept = await make_device(store, tenant, "kept")
    short = await store.create_device_type(
        tenant.id, "short", [], strict=False, report_interval_s=60, retention_days=1
    )
    [expiring] = await store.create_devices(tenant.id, [("exp", short.id, "exp", "h", {})])
    now = T0 + 10 * 86_400_000
    old, recent = now - 3 * 86_400_000, now - 3_600_000
    for device in (kept, expiring):
        await store.write_readings(
            [(device.pk, old, {"temp": 1.0}), (device.pk, recent, {"temp": 2.0})]
        )
    await store.refresh_rollups()
    deleted = await store.apply_retention(now=now, rollup_1m_days=0, rollup_1h_days=0)
    assert deleted["telemetry"] == 1
    assert await store.count_points(kept.pk) == 2
    assert await store.count_points(expiring.pk) == 1
    # Hourly rollups outlive raw data: the old hour still charts.
    [old_hour] = await store.aggregate(
        [Segment(expiring.pk, old - old % HOUR_MS, old + HOUR_MS - old % HOUR_MS)], "temp", HOUR_MS
    )
    assert old_hour.count == 1
    # The tenant's retention applies to types without their own.
    await store.set_tenant_retention(tenant.id, 2)
    await store.apply_retention(now=now, rollup_1m_days=0, rollup_1h_days=0)
    assert await store.count_points(kept.pk) == 1


async def test_lease_has_one_holder(store: Store) -> None:
    assert await store.try_lease("retention", "a", 60_000)
    assert not await store.try_lease("retention", "b", 60_000)
    assert await store.try_lease("retention", "a", 60_000)
    assert await store.try_lease("other", "b", 60_000)


async def test_deleting_a_device_deletes_its_data(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_readings([(device.pk, T0, {"temp": 1.0})])
    await store.delete_device(device.pk)
    assert await store.count_points() == 0
    with pytest.raises(NotFoundError):
        await store.get_device(device.id)


async def test_two_processes_recomputing_the_same_hours(store: Store, tenant: Tenant) -> None:
    device = await make_device(store, tenant)
    await store.write_readings(
        [(device.pk, T0 + i * 1000, {"temp": float(i)}) for i in range(7200)]
    )
    other = same_database(store)
    async with other:
        await asyncio.gather(store.refresh_rollups(), other.refresh_rollups())
    assert await store.pending_rollups() == 0
    hours = await store.aggregate([Segment(device.pk, T0, T0 + 2 * HOUR_MS)], "temp", HOUR_MS)
    assert [h.count for h in hours] == [3600, 3600]
