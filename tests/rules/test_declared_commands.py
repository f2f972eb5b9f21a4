"""Rules that send commands to a type that declares methods: typed like an operator's."""

from __future__ import annotations

from typing import Any

from m2mhub.registry.methods import parse_methods
from tests.rules.helpers import Hub

SET_PUMP = parse_methods(
    {"set_pump": {"timeout_s": 10, "params": {"on": {"type": "boolean", "required": True}}}}
)


def fill_rule(command: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "fill",
        "scope": {"device": "tank-1"},
        "condition": {"threshold": {"key": "level", "below": 10}},
        "actions": [{"command": {"device": "pump-1", **command}}],
    }


async def commands(hub: Hub) -> list[dict[str, Any]]:
    response = await hub.client.get("/api/v1/devices/pump-1/commands", headers=hub.admin)
    return list(response.json())


async def test_a_rule_sends_a_declared_method(hub: Hub) -> None:
    await hub.device_type("pump", methods=SET_PUMP)
    await hub.new_device("tank-1")
    await hub.new_device("pump-1", "pump")
    await hub.rule(fill_rule({"method": "set_pump", "params": {"on": True}}))
    await hub.send("tank-1", hub.clock.now, level=5)
    [command] = await commands(hub)
    assert (command["method"], command["params"]) == ("set_pump", {"on": True})
    stored = await hub.platform.store.get_command(command["id"])
    assert stored.timeout_ms == 10_000


async def test_a_rule_with_a_wrong_param_fails_in_its_trace(hub: Hub) -> None:
    await hub.device_type("pump", methods=SET_PUMP)
    await hub.new_device("tank-1")
    await hub.new_device("pump-1", "pump")
    await hub.rule(fill_rule({"method": "set_pump", "params": {"on": "yes"}}))
    await hub.send("tank-1", hub.clock.now, level=5)
    assert await commands(hub) == []
    trace = (await hub.client.get("/api/v1/rules/fill/trace", headers=hub.admin)).json()
    assert trace[0]["actions"] == ['command failed: params.on: expected true or false, got "yes"']
