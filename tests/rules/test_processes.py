"""Several rules processes on one database: each change is acted on once.

Each process evaluates the readings of its own ingest, so with devices sending
to several processes (or an event seen twice) two engines can evaluate the same
reading. Here two platforms share a database and the same event is handed to
both engines, in either order or at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from m2mhub.bus import ReadingsStored
from m2mhub.core.values import Value
from m2mhub.rules.conditions import RuleState, decode_state
from m2mhub.rules.engine import LOST
from m2mhub.rules.persist import save_states
from m2mhub.store import Store
from tests.conftest import drop_schema, new_store
from tests.rules.helpers import Clock, Hub, open_hub, reopen, start_time

MINUTE = 60_000
ORDERS = ["a then b", "b then a", "together"]

HOT = {
    "name": "hot",
    "scope": {"device": "t1"},
    "condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 75}},
    "actions": [{"alarm": {}}, {"command": {"device": "t1", "method": "cool"}}],
    "clear_actions": [{"command": {"device": "t1", "method": "stop"}}],
}


@asynccontextmanager
async def two_processes(
    backend: str, tmp_path: Path, rule: dict[str, Any]
) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two platforms with the rules role on one database, both watching ``t1`` with ``rule``."""
    store, schema = new_store(backend, tmp_path)
    clock = Clock(start_time())
    try:
        async with open_hub(store, tmp_path / "a", clock) as a:
            await a.device_type("sensor")
            await a.new_device("t1")
            await a.rule(rule)
            async with open_hub(reopen(store), tmp_path / "b", clock, first=False) as b:
                assert [r.rule.name for r in b.platform.rules.rules.values()] == [rule["name"]]
                yield a, b
    finally:
        if schema:
            drop_schema(schema)


async def deliver(hubs: list[Hub], ts: int, **values: Value) -> None:
    """The same committed readings, as each process's own ingest would announce them."""
    device = await hubs[0].platform.store.get_device("t1")
    event = ReadingsStored(device.tenant_id, device.pk, device.id, [(ts, values)])
    for hub in hubs:
        await hub.platform.rules.handle(event)


async def in_order(order: str, a: Hub, b: Hub, job: Callable[[Hub], Awaitable[None]]) -> None:
    if order == "a then b":
        await job(a)
        await job(b)
    elif order == "b then a":
        await job(b)
        await job(a)
    else:
        await asyncio.gather(job(a), job(b))


async def saved_state(hub: Hub) -> RuleState:
    """The state of the only rule for t1, as stored."""
    [text] = (await hub.platform.store.rule_states(list(hub.platform.rules.rules))).values()
    return decode_state(text)


async def fired(hub: Hub) -> tuple[list[tuple[str, int]], list[str]]:
    """(status, count) of each alarm, and the methods of the commands sent to t1."""
    store = hub.platform.store
    alarms = [(a.status, a.count) for a in await hub.alarms()]
    commands = await store.list_commands((await store.get_device("t1")).pk)
    return alarms, sorted(c.method for c in commands)


@pytest.mark.parametrize("order", ORDERS)
async def test_a_reading_seen_by_two_processes_fires_once(
    backend: str, tmp_path: Path, order: str
) -> None:
    async with two_processes(backend, tmp_path, HOT) as (a, b):
        t = a.clock.now
        await in_order(order, a, b, lambda hub: deliver([hub], t, temp=90))
        assert await fired(a) == ([("active", 1)], ["cool"])
        [alarm] = await a.alarms()
        assert (await saved_state(a)).alarm_id == alarm.id
        # Both processes now know it is on: a newer hot reading fires nowhere.
        await in_order(order, a, b, lambda hub: deliver([hub], t + 1000, temp=91))
        assert await fired(a) == ([("active", 1)], ["cool"])
        # That only moved last_ts: each saves it at its next flush, over its version too.
        await in_order(order, a, b, lambda hub: hub.platform.rules.flush())
        assert (await saved_state(a)).last_ts == t + 1000
        # And the clear runs once too.
        await in_order(order, a, b, lambda hub: deliver([hub], t + 2000, temp=70))
        assert await fired(a) == ([("cleared", 1)], ["cool", "stop"])
        # Each time it turned, the process that saved second lost, reloaded and found
        # nothing to do. (The flushes wrote the same state: the second one's write found
        # it already stored.)
        assert a.platform.rules.conflicts + b.platform.rules.conflicts >= 2


