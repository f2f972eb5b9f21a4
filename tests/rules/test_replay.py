"""``rules test``: stored history replayed through rules, in a dry run that never acts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from m2mhub.core.timeutil import format_ms, now_ms
from m2mhub.core.values import Value
from m2mhub.registry.service import Registry
from m2mhub.rules.model import parse_rule
from m2mhub.rules.replay import ReplayReport, replay
from m2mhub.store import SqliteStore
from tests.processes import fails, m2mhub_env, ok
from tests.rules.helpers import Hub

MINUTE = 60_000

HOT: dict[str, Any] = {
    "name": "hot",
    "scope": {"device": "t1"},
    "condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 75}},
    "actions": [
        {"alarm": {"severity": "critical", "message": "too hot"}},
        {"command": {"method": "cool"}},
        {"webhook": {"url": "http://127.0.0.1:9/hook", "secret": "s"}},
        {"notify": {"recipients": ["ops"], "title": "{device} at {temp}"}},
    ],
    "clear_actions": [{"desired": {"device": "t1", "set": {"fan": False}}}],
}


async def store_series(
    hub: Hub, device_id: str, series: list[tuple[int, dict[str, Value]]]
) -> None:
    """Readings written straight to the store: history, with no engine involved."""
    device = await hub.platform.store.get_device(device_id)
    await hub.platform.store.write_readings([(device.pk, ts, values) for ts, values in series])


def fired(report: ReplayReport) -> list[tuple[str, int, str, str]]:
    return [(d.device, f.ts, f.event, f.trigger) for d in report.devices for f in d.fired]


async def run(hub: Hub, rule: dict[str, Any], start: int, end: int, **kw: Any) -> ReplayReport:
    return await replay(
        hub.platform.store, hub.tenant.id, [parse_rule(rule)], start=start, end=end, **kw
    )


async def test_threshold_with_hysteresis_reports_exact_times_and_writes_nothing(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.new_device("t2")
    t = hub.clock.now
    temps = [70, 81, 78, 76, 74, 85, 70]
    await store_series(hub, "t1", [(t + i * MINUTE, {"temp": v}) for i, v in enumerate(temps)])
    await store_series(hub, "t1", [(t + 7 * MINUTE, {"temp": 99})])  # at "to": outside
    await store_series(hub, "t2", [(t + MINUTE, {"temp": 99})])  # not in the scope
    body = {"rules": [HOT], "from": str(t), "to": str(t + 7 * MINUTE)}
    response = await hub.client.post("/api/v1/rules/test", json=body, headers=hub.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["from"], report["to"], report["notes"]) == (t, t + 7 * MINUTE, [])
    [device] = report["devices"]
    assert (device["rule"], device["device"], device["evaluated"]) == ("hot", "t1", 7)
    assert device["active"] is False
    assert [(f["ts"], f["event"], f["values"]) for f in device["fired"]] == [
        (t + 1 * MINUTE, "raised", {"temp": 81.0}),
        (t + 4 * MINUTE, "cleared", {"temp": 74.0}),
        (t + 5 * MINUTE, "raised", {"temp": 85.0}),
        (t + 6 * MINUTE, "cleared", {"temp": 70.0}),
    ]
    assert device["fired"][0]["actions"] == [
        "alarm critical: too hot",
        "command cool {} to t1",
        "webhook POST http://127.0.0.1:9/hook",
        "notify ops (critical): t1 at 81.0",
    ]
    assert device["fired"][1]["actions"] == ["clear alarm", 'desired {"fan": false} on t1']
    # A dry run: no alarm, command, twin change, outbox row, rule state or audit entry.
    store, tenant = hub.platform.store, hub.tenant.id
    t1 = await store.get_device("t1")
    assert await hub.alarms() == [] and await store.list_commands(t1.pk) == []
    assert (await store.twin(t1.pk)).desired == {}
    for kind in ("webhook", "notify"):
        assert await store.list_deliveries(tenant, kind=kind) == []
    assert await store.list_rules(tenant) == []
    [(states,)] = await store._fetchall("SELECT count(*) FROM rule_state")
    assert states == 0
    audit = await store.list_audit(tenant, start=0, end=now_ms() + 1)
    assert [e.action for e in audit if not e.action.startswith("device.")] == []


async def test_for_duration_fires_when_due_between_readings(hub: Hub) -> None:
    await hub.new_device("t1")
    t = hub.clock.now
    series = [(0, 90), (2, 70), (3, 90), (4, 91), (20, 70)]  # minutes, temp
    await store_series(hub, "t1", [(t + m * MINUTE, {"temp": v}) for m, v in series])
    rule = {
        "name": "hot-5m",
        "scope": {"device": "t1"},
        "condition": {"threshold": {"key": "temp", "above": 80}, "for": "5m"},
        "actions": [{"alarm": {}}],
    }
    report = await run(hub, rule, t, t + 30 * MINUTE)
    # The dip at 2 min restarts the duration at 3 min: due at 8 min, with no reading then.
    assert fired(report) == [
        ("t1", t + 8 * MINUTE, "raised", "timer"),
        ("t1", t + 20 * MINUTE, "cleared", "reading"),
    ]
    assert report.devices[0].fired[0].values == {"temp": 91.0}  # the last values evaluated
    # A range that ends before the duration does not fire.
    short = await run(hub, rule, t, t + 8 * MINUTE)
    assert fired(short) == [] and short.devices[0].active is False


async def test_no_data_on_the_gaps_and_presence(hub: Hub) -> None:
    await hub.new_device("t1")
    t = hub.clock.now
    await store_series(hub, "t1", [(t + m * MINUTE, {"temp": 20}) for m in (0, 5, 20, 25)])
    silent = {
        "name": "silent",
        "scope": {"device": "t1"},
        "condition": {"no_data": {"for": "10m"}},
        "actions": [{"alarm": {}}],
    }
    report = await run(hub, silent, t + MINUTE, t + 40 * MINUTE)
    # Silence counts from the reading at 0, before the range: nothing until 5, then 15 to 20.
    assert fired(report) == [
        ("t1", t + 15 * MINUTE, "raised", "timer"),
        ("t1", t + 20 * MINUTE, "cleared", "reading"),
        ("t1", t + 35 * MINUTE, "raised", "timer"),
    ]
    assert report.devices[0].active is True
    t1 = await hub.platform.store.get_device("t1")
    for minute, online in ((2, False), (3, True), (10, False)):
        await hub.platform.store.write_event(
            t1.pk, t + minute * MINUTE, "presence", {"online": online, "reason": "test"}
        )
    offline = {
        "name": "offline",
        "scope": {"device": "t1"},
        "condition": {"connection": "offline", "for": "2m"},
        "actions": [{"alarm": {}}],
    }
    report = await run(hub, offline, t, t + 60 * MINUTE)
    assert fired(report) == [("t1", t + 12 * MINUTE, "raised", "timer")]


async def test_expression_over_another_device_at_the_same_instants(hub: Hub) -> None:
    await hub.new_device("tank-1")
    await hub.new_device("pump-1")
    t = hub.clock.now
    await store_series(hub, "tank-1", [(t, {"level": 5}), (t + 3 * MINUTE, {"level": 50})])
    await store_series(
        hub, "pump-1", [(t + MINUTE, {"state": "on"}), (t + 2 * MINUTE, {"state": "off"})]
    )
    rule = {
        "name": "dry-pump",
        "scope": {"device": "tank-1"},
        "devices": {"pump": "pump-1"},
        "condition": {"expression": 'level < 10 and pump.state == "off"'},
        "actions": [{"alarm": {}}],
    }
    report = await run(hub, rule, t, t + 10 * MINUTE)
    assert fired(report) == [
        ("tank-1", t + 2 * MINUTE, "raised", "reading"),
        ("tank-1", t + 3 * MINUTE, "cleared", "reading"),
    ]
    assert report.devices[0].fired[0].values == {"level": 5.0, "pump.state": "off"}


async def test_device_filter_and_errors(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.new_device("t2")
    t = hub.clock.now
    for device_id in ("t1", "t2"):
        await store_series(hub, device_id, [(t, {"temp": 90})])
    by_type = HOT | {"scope": {"type": "sensor"}}
    assert [d.device for d in (await run(hub, by_type, t, t + MINUTE)).devices] == ["t1", "t2"]
    only = await run(hub, by_type, t, t + MINUTE, device="t2")
    assert fired(only) == [("t2", t, "raised", "reading")]
    body = {"rules": [HOT | {"condition": {"threshold": {"key": "temp"}}}]}
    response = await hub.client.post("/api/v1/rules/test", json=body, headers=hub.admin)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "rules.0.condition.threshold"
    backwards = {"rules": [HOT], "from": str(t), "to": str(t - 1)}
    response = await hub.client.post("/api/v1/rules/test", json=backwards, headers=hub.admin)
    assert response.status_code == 422 and response.json()["error"]["field"] == "to"


RULES_YAML = """
tenant: default
rules:
  - name: hot
    scope: {device: t1}
    condition:
      threshold: {key: temp, above: 80, clear_below: 75}
    actions:
      - alarm: {severity: critical}
