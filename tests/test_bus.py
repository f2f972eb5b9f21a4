"""The in-process bus: per-subscriber bounded queues, tenant filters, listeners."""

from __future__ import annotations

import asyncio
import time

from m2mhub.bus import Bus, BusListener, Event, ReadingsStored


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


async def test_a_device_filter_queues_only_those_devices_events() -> None:
    bus = Bus()
    async with bus.subscribe(device_ids=frozenset({"a"})) as watching:
        bus.publish(ReadingsStored(tenant_id=1, device_pk=1, device_id="a", readings=[]))
        bus.publish(ReadingsStored(tenant_id=1, device_pk=2, device_id="b", readings=[]))
        assert watching.lag == 1 and (await watching.get()).device_id == "a"


async def test_listener_drain_waits_for_queued_and_running_events() -> None:
    bus = Bus()
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: Event) -> None:
        assert isinstance(item, ReadingsStored)
        await gate.wait()
        handled.append(item.readings[0][0])

    listener = BusListener(bus, handle, name="test")
    await listener.start()
    for n in range(3):
        bus.publish(event(1, n))
    draining = asyncio.create_task(listener.drain())
    for _ in range(5):
        await asyncio.sleep(0)  # let both tasks run: the first event holds at the gate
    assert not draining.done() and handled == []
    gate.set()
    await draining
    assert handled == [0, 1, 2]
    await listener.stop()


async def test_listener_counts_a_failure_and_handles_the_next_event_under_its_lock() -> None:
    bus = Bus()
    lock = asyncio.Lock()
    locked: list[bool] = []

    async def handle(item: Event) -> None:
        locked.append(lock.locked())
        assert isinstance(item, ReadingsStored)
        if item.readings[0][0] == 0:
            raise ValueError("refused")

    listener = BusListener(bus, handle, name="test", lock=lock)
    await listener.start()
    bus.publish(event(1, 0))
    bus.publish(event(1, 1))
    await listener.drain()
    assert listener.errors == 1 and locked == [True, True]
    await listener.stop()


async def test_a_stopped_listener_unsubscribes_and_drains_at_once() -> None:
    bus = Bus()
    handled: list[Event] = []

    async def handle(item: Event) -> None:
        handled.append(item)

    listener = BusListener(bus, handle, name="test")
    await listener.start()
    assert bus.subscribers == 1
    await listener.stop()
    assert bus.subscribers == 0
    bus.publish(event(1, 0))
    await listener.drain()
    assert handled == []
    await listener.start()  # it can be started again
    bus.publish(event(1, 1))
    await listener.drain()
    await listener.stop()
    assert len(handled) == 1


async def test_a_listener_with_a_backlog_lets_other_tasks_run() -> None:
    bus = Bus()
    handled: list[int] = []

    async def busy(e: Event) -> None:  # a millisecond of work per event, without awaiting
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
        handled.append(1)

    listener = BusListener(bus, busy, name="busy")
    await listener.start()
    for n in range(50):
        bus.publish(event(1, n))
    seen: list[int] = []

    async def other() -> None:
        seen.append(len(handled))

    task = asyncio.create_task(other())
    await listener.drain()
    await task
    await listener.stop()
    assert len(handled) == 50
    assert seen[0] < 50  # it ran while the backlog was being handled, not after it


async def test_a_listener_queues_only_the_events_it_wants() -> None:
    bus = Bus()
    handled: list[int] = []

    async def handle(item: Event) -> None:
        assert isinstance(item, ReadingsStored)
        handled.append(item.readings[0][0])

    listener = BusListener(bus, handle, name="even", wants=lambda e: e.device_pk % 2 == 0)
    await listener.start()
    for pk in range(4):
        bus.publish(
            ReadingsStored(tenant_id=1, device_pk=pk, device_id=f"d{pk}", readings=[(pk, {})])
        )
    assert bus.stats()["even"].lag == 2  # asked as published: the others were never queued
    await listener.drain()
    await listener.stop()
    assert handled == [0, 2]
