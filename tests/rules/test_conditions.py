"""Conditions as pure functions: state in, state and transition out, time passed in."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from m2mhub.core.geo import haversine_m
from m2mhub.rules.conditions import CompiledCondition, RuleState, in_polygon
from m2mhub.rules.expr import SELF
from m2mhub.rules.model import parse_rule

MINUTE = 60_000


def compiled(condition: dict[str, Any]) -> CompiledCondition:
    rule = parse_rule(
        {"name": "r", "scope": {"device": "d"}, "condition": condition, "actions": [{"alarm": {}}]}
    )
    return CompiledCondition(rule)


def feed(
    condition: CompiledCondition, readings: list[tuple[int, dict[str, Any]]]
) -> tuple[RuleState, list[str | None]]:
    state, transitions = RuleState(), []
    for ts, values in readings:
        step = condition.on_reading(state, ts, {SELF: values})
        state = step.state
        transitions.append(step.transition)
    return state, transitions


def test_threshold_with_hysteresis() -> None:
    c = compiled({"threshold": {"key": "t", "above": 80, "clear_below": 75}})
    values = [70, 81, 79, 75, 74.9, 80, 80.1]
    _, transitions = feed(c, [(i, {"t": v}) for i, v in enumerate(values)])
    assert transitions == [None, "raise", None, None, "clear", None, "raise"]


def test_threshold_below_with_hysteresis() -> None:
    c = compiled({"threshold": {"key": "level", "below": 10, "clear_above": 20}})
    _, transitions = feed(c, [(i, {"level": v}) for i, v in enumerate([50, 9, 15, 20, 20.5])])
    assert transitions == [None, "raise", None, None, "clear"]


def test_threshold_ignores_readings_without_its_key() -> None:
    c = compiled({"threshold": {"key": "t", "above": 80}})
    state, transitions = feed(c, [(1, {"t": 90}), (2, {"other": 1}), (3, {"t": "hot"})])
    assert transitions == ["raise", None, None] and state.active


def test_for_duration_by_reading_time_and_by_timer() -> None:
    c = compiled({"threshold": {"key": "t", "above": 80}, "for": "5m"})
    state, transitions = feed(c, [(0, {"t": 90}), (4 * MINUTE, {"t": 90})])
    assert transitions == [None, None] and state.since == 0
    assert c.on_tick(state, 5 * MINUTE - 1).transition is None
    fired = c.on_tick(state, 5 * MINUTE)
    assert fired.transition == "raise" and fired.state.active
    assert c.on_tick(fired.state, 6 * MINUTE).transition is None
    # A dip resets the duration.
    state, transitions = feed(
        c, [(0, {"t": 90}), (MINUTE, {"t": 70}), (2 * MINUTE, {"t": 90}), (6 * MINUTE, {"t": 90})]
    )
    assert transitions == [None, None, None, None]
    assert c.on_tick(state, 7 * MINUTE).transition == "raise"


def test_count_in_window() -> None:
    c = compiled({"threshold": {"key": "t", "above": 80}, "count": {"times": 3, "within": "1h"}})
    hot, cold = {"t": 90}, {"t": 70}
    state, transitions = feed(
        c, [(0, hot), (1, cold), (2, hot), (3, hot), (4, cold), (10 * MINUTE, hot)]
    )
    # The third time over 80 (not the third hot reading) raises.
    assert transitions == [None, None, None, None, None, "raise"]
    # The window is the last hour: the first time leaves it an hour later.
    assert c.on_tick(state, 60 * MINUTE - 1).transition is None
    assert c.on_tick(state, 60 * MINUTE).transition == "clear"


def test_rate_of_change() -> None:
    c = compiled({"rate": {"key": "level", "above": 10, "per": "1m"}})
    readings = [(0, {"level": 0}), (MINUTE, {"level": 5}), (2 * MINUTE, {"level": 20})]
    readings += [(3 * MINUTE, {"level": 21})]
    _, transitions = feed(c, readings)
    assert transitions == [None, None, "raise", "clear"]
    falling = compiled({"rate": {"key": "level", "below": -1, "per": "1s"}})
    _, transitions = feed(falling, [(0, {"level": 10}), (1000, {"level": 8})])
    assert transitions == [None, "raise"]


def test_no_data() -> None:
    c = compiled({"no_data": {"for": "10m"}})
    state, _ = feed(c, [(0, {"x": 1})])
    assert c.on_tick(state, 10 * MINUTE - 1).transition is None
    silent = c.on_tick(state, 10 * MINUTE)
    assert silent.transition == "raise"
    back = c.on_reading(silent.state, 11 * MINUTE, {SELF: {"x": 2}})
    assert back.transition == "clear"


def test_connection() -> None:
    c = compiled({"connection": "offline", "for": "1m"})
    state = c.on_connection(RuleState(), 0, False).state
    assert not state.active
    assert c.on_tick(state, MINUTE).transition == "raise"
    assert c.on_connection(c.on_tick(state, MINUTE).state, 2, True).transition == "clear"


def test_geofence_circle_and_polygon() -> None:
    # Paris to London is about 344 km.
    assert 343_000 < haversine_m(48.8566, 2.3522, 51.5074, -0.1278) < 345_000
    square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    assert in_polygon(0.5, 0.5, square) and not in_polygon(1.5, 0.5, square)
    leave = compiled(
        {
            "geofence": {
                "circle": {"lat": 48.0, "lon": 2.0, "radius_m": 1000},
                "trigger": "outside",
            },
            "for": "2m",
        }
    )
    home, away = {"lat": 48.0, "lon": 2.0}, {"lat": 48.02, "lon": 2.0}  # about 2.2 km north
    _, transitions = feed(leave, [(0, home), (MINUTE, away), (2 * MINUTE, away)])
    assert transitions == [None, None, None]
    _, transitions = feed(leave, [(0, home), (MINUTE, away), (3 * MINUTE, away)])
    assert transitions == [None, None, "raise"]
    enter = compiled(
        {"geofence": {"polygon": [[47.9, 1.9], [47.9, 2.1], [48.1, 2.1], [48.1, 1.9]]}}
    )
    _, transitions = feed(
        enter,
        [(0, {"lat": 47.0, "lon": 2.0}), (1, home), (2, away), (3, {"lat": 49.0, "lon": 2.0})],
    )
    assert transitions == [None, "raise", None, "clear"]


def test_expression_with_missing_values_leaves_the_state() -> None:
    c = compiled({"expression": "a > 1 and b > 1"})
    state, transitions = feed(c, [(0, {"a": 5}), (1, {"a": 5, "b": 5}), (2, {"b": 0})])
    assert transitions == [None, "raise", None]  # (2): a is missing from this reading's view
    assert state.active


QUIET_CONDITIONS = [
    {"threshold": {"key": "t", "above": 80, "clear_below": 75}},
    {"threshold": {"key": "t", "above": 80}},
    {"threshold": {"key": "t", "below": 10, "clear_above": 20}},
    {"threshold": {"key": "t", "below": 10}, "for": "1m"},
    {"threshold": {"key": "t", "above": 80, "clear_below": 75}, "for": "30s"},
    {"geofence": {"circle": {"lat": 48.8566, "lon": 2.3522, "radius_m": 500}}},
    {"geofence": {"circle": {"lat": 48.8566, "lon": 2.3522, "radius_m": 500}}, "for": "1m"},
]


@pytest.mark.parametrize("condition", QUIET_CONDITIONS)
def test_quiet_agrees_with_a_full_evaluation(condition: dict[str, Any]) -> None:
    """Where the shortcut answers, the full evaluation changes nothing but ``last_ts``, with
    the same raw result and inputs; where it changes more, the shortcut does not answer."""
    c = compiled(condition)
    assert c.has_quiet
    rng = random.Random(7)
    state, answered, declined = RuleState(), 0, 0
    for i in range(3000):
        ts = i * 7_000
        values: dict[str, Any]
        if "geofence" in condition:
            step_m = 0.003 if rng.random() < 0.5 else 0.02  # mostly near the fence
            values = {"lat": 48.8566 + rng.uniform(-step_m, step_m), "lon": 2.3522}
        else:
            values = {"t": rng.choice([rng.uniform(0, 100), rng.choice([10, 20, 75, 80])])}
            if rng.random() < 0.05:
                values = rng.choice([{"t": True}, {"t": "hot"}, {"other": 1}])
        quiet = c.quiet(state, ts, values)
        step = c.on_reading(state, ts, {SELF: values})
        if quiet is None:
            declined += 1
            assert step.raw is None or step.state != msgspec.structs.replace(state, last_ts=ts)
        else:
            answered += 1
            assert step.transition is None and step.note is None
            assert step.state == msgspec.structs.replace(state, last_ts=ts)
            assert quiet == (step.raw, tuple(step.inputs.items()))
        state = step.state
    assert answered > 1000 and declined > 50
