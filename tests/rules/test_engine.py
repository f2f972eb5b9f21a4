"""The rules engine end to end: readings over HTTP, alarms, commands, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from m2mhub.bus import PresenceChanged, ReadingsStored
from m2mhub.rules.conditions import RuleState
from tests.conftest import drop_schema, new_store
from tests.rules.helpers import Clock, Hub, open_hub, reopen, start_time

MINUTE = 60_000

HOT = {
    "name": "hot",
    "scope": {"device": "t1"},
    "condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 75}},
    "actions": [{"alarm": {"severity": "critical", "message": "too hot"}}],
}


async def test_a_reading_over_http_raises_an_alarm(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    t = hub.clock.now
    await hub.send("t1", t, temp=70)
    assert await hub.alarms() == []
    await hub.send("t1", t + 1000, temp=85)
    [alarm] = await hub.alarms()
    assert (alarm.device_id, alarm.rule_name, alarm.severity, alarm.status) == (
        "t1",
        "hot",
        "critical",
        "active",
    )
    assert alarm.details == {"temp": 85.0} and alarm.message == "too hot"
    listed = await hub.client.get("/api/v1/alarms", headers=hub.admin)
    assert [a["id"] for a in listed.json()["items"]] == [alarm.id]
    trace = (await hub.client.get("/api/v1/rules/hot/trace", headers=hub.admin)).json()
    assert trace[0]["transition"] == "raise" and trace[0]["inputs"] == {"temp": 85.0}
    assert trace[0]["actions"] == [f"alarm {alarm.id} raised"]
    assert trace[1]["result"] is False and trace[1]["transition"] is None


async def test_events_of_devices_no_rule_watches_are_not_queued(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.new_device("t2")
    await hub.rule(HOT)
    store, bus = hub.platform.store, hub.platform.bus
    t1, t2 = await store.get_device("t1"), await store.get_device("t2")
    for device in (t1, t2):
        bus.publish(ReadingsStored(hub.tenant.id, device.pk, device.id, [(hub.clock.now, {})]))
        bus.publish(
            PresenceChanged(hub.tenant.id, device.pk, device.id, hub.clock.now, True, "reporting")
        )
    assert bus.stats()["rules"].lag == 2  # the two of t1
    await hub.platform.rules.drain()


async def test_a_disabled_rule_is_not_run_by_readings_until_enabled_again(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)  # a threshold: the quiet path first
    await hub.rule(
        {
            "name": "hot-expr",
            "scope": {"device": "t1"},
            "condition": {"expression": "temp > 80"},
            "actions": [{"alarm": {"severity": "major"}}],
        }
    )
    for name in ("hot", "hot-expr"):
        disabled = await hub.client.post(f"/api/v1/rules/{name}/disable", headers=hub.admin)
        assert disabled.status_code == 200, disabled.text
    t = hub.clock.now
    await hub.send("t1", t, temp=90)
    assert await hub.alarms() == []
    for name in ("hot", "hot-expr"):
        await hub.client.post(f"/api/v1/rules/{name}/enable", headers=hub.admin)
    await hub.send("t1", t + 1000, temp=91)
    assert sorted(a.rule_name for a in await hub.alarms()) == ["hot", "hot-expr"]


async def test_concurrent_readings_raise_exactly_one_alarm(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    t = hub.clock.now
    responses = await asyncio.gather(
        *(hub.post("t1", {"ts": t + i, "values": {"temp": 90 + i}}) for i in range(30))
    )
    assert {r.status_code for r in responses} == {200}
    await hub.platform.rules.drain()
    alarms = await hub.alarms()
    assert len(alarms) == 1 and alarms[0].count == 1


async def test_hysteresis_clears_only_below_the_clear_level(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    t = hub.clock.now
    await hub.send("t1", t, temp=81)
    await hub.send("t1", t + 1000, temp=78)  # under 80, not under 75: still on
    await hub.send("t1", t + 2000, temp=75)
    [alarm] = await hub.alarms()
    assert alarm.status == "active"
    await hub.send("t1", t + 3000, temp=74.9)
    [alarm] = await hub.alarms()
    assert alarm.status == "cleared" and alarm.cleared_by == "rule:hot"
    # Over 80 again: a new alarm, the cleared one stays cleared.
    await hub.send("t1", t + 4000, temp=80.5)
    alarms = await hub.alarms()
    assert [a.status for a in alarms] == ["active", "cleared"]


async def test_tank_level_low_starts_the_pump(hub: Hub) -> None:
    await hub.device_type("tank")
    await hub.device_type("pump")
    await hub.new_device("tank-1", "tank")
    await hub.new_device("pump-1", "pump")
    await hub.rule(
        {
            "name": "fill-tank",
            "scope": {"device": "tank-1"},
            "condition": {"threshold": {"key": "level", "below": 10, "clear_above": 90}},
            "actions": [
                {"command": {"device": "pump-1", "method": "start", "params": {"rpm": 1500}}},
                {"desired": {"device": "pump-1", "set": {"running": True}}},
            ],
            "clear_actions": [{"command": {"device": "pump-1", "method": "stop"}}],
        }
    )
    t = hub.clock.now
    await hub.send("tank-1", t, level=50)
    assert await _commands(hub, "pump-1") == []
    await hub.send("tank-1", t + 1000, level=8)
    await hub.send("tank-1", t + 2000, level=5)  # still low: no second start
    [start] = await _commands(hub, "pump-1")
    assert (start["method"], start["params"], start["status"]) == ("start", {"rpm": 1500}, "queued")
    assert start["created_by"] == "rule:fill-tank"
    twin = (await hub.client.get("/api/v1/devices/pump-1/twin", headers=hub.admin)).json()
    assert twin["desired"] == {"running": True}
    await hub.send("tank-1", t + 3000, level=60)  # not over 90 yet
    await hub.send("tank-1", t + 4000, level=95)
    assert [c["method"] for c in await _commands(hub, "pump-1")] == ["stop", "start"]
    # The pump takes its commands like any HTTP device.
    taken = await hub.client.get(
        "/api/v1/devices/pump-1/commands/next", headers=hub.device("pump-1")
    )
    assert [c["method"] for c in taken.json()] == ["start", "stop"]


async def _commands(hub: Hub, device_id: str) -> list[dict[str, object]]:
    response = await hub.client.get(f"/api/v1/devices/{device_id}/commands", headers=hub.admin)
    return list(response.json())


async def test_restart_mid_duration_fires_once_at_the_right_time(
    backend: str, tmp_path: Path
) -> None:
    store, schema = new_store(backend, tmp_path)
    clock = Clock(start_time())
    t = clock.now
    rule = {
        "name": "hot-5m",
        "scope": {"device": "t1"},
        "condition": {"threshold": {"key": "temp", "above": 80}, "for": "5m"},
        "actions": [{"alarm": {}}, {"command": {"device": "t1", "method": "cool"}}],
    }
    try:
        async with open_hub(store, tmp_path, clock) as hub:
            await hub.device_type("sensor")
            await hub.new_device("t1")
            await hub.rule(rule)
            await hub.send("t1", t, temp=90)
            await hub.send("t1", t + 2 * MINUTE, temp=91)
            await hub.tick(t + 3 * MINUTE)
            assert await hub.alarms() == []
            tokens = hub.tokens
        # A new process on the same database: the duration started at t still runs.
        async with open_hub(reopen(store), tmp_path, clock, first=False) as hub:
            hub.tokens = tokens
            await hub.tick(t + 4 * MINUTE + 59_000)
            assert await hub.alarms() == []
            await hub.tick(t + 5 * MINUTE)
            [alarm] = await hub.alarms()
            assert alarm.raised_ms >= 0 and alarm.count == 1
            await hub.tick(t + 6 * MINUTE)
            await hub.send("t1", t + 6 * MINUTE, temp=92)
        # And once more after the alarm fired: nothing fires twice.
        async with open_hub(reopen(store), tmp_path, clock, first=False) as hub:
            hub.tokens = tokens
            await hub.tick(t + 7 * MINUTE)
            await hub.send("t1", t + 8 * MINUTE, temp=95)
            [alarm] = await hub.alarms()
            assert alarm.status == "active" and alarm.count == 1
            device = await hub.platform.store.get_device("t1")
            commands = await hub.platform.store.list_commands(device.pk)
            assert [c.method for c in commands] == ["cool"]
    finally:
        if schema:
            drop_schema(schema)


async def test_duration_completed_by_a_reading(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(
        {
            "name": "hot-5m",
            "scope": {"device": "t1"},
            "condition": {"threshold": {"key": "temp", "above": 80}, "for": "5m"},
            "actions": [{"alarm": {}}],
        }
    )
    t = hub.clock.now
    await hub.send("t1", t, temp=90)
    await hub.send("t1", t + 2 * MINUTE, temp=70)  # dipped: the duration starts again
    await hub.send("t1", t + 3 * MINUTE, temp=90)
    hub.clock.now = t + 6 * MINUTE
    await hub.send("t1", t + 6 * MINUTE, temp=90)
    assert await hub.alarms() == []
    await hub.send("t1", t + 8 * MINUTE, temp=90)
    assert len(await hub.alarms()) == 1


async def test_late_and_out_of_order_readings_do_not_fire(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT | {"max_delay": "10m"})
    t = hub.clock.now
    await hub.send("t1", t, temp=70)
    await hub.send("t1", t - 1000, temp=99)  # older than what the rule saw
    hub.clock.now = t + 30 * MINUTE
    await hub.send("t1", t + 5 * MINUTE, temp=99)  # arrives 25 minutes late
    assert await hub.alarms() == []
    notes = [
        e["note"]
        for e in (await hub.client.get("/api/v1/rules/hot/trace", headers=hub.admin)).json()
    ]
    assert notes[:2] == ["skipped: late", "skipped: out of order"]
    await hub.send("t1", t + 29 * MINUTE, temp=99)
    assert len(await hub.alarms()) == 1


async def test_expression_over_two_devices(hub: Hub) -> None:
    await hub.new_device("tank-1")
    await hub.new_device("pump-1")
    await hub.rule(
        {
            "name": "dry-pump",
            "scope": {"device": "tank-1"},
            "devices": {"pump": "pump-1"},
            "condition": {"expression": 'level < 10 and pump.state == "off"'},
            "actions": [{"alarm": {"severity": "warning"}}],
        }
    )
    t = hub.clock.now
    await hub.send("tank-1", t, level=5)  # the pump never reported: not evaluated
    assert await hub.alarms() == []
    await hub.send("pump-1", t + 1000, state="on")
    await hub.send("pump-1", t + 2000, state="off")  # the other device moves the rule
    [alarm] = await hub.alarms()
    assert alarm.device_id == "tank-1" and alarm.details == {"level": 5.0, "pump.state": "off"}
    await hub.send("tank-1", t + 3000, level=50)
    [alarm] = await hub.alarms()
    assert alarm.status == "cleared"


async def test_manual_mode_stops_commands_not_alarms(hub: Hub) -> None:
    await hub.new_device("tank-1")
    await hub.new_device("pump-1")
    await hub.rule(
        {
            "name": "fill",
            "scope": {"device": "tank-1"},
            "condition": {"threshold": {"key": "level", "below": 10}},
            "actions": [{"alarm": {}}, {"command": {"device": "pump-1", "method": "start"}}],
        }
    )
    paused = await hub.client.post("/api/v1/devices/pump-1/automation/pause", headers=hub.admin)
    assert paused.status_code == 204
    t = hub.clock.now
    await hub.send("tank-1", t, level=5)
    assert len(await hub.alarms()) == 1 and await _commands(hub, "pump-1") == []
    trace = (await hub.client.get("/api/v1/rules/fill/trace", headers=hub.admin)).json()
    assert "manual mode on pump-1" in trace[0]["actions"][1]
    await hub.client.post("/api/v1/devices/pump-1/automation/resume", headers=hub.admin)
    await hub.send("tank-1", t + 1000, level=50)
    await hub.send("tank-1", t + 2000, level=5)
    assert [c["method"] for c in await _commands(hub, "pump-1")] == ["start"]


async def test_no_data_and_back(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(
        {
            "name": "silent",
            "scope": {"device": "t1"},
            "condition": {"no_data": {"for": "10m", "key": "temp"}},
            "actions": [{"alarm": {"severity": "minor"}}],
        }
    )
    t = hub.clock.now
    await hub.send("t1", t, temp=20)
    await hub.send("t1", t + 5 * MINUTE, humidity=50)  # another key does not count
    await hub.tick(t + 9 * MINUTE)
    assert await hub.alarms() == []
    await hub.tick(t + 10 * MINUTE)
    [alarm] = await hub.alarms()
    assert alarm.status == "active"
    hub.clock.now = t + 11 * MINUTE
    await hub.send("t1", t + 11 * MINUTE, temp=21)
    [alarm] = await hub.alarms()
    assert alarm.status == "cleared"


async def test_count_in_window(hub: Hub) -> None:
    await hub.new_device("door")
    await hub.rule(
        {
            "name": "door-flaps",
            "scope": {"device": "door"},
            "condition": {"expression": "open == true", "count": {"times": 3, "within": "1h"}},
            "actions": [{"alarm": {}}],
        }
    )
    t = hub.clock.now
    for i, is_open in enumerate([True, False, True, False, True]):
        assert await hub.alarms() == []
        await hub.send("door", t + i * MINUTE, open=is_open)
    [alarm] = await hub.alarms()
    assert alarm.status == "active"
    await hub.tick(t + 61 * MINUTE)  # the first opening left the window
    [alarm] = await hub.alarms()
    assert alarm.status == "cleared"


async def test_derived_telemetry(hub: Hub) -> None:
    await hub.new_device("m1")
    await hub.rule(
        {"name": "power", "scope": {"type": "sensor"}, "compute": {"power": "voltage * current"}}
    )
    t = hub.clock.now
    await hub.send("m1", t, voltage=230, current=2)
    await hub.platform.rules.drain()
    latest = await hub.client.get("/api/v1/devices/m1/latest", headers=hub.admin)
    assert latest.status_code == 200, latest.text
    device = await hub.platform.store.get_device("m1")
    values = (await hub.platform.store.latest([device.pk]))[device.pk]
    assert values["power"] == (t, 460.0)


async def test_rule_state_is_saved(hub: Hub) -> None:
    await hub.new_device("t1")
    created = await hub.rule(HOT)
    t = hub.clock.now
    await hub.send("t1", t, temp=85)
    stored = await hub.platform.store.get_rule(hub.tenant.id, created["name"])
    [text] = (await hub.platform.store.rule_states([stored.id])).values()
    assert '"active":true' in text and isinstance(hub.platform.rules.state(stored.id, 1), RuleState)
    devices = (await hub.client.get("/api/v1/rules/hot/devices", headers=hub.admin)).json()
    assert devices == [
        {
            "device": "t1",
            "active": True,
            "since": t,
            "alarm": (await hub.alarms())[0].id,
            "paused": False,
        }
    ]


async def test_a_reload_finds_devices_that_joined_and_keeps_unchanged_rules(hub: Hub) -> None:
    engine = hub.platform.rules
    await hub.new_device("t1")
    await hub.rule(HOT | {"name": "all", "scope": {"type": "sensor"}})
    await hub.rule(HOT | {"name": "t2-only", "scope": {"device": "t2"}})  # no t2 yet
    await hub.rule(HOT | {"name": "with-pump", "devices": {"pump": "pump-1"}})  # nor pump-1
    await engine.reload()
    loaded = {r.rule.name: r for r in engine.rules.values()}
    assert {n: sorted(d.id for d in r.targets.values()) for n, r in loaded.items()} == {
        "all": ["t1"],
        "t2-only": [],
        "with-pump": ["t1"],  # the alias is unknown: its own device still is
    }
    assert loaded["with-pump"].aliases == {}
    await hub.send("t1", hub.clock.now, temp=70)
    await hub.new_device("t2")
    await hub.device_type("pump")
    await hub.new_device("pump-1", "pump")
    await engine.reload()
    again = {r.rule.name: r for r in engine.rules.values()}
    assert again["all"] is loaded["all"]  # unchanged: kept as compiled, with its trace
    assert {n: sorted(d.id for d in r.targets.values()) for n, r in again.items()} == {
        "all": ["t1", "t2"],
        "t2-only": ["t2"],
        "with-pump": ["t1"],
    }
    assert [d.id for d in again["with-pump"].aliases.values()] == ["pump-1"]
    await hub.send("t2", hub.clock.now, temp=90)
    assert sorted((a.rule_name, a.device_id) for a in await hub.alarms()) == [
        ("all", "t2"),
        ("t2-only", "t2"),
    ]
    assert [e.device for e in engine.trace(loaded["all"].id)] == ["t2", "t1"]
