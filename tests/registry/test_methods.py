"""Declared command methods: the declaration checked field by field, commands checked by it."""

from __future__ import annotations

from typing import Any

import pytest

from m2mhub.core.errors import PayloadError
from m2mhub.registry.methods import check_command, check_methods, parse_methods
from m2mhub.store.models import DeviceType, MethodSpec, ParamSpec, ParamType

# A dosing pump's methods, as an operator would declare them in YAML or JSON.
DOSING_PUMP: list[dict[str, Any]] = [
    {
        "name": "set_rate",
        "description": "Set the dosing rate",
        "timeout_s": 10,
        "params": [
            {
                "name": "rate",
                "type": "number",
                "required": True,
                "min": 0,
                "max": 12.5,
                "unit": "l/h",
            },
            {"name": "ramp_s", "type": "integer", "default": 5, "min": 0, "max": 600, "unit": "s"},
            {"name": "mode", "type": "enum", "choices": ["auto", "manual"], "default": "auto"},
            {"name": "note", "type": "string"},
        ],
    },
    {"name": "stop", "two_way": False},
    {"name": "purge", "params": [{"name": "confirm", "type": "boolean", "required": True}]},
]


def pump_type(methods: list[dict[str, Any]] | None = None) -> DeviceType:
    declared = parse_methods(DOSING_PUMP if methods is None else methods)
    return DeviceType(1, 1, "dosing-pump", (), False, 60, None, 0, declared)


def test_a_list_declaration_parses_with_types_and_defaults() -> None:
    [set_rate, stop, purge] = parse_methods(DOSING_PUMP)
    assert set_rate.timeout_s == 10 and set_rate.two_way
    rate = set_rate.param("rate")
    assert rate == ParamSpec("rate", ParamType.NUMBER, True, None, 0, 12.5, (), "l/h")
    mode = set_rate.param("mode")
    assert mode is not None and mode.choices == ("auto", "manual") and mode.default == "auto"
    assert not stop.two_way and stop.params == ()
    assert purge.params[0].type is ParamType.BOOLEAN


def test_a_mapping_declaration_is_the_same_as_a_list() -> None:
    as_mapping = {
        "purge": {"params": {"confirm": {"type": "boolean", "required": True}}},
        "stop": {"two_way": False},
    }
    assert parse_methods(as_mapping) == (
        MethodSpec("purge", params=(ParamSpec("confirm", ParamType.BOOLEAN, True),)),
        MethodSpec("stop", two_way=False),
    )


@pytest.mark.parametrize(
    ("methods", "field", "words"),
    [
        (
            [{"name": "a"}, {"name": "b", "params": [{"name": "x", "type": "float"}]}],
            "methods[1].params[0].type",
            ["'float'", "number, integer, boolean, string, enum"],
        ),
        ([{"name": "set rate"}], "methods[0].name", ["'set rate'", "letters"]),
        ([{"name": "a"}, {"name": "a"}], "methods[1].name", ["declared twice"]),
        ([{"description": "no name"}], "methods[0].name", ["give a name"]),
        ([{"name": "a", "colour": "red"}], "methods[0].colour", ["unknown field"]),
        ([{"name": "a", "timeout_s": 0}], "methods[0].timeout_s", ["at least 1"]),
        ([{"name": "a", "two_way": "yes"}], "methods[0].two_way", ["expected `bool`"]),
        (
            [{"name": "a", "params": [{"name": "x"}, {"name": "x"}]}],
            "methods[0].params[1].name",
            ["declared twice"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "type": "enum"}]}],
            "methods[0].params[0].choices",
            ["needs its choices"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "type": "enum", "choices": ["p", "p"]}]}],
            "methods[0].params[0].choices[1]",
            ["listed twice"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "choices": ["p"]}]}],
            "methods[0].params[0].choices",
            ["only enum"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "type": "string", "min": 1}]}],
            "methods[0].params[0].min",
            ["only number and integer"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "min": 5, "max": 1}]}],
            "methods[0].params[0].max",
            ["below min 5"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "type": "integer", "max": 1.5}]}],
            "methods[0].params[0].max",
            ["integer"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "max": 10, "default": 11}]}],
            "methods[0].params[0].default",
            ["a number of at most 10"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "type": "boolean", "default": "yes"}]}],
            "methods[0].params[0].default",
            ["true or false"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "required": True, "default": 1}]}],
            "methods[0].params[0].default",
            ["required parameter has no default"],
        ),
        ({"a": {"params": {"x": {"type": "text"}}}}, "methods.a.params.x.type", ["'text'"]),
        ({"a": {"name": "b"}}, "methods.a.name", ["differs from the key"]),
        ({"a": {"params": {True: {"type": "boolean"}}}}, "methods.a.params.True", ['"on"']),
        ("set_pump", "methods", ["list of methods"]),
        ([["set_pump"]], "methods[0]", ["object with a name"]),
    ],
)
def test_a_wrong_declaration_names_its_field(methods: Any, field: str, words: list[str]) -> None:
    with pytest.raises(PayloadError) as raised:
        parse_methods(methods)
    assert raised.value.field == field, raised.value.message
    for word in words:
        assert word in raised.value.message
    assert raised.value.message.startswith(f"{field}: ")


