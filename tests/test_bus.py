"""The in-process bus: per-subscriber bounded queues, tenant filters."""

from __future__ import annotations

from m2mhub.bus import Bus, ReadingsStored


def event(tenant: int, n: int) -> ReadingsStored:
    return ReadingsStored(tenant_id=tenant, device_pk=1, device_id="d", readings=[(n, {"v": n})])


async def test_slow_subscriber_loses_oldest_events_alone() -> None:
    bus = Bus()
    async with bus.subscribe(maxsize=3) as slow, bus.subscribe(maxsize=100) as fast:
        for n in range(10):
            bus.publish(event(1, n))
        assert slow.dropped == 7 and slow.lag == 3
        assert [(await slow.get()).readings[0][0] for _ in range(3)] == [7, 8, 9]
        assert fast.dropped == 0 and fast.lag == 10
    assert bus.subscribers == 0


async def test_tenant_filter() -> None:
    bus = Bus()
    async with bus.subscribe(tenant_id=2) as mine:
        bus.publish(event(1, 1))
        bus.publish(event(2, 2))
        assert mine.lag == 1
        assert (await mine.get()).tenant_id == 2


async def test_stats_by_name_keep_drops_of_ended_subscriptions() -> None:
    bus = Bus()
    async with bus.subscribe(maxsize=2, name="console") as tab:
        for n in range(5):
            bus.publish(event(1, n))
        assert tab.dropped == 3
    async with bus.subscribe(maxsize=2, name="console"), bus.subscribe(name="rules"):
        bus.publish(event(1, 9))
        stats = bus.stats()
        assert (stats["console"].live, stats["console"].lag, stats["console"].dropped) == (1, 1, 3)
        assert (stats["rules"].live, stats["rules"].lag, stats["rules"].dropped) == (1, 1, 0)
    assert bus.stats()["console"].dropped == 3 and bus.stats()["console"].live == 0
