"""Electricity meters: load profiles, the register, rollover, spike and gaps."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import defaultdict
from typing import Any

import pytest

from m2mhub.sim.keys import ENERGY_KWH, POWER_KW
from m2mhub.sim.meters import ElectricityMeter, MeterParams
from tests.sim.conftest import DAY, HOUR, MONDAY, Reports, hour_of, number, run, weekday_of

FIFTEEN_MIN = 15 * 60_000


def meter(seed: int = 1, **params: Any) -> ElectricityMeter:
    return ElectricityMeter(MeterParams(**params), rng=random.Random(seed))


def daily_energy(reports: Reports) -> list[float]:
    """kWh per day from the register (no rollover in these runs)."""
    by_day: dict[int, list[float]] = defaultdict(list)
    for ts, values in reports:
        by_day[(ts - MONDAY) // DAY].append(number(values, ENERGY_KWH))
    days = sorted(by_day)
    # From the first reading of a day to the first of the next: whole days.
    return [by_day[d + 1][0] - by_day[d][0] for d in days[:-1]]


def mean_power_by_hour(reports: Reports, *, weekend: bool) -> dict[int, float]:
    by_hour: dict[int, list[float]] = defaultdict(list)
    for ts, values in reports:
        if (weekday_of(ts) >= 5) == weekend:
            by_hour[int(hour_of(ts))].append(number(values, POWER_KW))
    return {h: statistics.fmean(v) for h, v in by_hour.items()}


@pytest.fixture(scope="module")
def household_month() -> Reports:
    return run(meter(), days=28, interval_ms=FIFTEEN_MIN)


def test_household_daily_energy_is_that_of_a_home(household_month: Reports) -> None:
    days = daily_energy(household_month)
    assert all(4 <= kwh <= 25 for kwh in days), days
    assert 8 <= statistics.fmean(days) <= 16


def test_household_peaks_in_the_evening_and_sleeps_at_night(household_month: Reports) -> None:
    weekday = mean_power_by_hour(household_month, weekend=False)
    peak_hour = max(weekday, key=weekday.__getitem__)
    assert 18 <= peak_hour <= 21
    night = statistics.fmean(weekday[h] for h in (2, 3, 4))
    assert weekday[7] > 2 * night  # the morning peak
    assert weekday[peak_hour] > 4 * night


def test_weekend_mornings_start_later(household_month: Reports) -> None:
    weekday = mean_power_by_hour(household_month, weekend=False)
    weekend = mean_power_by_hour(household_month, weekend=True)
    assert weekday[7] > weekend[7]
    assert weekend[10] > weekday[10]


def test_commercial_meter_follows_office_hours() -> None:
    reports = run(meter(profile="commercial"), days=14, interval_ms=FIFTEEN_MIN)
    days = daily_energy(reports)
    weekdays = [kwh for d, kwh in enumerate(days) if d % 7 < 5]
    weekends = [kwh for d, kwh in enumerate(days) if d % 7 >= 5]
    assert all(200 <= kwh <= 600 for kwh in weekdays), weekdays
    assert max(weekends) < 0.5 * min(weekdays)
    by_hour = mean_power_by_hour(reports, weekend=False)
    assert by_hour[12] > 3 * by_hour[3]


def test_register_only_grows() -> None:
    reports = run(meter(seed=5, profile="commercial"), days=30, interval_ms=HOUR)
    registers = [number(values, ENERGY_KWH) for _, values in reports]
    assert all(b >= a for a, b in itertools.pairwise(registers))


def test_register_rolls_over_once() -> None:
    model = meter(register_start_kwh=99_995, rollover_at_kwh=100_000)
    registers = [number(v, ENERGY_KWH) for _, v in run(model, days=3, interval_ms=FIFTEEN_MIN)]
    steps = [b - a for a, b in itertools.pairwise(registers)]
    drops = [i for i, step in enumerate(steps) if step < 0]
    assert len(drops) == 1
    i = drops[0]
    assert registers[i] > 99_990 and registers[i + 1] < 10
    assert 0 <= registers[i + 1] + 100_000 - registers[i] < 2  # 15 minutes of consumption


def test_spike_is_one_reading_at_its_hour() -> None:
    reports = run(meter(spike_at_h=5), days=1, interval_ms=FIFTEEN_MIN)
    spikes = [ts for ts, values in reports if values[POWER_KW] == 999.9]
    assert spikes == [MONDAY + 5 * HOUR]
    assert max(number(v, POWER_KW) for ts, v in reports if ts not in spikes) < 15


def test_gaps_silence_the_meter_and_the_register_keeps_counting() -> None:
    model = meter(gaps_per_day=4, gap_minutes=60)
    start = MONDAY
    timestamps = range(start, start + 10 * DAY, FIFTEEN_MIN)
    reports = [(ts, model.step(ts)) for ts in timestamps]
    silent = [ts for ts, values in reports if not values]
    assert 10 <= len(silent) <= 400
    heard = [(ts, v) for ts, v in reports if v]
    registers = [number(v, ENERGY_KWH) for _, v in heard]
    assert all(b >= a for a, b in itertools.pairwise(registers))


def test_local_time_shifts_the_profile() -> None:
    tokyo = ElectricityMeter(MeterParams(), rng=random.Random(1), tz="Asia/Tokyo")
    by_hour = mean_power_by_hour(run(tokyo, days=14, interval_ms=FIFTEEN_MIN), weekend=False)
    peak_utc = max(by_hour, key=by_hour.__getitem__)
    assert 9 <= peak_utc <= 12  # 19:00-21:00 in Tokyo (UTC+9)


def test_register_start_must_be_below_rollover() -> None:
    with pytest.raises(ValueError, match="register_start_kwh"):
        MeterParams(register_start_kwh=5, rollover_at_kwh=5)
