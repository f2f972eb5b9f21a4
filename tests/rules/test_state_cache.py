"""Saving rule state: changes that matter at once, a newer ``last_ts`` alone at the flush.

Most readings change nothing in a rule's state but the newest reading time. Those are
kept in memory and written in batches at each flush (``rules_flush_s``) and on stop; a
crash loses at most a flush interval of them, and the readings delivered again afterwards
fire nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from m2mhub.bus import ReadingsStored
from m2mhub.core.values import Value
from m2mhub.rules.conditions import RuleState, decode_state
from m2mhub.store import Store
from tests.conftest import drop_schema, new_store
from tests.rules.helpers import Clock, Hub, open_hub, reopen, start_time

HOT = {
    "name": "hot",
    "scope": {"device": "t1"},
    "condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 75}},
    "actions": [{"alarm": {}}, {"command": {"device": "t1", "method": "cool"}}],
    "clear_actions": [{"command": {"device": "t1", "method": "stop"}}],
}


def count_saves(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[int]:
    """Count the one-state saves (one transaction each) the engine makes."""
    calls: list[int] = []
    save = store.save_rule_state

    async def counted(rule_id: int, device_pk: int, state: str, *, version: int) -> bool:
        calls.append(rule_id)
        return await save(rule_id, device_pk, state, version=version)

    monkeypatch.setattr(store, "save_rule_state", counted)
    return calls


async def stored(hub: Hub) -> tuple[RuleState, int]:
    """The saved state of the only rule for t1, and its version."""
    [(text, version)] = (
        await hub.platform.store.versioned_rule_states(list(hub.platform.rules.rules))
    ).values()
    return decode_state(text), version


async def deliver(hub: Hub, ts: int, **values: Value) -> None:
    """Committed readings of t1, as ingest announces them (again, after a crash)."""
    device = await hub.platform.store.get_device("t1")
    await hub.platform.rules.handle(
        ReadingsStored(device.tenant_id, device.pk, device.id, [(ts, values)])
    )


async def fired(hub: Hub) -> tuple[list[tuple[str, int]], list[str]]:
    """(status, count) of each alarm, and the methods of the commands sent to t1."""
    store = hub.platform.store
    alarms = [(a.status, a.count) for a in await hub.alarms()]
    commands = await store.list_commands((await store.get_device("t1")).pk)
    return alarms, sorted(c.method for c in commands)


async def test_readings_that_only_move_last_ts_are_saved_at_the_flush(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    t = hub.clock.now
    saves = count_saves(monkeypatch, hub.platform.store)
    await hub.send("t1", t, temp=85)  # turns on: saved before the alarm is raised
    assert len(saves) == 2  # the state, then the alarm id it got
    (state, version) = await stored(hub)
    assert (state.active, state.last_ts) == (True, t)
    for i in range(1, 6):  # still on, hysteresis side unchanged: only last_ts moves
        await hub.send("t1", t + i * 1000, temp=[86, 79, 90, 77, 88][i - 1])
    assert len(saves) == 2
    assert await stored(hub) == (state, version)  # the stored row lags ...
    [rule_id] = hub.platform.rules.rules
    device = await hub.platform.store.get_device("t1")
    cached = hub.platform.rules.state(rule_id, device.pk)
    assert cached is not None and cached.last_ts == t + 5000  # ... memory has the newest
    # The late-data policy holds on the newest in memory: not newer than t + 5000, skipped.
    await hub.send("t1", t + 3500, temp=70)
    assert hub.platform.rules.trace(rule_id)[0].note == "skipped: out of order"
    assert await fired(hub) == ([("active", 1)], ["cool"])
    # The timer does not write it ...
    await hub.tick(t + 6000)
    assert await stored(hub) == (state, version)
    # ... the flush does, in a batch, over the version this process has.
    await hub.platform.rules.flush()
    assert len(saves) == 2
    saved, after = await stored(hub)
    assert (saved.active, saved.last_ts, after) == (True, t + 5000, version + 1)
    await hub.platform.rules.flush()  # nothing new: nothing written
    assert (await stored(hub))[1] == version + 1
    # A change that matters is saved at once, with the newest last_ts in memory.
    await hub.send("t1", t + 8000, temp=86)
    await hub.send("t1", t + 9000, temp=70)
    assert len(saves) == 4  # t + 8000 kept in memory; the clear, then its alarm id
    saved, _ = await stored(hub)
    assert (saved.active, saved.last_ts) == (False, t + 9000)
    assert await fired(hub) == ([("cleared", 1)], ["cool", "stop"])


async def test_stop_saves_what_memory_holds(backend: str, tmp_path: Path) -> None:
    store, schema = new_store(backend, tmp_path)
    clock = Clock(start_time())
    t = clock.now
    try:
        async with open_hub(store, tmp_path, clock) as hub:
            await hub.device_type("sensor")
            await hub.new_device("t1")
            await hub.rule(HOT)
            await hub.send("t1", t, temp=70)
            await hub.send("t1", t + 1000, temp=71)
            assert await hub.platform.store.rule_states(list(hub.platform.rules.rules)) == {}
        async with open_hub(reopen(store), tmp_path, clock, first=False) as hub:
            state, version = await stored(hub)
            assert (state.last_ts, version) == (t + 1000, 1)
    finally:
        if schema:
            drop_schema(schema)


async def no_flush() -> None:
    """What a killed process saves on its way out: nothing."""


@pytest.mark.parametrize("restarts", [1, 2])
async def test_readings_delivered_again_after_a_crash_fire_nothing_twice(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarts: int
) -> None:
    store, schema = new_store(backend, tmp_path)
    clock = Clock(start_time())
    t = clock.now
    # Each reading: off -> on (fires), three that only move last_ts (79 and 77 stay on:
    # hysteresis), on -> off (fires), then two that only move last_ts again.
    readings = [(t, 85), (t + 1000, 86), (t + 2000, 79), (t + 3000, 77), (t + 4000, 70)]
    readings += [(t + 5000, 72), (t + 6000, 60)]
    transitions = {t, t + 4000}
    expected = ([("cleared", 1)], ["cool", "stop"])

    async def process(job: Callable[[Hub], Awaitable[Any]], first: bool = False) -> None:
        """One process's life, ended by a crash: the newest last_ts is never flushed."""
        async with open_hub(store if first else reopen(store), tmp_path, clock, first=first) as hub:
            monkeypatch.setattr(hub.platform.rules, "flush", no_flush)
            await job(hub)

    try:

        async def setup(hub: Hub) -> None:
            await hub.device_type("sensor")
            await hub.new_device("t1")
            await hub.rule(HOT)
            for ts, temp in readings:
                await deliver(hub, ts, temp=temp)
            assert await fired(hub) == expected
            # Saved: every change that mattered, with its reading's time; the rest in memory.
            state, _ = await stored(hub)
            assert (state.active, state.last_ts) == (False, t + 4000)

        await process(setup, first=True)
        for _ in range(restarts):

            async def again(hub: Hub) -> None:
                # The same readings again (a broker redelivering what was not acknowledged).
                for ts, temp in readings:
                    await deliver(hub, ts, temp=temp)
                assert await fired(hub) == expected
                [rule_id] = hub.platform.rules.rules
                trace = list(reversed(hub.platform.rules.trace(rule_id)))
                skipped = {e.ts for e in trace if e.note == "skipped: out of order"}
                evaluated = [e for e in trace if e.note is None]
                # Those that changed the state were saved: not newer, skipped.
                assert transitions <= skipped
                # Only those that changed nothing but last_ts are evaluated again, to the
                # same nothing.
                assert {e.ts for e in evaluated} == {t + 5000, t + 6000}
                assert all(e.transition is None and not e.active for e in evaluated)

            await process(again)
        # A later process that stops cleanly saves the newest, and nothing fires on.
        async with open_hub(reopen(store), tmp_path, clock, first=False) as hub:
            for ts, temp in readings:
                await deliver(hub, ts, temp=temp)
            assert await fired(hub) == expected
        async with open_hub(reopen(store), tmp_path, clock, first=False) as hub:
            state, _ = await stored(hub)
            assert (state.active, state.last_ts, state.alarm_id) == (False, t + 6000, None)
            await deliver(hub, t + 6000, temp=99)
            assert await fired(hub) == expected
    finally:
        if schema:
            drop_schema(schema)