async def test_a_stale_cache_does_not_fire_again(backend: str, tmp_path: Path) -> None:
    async with two_processes(backend, tmp_path, HOT) as (a, b):
        t = a.clock.now
        await deliver([a, b], t, temp=70)  # both have evaluated: off
        await deliver([b], t + 1000, temp=90)  # b turns it on; a's copy still says off
        assert await fired(a) == ([("active", 1)], ["cool"])
        await deliver([a], t + 2000, temp=92)
        assert await fired(a) == ([("active", 1)], ["cool"])
        [rule_id] = a.platform.rules.rules
        newest, lost = a.platform.rules.trace(rule_id)[:2]
        assert lost.note == LOST and lost.active is True
        assert (newest.ts, newest.active, newest.transition) == (t + 2000, True, None)
        # a now has the stored state: it clears once, and b, stale in turn, does not again.
        await deliver([a], t + 3000, temp=70)
        await deliver([b], t + 3000, temp=70)
        await deliver([b], t + 4000, temp=71)
        assert await fired(a) == ([("cleared", 1)], ["cool", "stop"])
        await b.platform.rules.flush()  # t + 4000 changed only last_ts: saved at a flush
        state = await saved_state(a)
        assert (state.active, state.last_ts, state.alarm_id) == (False, t + 4000, None)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "condition",
    [
        {"threshold": {"key": "temp", "above": 80}, "for": "5m"},
        {"no_data": {"for": "5m", "key": "temp"}},
    ],
    ids=["duration", "no_data"],
)
async def test_a_due_timer_fires_once(
    backend: str, tmp_path: Path, order: str, condition: dict[str, Any]
) -> None:
    rule = HOT | {"name": "timer", "condition": condition, "clear_actions": []}
    async with two_processes(backend, tmp_path, rule) as (a, b):
        t = a.clock.now
        await deliver([a, b], t, temp=90)
        await in_order(order, a, b, lambda hub: hub.platform.rules.tick(t + 4 * MINUTE))
        assert await fired(a) == ([], [])
        await in_order(order, a, b, lambda hub: hub.platform.rules.tick(t + 5 * MINUTE))
        assert await fired(a) == ([("active", 1)], ["cool"])
        await in_order(order, a, b, lambda hub: hub.platform.rules.tick(t + 6 * MINUTE))
        assert await fired(a) == ([("active", 1)], ["cool"])


async def test_a_state_is_saved_only_over_the_version_it_was_read_at(store: Store) -> None:
    tenant = await store.create_tenant("acme", "Acme")
    rule, _ = await store.upsert_rule(tenant.id, "hot", "{}", enabled=True, source="api")
    assert await store.save_rule_state(rule.id, 7, '{"raw":true}', version=0)
    assert not await store.save_rule_state(rule.id, 7, '{"raw":false}', version=0)  # exists
    assert await store.rule_state(rule.id, 7) == ('{"raw":true}', 1)
    assert await store.save_rule_state(rule.id, 7, '{"active":true}', version=1)
    assert not await store.save_rule_state(rule.id, 7, '{"raw":false}', version=1)  # stale
    assert await store.versioned_rule_states([rule.id]) == {(rule.id, 7): ('{"active":true}', 2)}
    assert await store.rule_state(rule.id, 8) is None


async def test_a_lost_flush_loads_the_winner_and_keeps_its_own_newest(
    backend: str, tmp_path: Path
) -> None:
    async with two_processes(backend, tmp_path, HOT) as (a, b):
        t = a.clock.now
        await deliver([a, b], t, temp=70)  # off for both, kept in memory only
        await deliver([a], t + 2000, temp=71)  # a: newest t + 2000, still only in memory
        await deliver([b], t + 1000, temp=90)  # b turns it on and saves that at once
        assert await fired(a) == ([("active", 1)], ["cool"])
        conflicts = a.platform.rules.conflicts
        await a.platform.rules.flush()  # a's write of last_ts loses: b saved first
        assert a.platform.rules.conflicts == conflicts + 1
        [rule_id] = a.platform.rules.rules
        device = await a.platform.store.get_device("t1")
        state = a.platform.rules.state(rule_id, device.pk)
        # b's state, with a's newer last_ts: a still skips what it has seen newer than.
        assert state is not None and (state.active, state.last_ts) == (True, t + 2000)
        await deliver([a], t + 1500, temp=70)
        assert a.platform.rules.trace(rule_id)[0].note == "skipped: out of order"
        assert await fired(a) == ([("active", 1)], ["cool"])
        await a.platform.rules.flush()  # now over the version it loaded
        saved = await saved_state(a)
        assert (saved.active, saved.last_ts, saved.alarm_id) == (True, t + 2000, state.alarm_id)
        # b, stale in turn, evaluates from the saved state and fires nothing again.
        await deliver([b], t + 3000, temp=91)
        assert await fired(a) == ([("active", 1)], ["cool"])


async def test_a_batch_of_states_says_row_by_row_which_writes_won(store: Store) -> None:
    tenant = await store.create_tenant("acme", "Acme")
    rule, _ = await store.upsert_rule(tenant.id, "hot", "{}", enabled=True, source="api")
    for device_pk in (1, 2, 3):
        assert await store.save_rule_state(rule.id, device_pk, '{"raw":true}', version=0)
    # Every row over its version: written, nothing read back.
    assert await save_states(store, [(rule.id, 1, '{"a":1}', 1), (rule.id, 4, '{"d":1}', 0)]) == {
        (rule.id, 1): ('{"a":1}', 2),
        (rule.id, 4): ('{"d":1}', 1),
    }
    # Stale rows, an insert of a row another process created, a row of a deleted rule.
    rows = [
        (rule.id, 1, '{"a":2}', 2),  # wins
        (rule.id, 2, '{"b":1}', 0),  # exists already
        (rule.id, 3, '{"c":1}', 5),  # stale version
        (rule.id + 1, 1, '{"x":1}', 3),  # no such rule
    ]
    assert await save_states(store, rows) == {
        (rule.id, 1): ('{"a":2}', 3),
        (rule.id, 2): ('{"raw":true}', 1),
        (rule.id, 3): ('{"raw":true}', 1),
        (rule.id + 1, 1): None,
    }
