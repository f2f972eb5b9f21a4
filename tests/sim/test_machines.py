"""Industrial machines: vibration crosses the alarm before failure, not in the first days."""

from __future__ import annotations

import random
import statistics
from typing import Any

from m2mhub.sim.keys import CURRENT_A, RUNNING, TEMPERATURE_C, VIBRATION_MM_S
from m2mhub.sim.machines import ZONE_C_MM_S, Machine, MachineParams
from tests.sim.conftest import DAY, HOUR, MONDAY, hour_of, number, run

TEN_MIN = 10 * 60_000


def machine(seed: int = 4, **params: Any) -> Machine:
    return Machine(MachineParams(**params), rng=random.Random(seed))


def test_healthy_machine_stays_in_zone_a_and_b() -> None:
    reports = run(machine(), days=30, interval_ms=HOUR)
    assert max(number(v, VIBRATION_MM_S) for _, v in reports) < 2.8
    assert all(v[RUNNING] for _, v in reports)
    temperatures = [number(v, TEMPERATURE_C) for _, v in reports]
    assert 45 < statistics.fmean(temperatures) < 65


def test_vibration_warns_before_failure() -> None:
    days = 10
    reports = run(machine(degradation_days_to_failure=days), days=12, interval_ms=TEN_MIN)
    fails_at = MONDAY + days * DAY
    alarms = [ts for ts, v in reports if number(v, VIBRATION_MM_S) >= ZONE_C_MM_S]
    assert alarms
    first_alarm = alarms[0]
    assert first_alarm > MONDAY + 5 * DAY  # not in the first days
    assert fails_at - first_alarm > 1 * DAY  # time to plan maintenance
    before = [v for ts, v in reports if ts < fails_at]
    after = [v for ts, v in reports if ts > fails_at + HOUR]
    assert all(v[RUNNING] for v in before)
    assert all(v[RUNNING] is False and number(v, CURRENT_A) == 0 for v in after)
    # Friction heats the bearing and loads the motor as the defect grows.
    first_day = [v for ts, v in reports if ts < MONDAY + DAY]
    last_day = [v for ts, v in reports if fails_at - DAY <= ts < fails_at]
    for key, rise in ((TEMPERATURE_C, 5.0), (CURRENT_A, 1.0)):
        assert statistics.fmean(number(v, key) for v in last_day) > rise + statistics.fmean(
            number(v, key) for v in first_day
        )


def test_repair_restores_a_healthy_machine() -> None:
    model = machine(degradation_days_to_failure=4)
    run(model, days=3.9, interval_ms=HOUR)
    assert model.vibration_mm_s > ZONE_C_MM_S
    model.repair()
    later = run(model, days=10, interval_ms=HOUR, start_ms=MONDAY + 4 * DAY)
    assert all(v[RUNNING] for _, v in later)
    assert max(number(v, VIBRATION_MM_S) for _, v in later[6:]) < 2.8


def test_machine_on_shifts_stops_at_night() -> None:
    reports = run(machine(duty="shifts"), days=7, interval_ms=HOUR)
    for ts, values in reports:
        night = hour_of(ts) < 6 or hour_of(ts) >= 22
        weekend = (ts - MONDAY) // DAY >= 5
        assert values[RUNNING] is not (night or weekend)
