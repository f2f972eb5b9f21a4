"""The rules docs/fleet.md gives for alarms on what the fleet app detects ("Alarms on fleet
events"), run by the rules engine on the van's day: they turn on where the fleet events are."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from m2mhub.apps.fleet.models import EventKind
from m2mhub.apps.fleet.queries import events, vehicle
from tests.apps.fleet.conftest import VAN, send
from tests.apps.fleet.vans import MINUTE, SECOND, VanDay
from tests.conftest import Api

DAY = VanDay()
DOCS = Path(__file__).parents[3] / "docs" / "fleet.md"


def documented_rules() -> list[dict[str, Any]]:
    section = DOCS.read_text().split("## Alarms on fleet events", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None, "no YAML block under 'Alarms on fleet events'"
    rules: list[dict[str, Any]] = yaml.safe_load(found.group(1))["rules"]
    return rules


async def raised_at(api: Api, rule: str) -> list[int]:
    """The data times at which the rule turned on for the van, from its trace."""
    response = await api.client.get(f"/api/v1/rules/{rule}/trace", headers=api.admin)
    assert response.status_code == 200, response.text
    return sorted(t["ts"] for t in response.json() if t["transition"] == "raise")


async def test_the_documented_rules_turn_on_where_the_fleet_raises_events(api: Api) -> None:
    api.platform.rules.trace_size = 10_000  # every evaluation of the day stays in the trace
    for rule in documented_rules():
        # The van's day is replayed long after it happened; live, the default (15m) is right.
        body = {**rule, "max_delay": "1000d"}
        response = await api.client.post("/api/v1/rules", json=body, headers=api.admin)
        assert response.status_code == 201, response.text
    await api.platform.rules.refresh()
    await send(api, VAN, DAY.readings)
    await api.platform.rules.drain()
    device, _ = await vehicle(api.platform.store, api.tenant.id, VAN)
    found = await events(api.platform.store, device, DAY.readings[0][0], DAY.readings[-1][0] + 1)
    for name, kind, lasting_ms in (
        ("van-overspeed", EventKind.OVERSPEED, 10 * SECOND),
        ("van-idling", EventKind.IDLING, 5 * MINUTE),
    ):
        [event] = [e for e in found if e.kind is kind]
        [raised] = await raised_at(api, name)
        # Both begin at the same reading (the van drives at 120 km/h, over the profile's
        # 100 and the rule's 110); the rule turns on with the first reading once the
        # condition has lasted (the van reports every 10 s driving, 30 s idling).
        began = event.values["start_ts"]
        assert isinstance(began, int)
        assert began + lasting_ms <= raised < began + lasting_ms + 30 * SECOND, name
    alarms = await api.platform.store.list_alarms(api.tenant.id)
    assert sorted(a.rule_name for a in alarms) == ["van-idling", "van-overspeed"]