def test_methods_made_in_code_are_checked_too() -> None:
    with pytest.raises(PayloadError) as raised:
        check_methods([MethodSpec("ok"), MethodSpec("ok", two_way=False)])
    assert raised.value.field == "methods[1].name"
    with pytest.raises(PayloadError) as raised:
        check_methods([MethodSpec("a", params=(ParamSpec("x", ParamType.ENUM),))])
    assert raised.value.field == "methods[0].params[0].choices"


def test_a_command_gets_typed_params_and_defaults() -> None:
    spec, params = check_command(pump_type(), "set_rate", {"rate": 7.5})
    assert spec is not None and spec.name == "set_rate"
    assert params == {"rate": 7.5, "ramp_s": 5, "mode": "auto"}  # note: no default, left out
    _, params = check_command(
        pump_type(), "set_rate", {"rate": 3, "ramp_s": 60.0, "mode": "manual", "note": "x"}
    )
    assert params == {"rate": 3, "ramp_s": 60, "mode": "manual", "note": "x"}
    assert isinstance(params["ramp_s"], int)  # 60.0 from a JavaScript number is an integer
    _, params = check_command(pump_type(), "set_rate", {"rate": 1, "ramp_s": None})
    assert params["ramp_s"] == 5  # null is "not given"
    whole = pump_type([{"name": "m", "params": [{"name": "n", "type": "integer", "default": 5.0}]}])
    _, params = check_command(whole, "m", {})
    assert params == {"n": 5} and isinstance(params["n"], int)


@pytest.mark.parametrize(
    ("method", "params", "field", "words"),
    [
        ("reboot", {}, "method", ["declares no method 'reboot'", "set_rate, stop, purge"]),
        ("set_rate", {}, "params.rate", ["required", "a number from 0 to 12.5 (l/h)"]),
        ("set_rate", {"rate": "7"}, "params.rate", ["expected a number", 'got "7"']),
        ("set_rate", {"rate": 13}, "params.rate", ["from 0 to 12.5", "got 13"]),
        ("set_rate", {"rate": -0.1}, "params.rate", ["from 0 to 12.5"]),
        ("set_rate", {"rate": True}, "params.rate", ["expected a number", "got true"]),
        ("set_rate", {"rate": 1, "ramp_s": 2.5}, "params.ramp_s", ["an integer from 0 to 600"]),
        ("set_rate", {"rate": 1, "mode": "fast"}, "params.mode", ["one of 'auto', 'manual'"]),
        ("set_rate", {"rate": 1, "note": 5}, "params.note", ["a string"]),
        ("set_rate", {"rate": 1, "speed": 2}, "params.speed", ["no parameter 'speed'", "rate"]),
        ("stop", {"now": True}, "params.now", ["it takes no parameters"]),
        ("purge", {"confirm": "true"}, "params.confirm", ["true or false"]),
    ],
)
def test_a_wrong_command_names_the_param_and_what_it_takes(
    method: str, params: dict[str, Any], field: str, words: list[str]
) -> None:
    with pytest.raises(PayloadError) as raised:
        check_command(pump_type(), method, params)
    assert raised.value.field == field, raised.value.message
    for word in words:
        assert word in raised.value.message, raised.value.message


def test_a_type_without_methods_takes_any_command() -> None:
    free = DeviceType(1, 1, "meter", (), False, 60, None, 0)
    assert check_command(free, "anything", {"x": [1, {"y": None}]}) == (
        None,
        {"x": [1, {"y": None}]},
    )
