"""The fleet's types declare the commands the simulated devices handle, and the demo's rules
send only those."""

from __future__ import annotations

import pytest

from m2mhub.demo import demo_rules
from m2mhub.registry.methods import check_command
from m2mhub.rules.model import parse_rule_file
from m2mhub.sim.fleet import FleetError, load_fleet, parse_fleet
from m2mhub.store.models import DeviceType, ParamType

FLEET = """
types:
  valve:
    keys: {open: {type: bool}}
    methods:
      set_valve:
        params:
          position_pct: {type: number, min: 0, max: 100, unit: "%"}
devices:
  - {id: v1, type: valve, model: pump}
"""


def test_the_shipped_pump_declares_set_pump() -> None:
    pump = load_fleet().types["pump"]
    [set_pump] = pump.methods
    assert set_pump.name == "set_pump" and set_pump.two_way
    [on] = set_pump.params
    assert (on.name, on.type, on.required) == ("on", ParamType.BOOLEAN, True)


def test_the_demo_rules_send_only_declared_methods() -> None:
    fleet = load_fleet()
    rules = parse_rule_file(demo_rules("http://127.0.0.1:9/webhook"))
    sent = 0
    for rule in rules.rules:
        for action in [*rule.actions, *rule.clear_actions]:
            if action.command is None:
                continue
            target = fleet.device(action.command.device or "")
            spec = fleet.types[target.type]
            device_type = DeviceType(1, 1, spec.name, spec.keys, False, 60, None, 0, spec.methods)
            declared, _ = check_command(
                device_type, action.command.method, dict(action.command.params)
            )
            assert declared is not None, f"{rule.name}: {target.type} declares no methods"
            sent += 1
    assert sent == 2  # the pump on and off


def test_a_fleet_type_s_methods_are_checked_with_their_path() -> None:
    wrong = FLEET.replace("max: 100", "max: -1")
    with pytest.raises(FleetError) as raised:
        parse_fleet(wrong, source="my-fleet.yaml")
    assert raised.value.field == "types.valve.methods.set_valve.params.position_pct.max"
    assert raised.value.message.startswith("my-fleet.yaml: types.valve.methods.set_valve")
