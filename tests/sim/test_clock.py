"""Device time faster than the wall, and history backfilled without I/O."""

from __future__ import annotations

import random

import pytest

from m2mhub.sim.base import AnyModel
from m2mhub.sim.clock import SimClock, backfill, backfill_fleet
from m2mhub.sim.meters import ElectricityMeter, MeterParams
from m2mhub.sim.stock import StockBin, StockParams
from tests.sim.conftest import DAY, HOUR, MONDAY


class Wall:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_an_hour_of_device_time_passes_in_a_minute_at_speed_60() -> None:
    wall = Wall(5_000)
    clock = SimClock(60, MONDAY, wall=wall)
    assert clock.now_ms() == MONDAY
    wall.now += 60_000
    assert clock.now_ms() == MONDAY + HOUR
    assert clock.wall_ms(MONDAY + 2 * HOUR) == 5_000 + 120_000
    assert clock.wall_seconds(300_000) == 5.0  # a 5-minute report interval


def test_clock_starts_now_by_default() -> None:
    wall = Wall(MONDAY)
    clock = SimClock(wall=wall)
    wall.now += 1234
    assert clock.now_ms() == MONDAY + 1234


@pytest.mark.parametrize("speed", [0, -1])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed)


def test_backfill_reports_at_the_interval_and_continues_live() -> None:
    model = ElectricityMeter(MeterParams(), rng=random.Random(1))
    history = list(backfill(model, MONDAY, MONDAY + DAY, 15 * 60_000))
    assert [ts for ts, _ in history] == list(range(MONDAY, MONDAY + DAY, 15 * 60_000))
    live = model.step(MONDAY + DAY)
    assert live["energy_kwh"] >= history[-1][1]["energy_kwh"]  # type: ignore[operator]


def test_backfill_skips_gaps() -> None:
    model = ElectricityMeter(MeterParams(gaps_per_day=6, gap_minutes=120), rng=random.Random(2))
    history = list(backfill(model, MONDAY, MONDAY + 5 * DAY, 15 * 60_000))
    assert 0 < len(history) < 5 * 96
    assert all(values for _, values in history)


def test_backfill_fleet_is_in_time_order() -> None:
    models: dict[str, AnyModel] = {
        "meter": ElectricityMeter(MeterParams(), rng=random.Random(1)),
        "bin": StockBin(StockParams(), rng=random.Random(2)),
    }
    intervals = {"meter": 15 * 60_000, "bin": 10 * 60_000}
    history = list(backfill_fleet(models, intervals, MONDAY, MONDAY + DAY))
    assert [ts for _, ts, _ in history] == sorted(ts for _, ts, _ in history)
    assert sum(1 for device, _, _ in history if device == "meter") == 96
    assert sum(1 for device, _, _ in history if device == "bin") == 144


def test_backfill_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        next(backfill(StockBin(StockParams()), MONDAY, MONDAY + DAY, 0))
