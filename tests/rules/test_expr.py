"""The expression language: what it computes, and what it refuses."""

from __future__ import annotations

import pytest

from m2mhub.rules.expr import SELF, EvaluationError, ExpressionError, MissingValue, parse

VALUES = {SELF: {"level": 8.0, "state": "off", "on": True}, "pump": {"state": "off", "rpm": 0}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('level < 10 and pump.state == "off"', True),
        ("level < 10 and pump.rpm > 0", False),
        ("level * 2 + 1", 17.0),
        ("-level // 3", -3.0),
        ("level % 3", 2.0),
        ("2 ** 10", 1024),
        ("5 < level < 10", True),
        ("5 < level < 7", False),
        ("state in ['off', 'fault']", True),
        ("state not in ['off']", False),
        ("not on", False),
        ("on == true and True", True),
        ("abs(-level) + max(1, 2) + min(3, 4) + round(1.26, 1) + sqrt(16)", 8 + 2 + 3 + 1.3 + 4),
        ("'high' if level > 5 else 'low'", "high"),
        ("level > 100 or pump.state == 'off'", True),
    ],
)
def test_evaluates(source: str, expected: object) -> None:
    assert parse(source).evaluate(VALUES) == expected


def test_names_and_aliases() -> None:
    expression = parse('tank.level < 10 and pump.state == "off" and temp > 1')
    assert expression.names == {("tank", "level"), ("pump", "state"), (SELF, "temp")}
    assert expression.aliases == {"tank", "pump"}


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "level.__class__",
        "(lambda: 1)()",
        "[x for x in range(3)]",
        "open('/etc/passwd')",
        "level is None",
        "pump['state']",
        "round(level, ndigits=1)",
        "f'{level}'",
        "a = 1",
        "level +",
        "pump.state.upper",
        "b'bytes'",
    ],
)
def test_refuses_what_is_not_allowed(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


def test_missing_values_and_errors() -> None:
    with pytest.raises(MissingValue) as missing:
        parse("pump.flow > 1").evaluate(VALUES)
    assert missing.value.name == "pump.flow"
    with pytest.raises(MissingValue):
        parse("level > 1").evaluate({})
    with pytest.raises(EvaluationError):
        parse("level / 0").evaluate(VALUES)
    with pytest.raises(EvaluationError):
        parse("state > 1").evaluate(VALUES)
    with pytest.raises(EvaluationError):
        parse("10 ** (level * 100)").evaluate(VALUES)
    # a constant exponent that large is refused before the rule goes live
    with pytest.raises(ExpressionError, match="exponent above"):
        parse("level ** 1000")


def test_short_circuit_skips_missing_values() -> None:
    assert parse("level > 100 and nothing > 1").evaluate(VALUES) is False
