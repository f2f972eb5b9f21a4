"""The fleet description: the shipped file loads, errors name the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import m2mhub.sim
from m2mhub.sim.fleet import MODELS, FleetError, build_models, load_fleet, parse_fleet
from m2mhub.sim.keys import KEY_SPECS
from m2mhub.sim.tank import Pump, Tank
from m2mhub.sim.vehicles import VehicleParams
from tests.sim.conftest import MONDAY

MINIMAL: dict[str, Any] = {
    "timezone": "UTC",
    "types": {
        "meter": {
            "report_interval_s": 300,
            "keys": {
                "power_kw": {"unit": "kW"},
                "energy_kwh": {"unit": "kWh"},
                "voltage_v": None,
            },
        },
        "tank": {"keys": {"level_pct": {"unit": "%"}}},
    },
    "devices": [
        {"id": "m1", "type": "meter", "model": "electricity_meter"},
        {"id": "m2", "type": "meter", "model": "electricity_meter", "params": {"spike_at_h": 1}},
        {"id": "t1", "type": "tank", "model": "tank"},
    ],
    "groups": {"meters": ["m1", "m2"]},
    "assets": [{"name": "House", "kind": "building", "devices": ["m1"]}],
}


def variant(change: Any) -> str:
    """MINIMAL with ``change`` applied to a deep copy, as YAML."""
    fleet = copy.deepcopy(MINIMAL)
    change(fleet)
    return yaml.safe_dump(fleet, allow_unicode=True)


def test_shipped_fleet_loads_and_builds() -> None:
    fleet = load_fleet()
    assert {d.model for d in fleet.devices} == set(MODELS)
    assert len(fleet.devices) >= 20
    models = build_models(fleet, seed=1, origin_ms=MONDAY)
    assert set(models) == {d.id for d in fleet.devices}
    for device in fleet.devices:
        model = models[device.id]
        assert isinstance(model, MODELS[device.model].model)
        declared = {spec.key for spec in fleet.types[device.type].keys}
        values = model.step(MONDAY)
        assert set(values) <= declared
        for key, value in values.items():
            assert KEY_SPECS[key].type.value == ("bool" if isinstance(value, bool) else "number")
    tank = models["tank-north"]
    assert isinstance(tank, Tank) and isinstance(tank.pump, Pump)
    assert tank.pump is models["pump-north"]
    members = {m for group in fleet.groups.values() for m in group}
    assert members <= set(models)


def test_shipped_fleet_has_the_incidents() -> None:
    fleet = load_fleet()
    params = [device.params for device in fleet.devices]
    for incident in (
        "rollover_at_kwh",
        "spike_at_h",
        "gaps_per_day",
        "speeding_at_h",
        "fuel_theft_at_h",
        "leaves_site_at_h",
        "degradation_days_to_failure",
        "deteriorates_after_h",
    ):
        defaults = {type(p): type(p)() for p in params}
        assert any(
            getattr(p, incident, None) != getattr(defaults[type(p)], incident, None) for p in params
        ), incident


def test_minimal_fleet() -> None:
    fleet = parse_fleet(variant(lambda f: None))
    assert fleet.device("m2").params.spike_at_h == 1
    assert fleet.device("m1").report_interval_s == 300
    assert fleet.device("t1").report_interval_s == 60
    assert fleet.device("m1").name == "m1"
    assert fleet.groups == {"meters": ("m1", "m2")}
    assert fleet.types["meter"].keys[2].unit is None


def _set(path: str, value: Any) -> Any:
    """A change that sets a dotted path (list indexes as numbers) in the fleet."""

    def change(fleet: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = fleet
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set("devices.1.model", "boat"),
            "devices[1].model: unknown model 'boat'; use one of electricity_meter, vehicle",
        ),
        (_set("devices.1.type", "ship"), "devices[1].type: unknown type 'ship'"),
        (_set("devices.1.id", "m1"), "devices[1].id: device 'm1' is listed twice"),
        (_set("devices.1.id", "a b"), "devices[1].id: 'a b' is not a valid device id"),
        (
            _set("devices.1.params", {"rolover_at_kwh": 5}),
            "devices[1].params: unknown field 'rolover_at_kwh'; use one of profile, base_kw",
        ),
        (
            _set("devices.1.params", {"rollover_at_kwh": -5}),
            "devices[1].params.rollover_at_kwh: expected `float` > 0",
        ),
        (
            _set("devices.1.params", {"register_start_kwh": 10, "rollover_at_kwh": 5}),
            "devices[1].params.register_start_kwh: must be below rollover_at_kwh",
        ),
        (
            _set("devices.1.params", {"profile": "factory"}),
            "devices[1].params.profile: invalid enum value 'factory'; "
            "use one of commercial, household",
        ),
        (
            _set("devices.2.params", {"pump": "m1"}),
            "devices[2].params.pump: 'm1' is not a device of model 'pump'",
        ),
        (_set("devices.1.colour", "red"), "devices[1]: unknown field 'colour'; use one of id,"),
        (_set("devices.0", {"id": "x"}), "devices[0]: object missing required field `type`"),
        (
            _set("types.meter.keys", {"power_kw": None}),
            "devices[0].type: type 'meter' does not declare 'energy_kwh', which model "
            "'electricity_meter' reports; add it under types.meter.keys",
        ),
        (
            _set("types.meter.keys.power_kw", {"type": "string"}),
            "types.meter.keys.power_kw.type: model 'electricity_meter' reports 'power_kw' as "
            "number, not string",
        ),
        (
            _set("types.meter.keys.power_kw", {"type": "complex"}),
            "types.meter.keys.power_kw.type: invalid enum value 'complex'; use one of number, bool",
        ),
        (_set("types.meter.keys", {}), "types.meter.keys: declare at least one key"),
        (
            _set("types.meter.keys.9lives", None),
            "types.meter.keys.9lives: '9lives' is not a valid key",
        ),
        (
            _set("types.meter.report_interval_s", 0),
            "types.meter.report_interval_s: expected `int` >= 1",
        ),
        (_set("groups.meters", ["m1", "ghost"]), "groups.meters[1]: unknown device 'ghost'"),
        (_set("assets.0.devices", ["ghost"]), "assets[0].devices[0]: unknown device 'ghost'"),
        (_set("timezone", "Mars/Olympus"), "timezone: unknown time zone 'Mars/Olympus'"),
        (_set("version", 2), "version: invalid enum value 2; use one of 1"),
        (_set("devices", "all of them"), "devices: expected `array`, got `str`"),
    ],
)
def test_errors_name_the_field(change: Any, message: str) -> None:
    with pytest.raises(FleetError) as error:
        parse_fleet(variant(change), source="my-fleet.yaml")
    assert str(error.value).startswith("my-fleet.yaml: ")
    assert message in str(error.value)
    assert error.value.field is not None
    assert str(error.value).removeprefix("my-fleet.yaml: ").startswith(error.value.field)


def test_vehicle_route_errors_name_the_route() -> None:
    def bad_route(fleet: dict[str, Any]) -> None:
        fleet["types"]["vehicle"] = {"keys": {k: None for k in ("lat", "lon", "speed_kmh")}}
        for key in ("heading_deg", "fuel_pct", "odometer_m"):
            fleet["types"]["vehicle"]["keys"][key] = None
        fleet["types"]["vehicle"]["keys"]["ignition"] = {"type": "bool"}
        fleet["devices"].append(
            {"id": "v1", "type": "vehicle", "model": "vehicle", "params": {"route": "moon"}}
        )

    with pytest.raises(FleetError, match=r"devices\[3\]\.params\.route: unknown route 'moon'"):
        parse_fleet(variant(bad_route))
    assert VehicleParams().route == "east-loop"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("types: {a: [1\n", "fleet: line 2: not valid YAML"),
        ("- just\n- a list\n", "the fleet must be a mapping with 'types' and 'devices'"),
        ("types: {}\n", "object missing required field `devices`"),
    ],
)
def test_file_level_errors(text: str, message: str) -> None:
    with pytest.raises(FleetError, match=message):
        parse_fleet(text)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match=r"nowhere\.yaml: cannot read the fleet file"):
        load_fleet(tmp_path / "nowhere.yaml")


def test_a_copied_fleet_loads_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(m2mhub.sim.default_fleet_text())
    assert load_fleet(path) == load_fleet()


def test_public_api() -> None:
    assert len(set(m2mhub.sim.__all__)) == len(m2mhub.sim.__all__)
    for name in m2mhub.sim.__all__:
        assert hasattr(m2mhub.sim, name), name
