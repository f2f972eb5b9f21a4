"""The tank and its pump: the level answers the pump, a rule outside closes the loop."""

from __future__ import annotations

import random

from m2mhub.sim.keys import FLOW_M3_H, LEVEL_PCT, PUMP
from m2mhub.sim.tank import Pump, PumpParams, Tank, TankParams
from tests.sim.conftest import DAY, HOUR, MONDAY, number

MINUTE = 60_000


def pair(start_pct: float = 60) -> tuple[Tank, Pump]:
    tank = Tank(TankParams(start_pct=start_pct, pump="pump-1"), rng=random.Random(7))
    pump = Pump(PumpParams(), rng=random.Random(8))
    tank.attach(pump)
    return tank, pump


def level_at(tank: Tank, ts: int) -> float:
    return number(tank.step(ts), LEVEL_PCT)


def test_tank_drains_while_the_pump_is_off_and_fills_while_on() -> None:
    tank, pump = pair()
    start = level_at(tank, MONDAY + 6 * HOUR)
    drained = level_at(tank, MONDAY + 10 * HOUR)
    assert start - drained > 15  # about 4 m³/h out of 50 m³
    pump.set(True, at_ms=MONDAY + 10 * HOUR)
    assert pump.step(MONDAY + 10 * HOUR)[PUMP] is True
    assert number(pump.step(MONDAY + 10 * HOUR + MINUTE), FLOW_M3_H) > 10
    filled = level_at(tank, MONDAY + 13 * HOUR)
    assert filled - drained > 25  # 12 m³/h in, about 5 out
    pump.set(False, at_ms=MONDAY + 13 * HOUR)
    assert level_at(tank, MONDAY + 15 * HOUR) < filled
    assert pump.step(MONDAY + 15 * HOUR) == {PUMP: False, FLOW_M3_H: 0.0, "current_a": 0.0}


def test_a_rule_outside_the_models_keeps_the_level_in_band() -> None:
    tank, pump = pair(start_pct=50)
    switches = 0
    levels = []
    for ts in range(MONDAY, MONDAY + 3 * DAY, MINUTE):
        level = number(tank.step(ts), LEVEL_PCT)
        pump.step(ts)
        levels.append(level)
        # The platform's rule: below 20 % switch on, above 90 % switch off.
        if level < 20 and not pump.is_on:
            pump.set(True, at_ms=ts)
            switches += 1
        elif level > 90 and pump.is_on:
            pump.set(False, at_ms=ts)
            switches += 1
    assert switches >= 6
    assert min(levels) > 15 and max(levels) < 95


def test_without_its_pump_the_tank_runs_dry_and_stays_empty() -> None:
    tank = Tank(TankParams(start_pct=30), rng=random.Random(1))
    levels = [level_at(tank, ts) for ts in range(MONDAY, MONDAY + 2 * DAY, HOUR)]
    assert levels[-1] < 1
    assert min(levels) >= 0


def test_pump_switch_without_a_time_applies_from_its_last_report() -> None:
    pump = Pump(PumpParams(), rng=random.Random(1))
    pump.step(MONDAY)
    pump.set(True)
    assert pump.is_on_at(MONDAY) and not pump.is_on_at(MONDAY - 1)