async def test_a_reading_that_changes_nothing_is_traced_as_a_full_evaluation(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    t = hub.clock.now
    await hub.send("t1", t, temp=85)  # on
    await hub.send("t1", t + 1000, temp=79)  # stays on (hysteresis): only last_ts moves
    await hub.send("t1", t + 2000, temp=81)
    await hub.send("t1", t + 1500, temp=70)  # out of order
    [rule_id] = hub.platform.rules.rules
    newest = hub.platform.rules.trace(rule_id)[:3]
    assert [msgspec.to_builtins(e) for e in newest] == [
        {
            "at": hub.clock.now,
            "device": "t1",
            "ts": t + 1500,
            "trigger": "reading",
            "inputs": {},
            "result": None,
            "active": True,
            "transition": None,
            "actions": [],
            "note": "skipped: out of order",
        },
        {
            "at": hub.clock.now,
            "device": "t1",
            "ts": t + 2000,
            "trigger": "reading",
            "inputs": {"temp": 81.0},
            "result": True,
            "active": True,
            "transition": None,
            "actions": [],
            "note": None,
        },
        {
            "at": hub.clock.now,
            "device": "t1",
            "ts": t + 1000,
            "trigger": "reading",
            "inputs": {"temp": 79.0},
            "result": True,
            "active": True,
            "transition": None,
            "actions": [],
            "note": None,
        },
    ]
    listed = (await hub.client.get("/api/v1/rules/hot/trace", headers=hub.admin)).json()
    assert listed[1]["inputs"] == {"temp": 81.0} and listed[1]["result"] is True


async def test_events_are_evaluated_while_a_flush_is_written(hub: Hub) -> None:
    """The flush writes without holding up evaluation; a save that meets this process's
    own flush of the same state saves over it, without counting it as another process."""
    engine, store = hub.platform.rules, hub.platform.store
    await hub.new_device("t1")
    await hub.rule(HOT)
    [rule_id] = engine.rules
    device = await store.get_device("t1")
    t = hub.clock.now

    def reading(ts: int, temp: float) -> ReadingsStored:
        return ReadingsStored(device.tenant_id, device.pk, device.id, [(ts, {"temp": temp})])

    await hub.send("t1", t, temp=70)
    await engine.flush()
    await deliver(hub, t + 1000, temp=71)  # only last_ts: for the next flush
    async with store.transaction() as tx:
        # Hold the row (PostgreSQL) or the writer (SQLite): the flush cannot write yet.
        await tx.execute(
            "UPDATE rule_state SET updated_ms = updated_ms WHERE rule_id = ?", [rule_id]
        )
        flush = asyncio.create_task(engine.flush())
        await asyncio.sleep(0)  # the flush builds its row and waits for the store
        assert engine._flushing and not flush.done()
        for i in range(2, 6):
            hub.platform.bus.publish(reading(t + i * 1000, 72))
        await asyncio.wait_for(engine.drain(), 60)  # a guard against hanging, not a timing
        assert not flush.done()
        state = engine.state(rule_id, device.pk)
        assert state is not None and state.last_ts == t + 5000
        assert [e.ts for e in engine.trace(rule_id)[:4]] == [t + 5000, t + 4000, t + 3000, t + 2000]
        # A reading that turns the rule on must be saved: it waits for the store, after the
        # flush (or before it, on PostgreSQL, where the two race for the row).
        hub.platform.bus.publish(reading(t + 6000, 90))
    await flush
    await engine.drain()
    assert engine.conflicts == 0
    assert await fired(hub) == ([("active", 1)], ["cool"])
    assert all(e.note is None for e in engine.trace(rule_id))
    saved, _ = await stored(hub)
    assert (saved.active, saved.last_ts) == (True, t + 6000)
