"""Stock bins: picking in working hours, refills when low, a stock-out."""

from __future__ import annotations

import itertools
import random
from typing import Any

from m2mhub.sim.keys import WEIGHT_KG
from m2mhub.sim.stock import StockBin, StockParams
from tests.sim.conftest import HOUR, hour_of, number, run, weekday_of

TEN_MIN = 10 * 60_000


def stock_bin(seed: int = 6, **params: Any) -> StockBin:
    return StockBin(StockParams(**params), rng=random.Random(seed))


def test_bin_is_used_in_working_hours_and_refilled_when_low() -> None:
    reports = run(stock_bin(capacity_kg=250, start_pct=100), days=30, interval_ms=TEN_MIN)
    weights = [(ts, number(v, WEIGHT_KG)) for ts, v in reports]
    assert all(0 <= w <= 250.5 for _, w in weights)
    refills = 0
    for (ts_a, a), (ts_b, b) in itertools.pairwise(weights):
        if b > a + 20:
            refills += 1
            low = min(w for ts, w in weights if ts_b - 80 * HOUR <= ts <= ts_a)
            assert low < 0.35 * 250  # ordered only when low
        elif b < a - 1.5:  # a pick (2.5 kg or more), beyond load cell noise
            assert weekday_of(ts_b) < 5 and 8 <= hour_of(ts_b) <= 17
    assert refills >= 3


def test_slow_supplier_lets_the_bin_run_empty() -> None:
    reports = run(stock_bin(start_pct=45, lead_time_h=96, item_kg=4), days=14, interval_ms=HOUR)
    assert min(number(v, WEIGHT_KG) for _, v in reports) < 1


def test_refill_fills_the_bin() -> None:
    model = stock_bin(start_pct=10, auto_refill=False)
    run(model, days=1, interval_ms=HOUR)
    model.refill()
    assert model.weight_kg == 250