"""


async def _prepare(path: Path, start: int) -> None:
    store = SqliteStore(path)
    async with store:
        registry = Registry(store)
        tenant = await registry.tenant("default")
        await registry.create_device_type(tenant.id, "sensor")
        device, _ = await registry.create_device(
            tenant.id, type_name="sensor", name="t1", device_id="t1"
        )
        temps = [(0, 70), (1, 85), (2, 74)]
        await store.write_readings([(device.pk, start + m * MINUTE, {"temp": v}) for m, v in temps])


def test_cli_prints_what_would_fire(tmp_path: Path) -> None:
    env = m2mhub_env(tmp_path, COLUMNS="250")
    ok("tenant", "create", "default", "--no-admin-key", env=env)
    start = now_ms() - 3_600_000
    asyncio.run(_prepare(tmp_path / "m2mhub.db", start))
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    printed = ok("rules", "test", str(rules), "--from", str(start), "--to", "now", env=env)
    assert format_ms(start + MINUTE) in printed and format_ms(start + 2 * MINUTE) in printed
    assert "raised" in printed and "cleared" in printed and "alarm critical: hot" in printed
    assert "hot on t1: 3 evaluated, 1 raised, 1 cleared, off at the end" in printed
    assert "nothing was changed" in printed
    assert ok("alarms", "list", env=env).count("hot") == 0
    rules.write_text(RULES_YAML.replace("above: 80", "above: hot"))
    error = fails("rules", "test", str(rules), env=env)
    assert "rules[0].condition.threshold.above" in error
    error = fails("rules", "test", str(rules), "--from", "yesterday", env=env)
    assert "rules[0].condition.threshold.above" in error
    rules.write_text(RULES_YAML)
    error = fails("rules", "test", str(rules), "--from", "yesterday", env=env)
    assert "from: 'yesterday' is not a time" in error
