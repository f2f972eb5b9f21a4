"""Asset trackers: working hours on site, engine hours, battery, leaving the site."""

from __future__ import annotations

import random
from typing import Any

from m2mhub.sim.geo import contains, haversine_m
from m2mhub.sim.keys import BATTERY_PCT, IGNITION, LAT, LON, RUNTIME_H
from m2mhub.sim.trackers import DEFAULT_SITE, AssetTracker, TrackerParams
from tests.sim.conftest import HOUR, MONDAY, hour_of, number, run, weekday_of

FIVE_MIN = 5 * 60_000


def tracker(seed: int = 3, **params: Any) -> AssetTracker:
    return AssetTracker(TrackerParams(**params), rng=random.Random(seed))


def test_equipment_works_on_site_in_working_hours() -> None:
    reports = run(tracker(), days=7, interval_ms=FIVE_MIN)
    for _, values in reports:
        assert contains(DEFAULT_SITE, (number(values, LAT), number(values, LON)))
        assert 0 <= number(values, BATTERY_PCT) <= 100
    running = [(ts, v) for ts, v in reports if v[IGNITION]]
    assert running
    assert all(weekday_of(ts) < 5 and 7 <= hour_of(ts) < 17 for ts, _ in running)
    runtime = [number(v, RUNTIME_H) for _, v in reports]
    worked = runtime[-1] - runtime[0]
    assert 15 < worked < 45  # 5 days x 10 h x about 65 %
    weekend = [number(v, RUNTIME_H) for ts, v in reports if weekday_of(ts) >= 5]
    assert max(weekend) == min(weekend)


def test_battery_drains_without_the_engine() -> None:
    reports = run(
        tracker(charges_from_engine=False, battery_start_pct=50), days=10, interval_ms=HOUR
    )
    battery = [number(v, BATTERY_PCT) for _, v in reports]
    assert battery == sorted(battery, reverse=True)
    assert battery[0] - battery[-1] > 20


def test_tracker_leaves_its_site() -> None:
    leaves_h = 30.0
    reports = run(tracker(leaves_site_at_h=leaves_h), days=3, interval_ms=FIVE_MIN)
    for ts, values in reports:
        inside = contains(DEFAULT_SITE, (number(values, LAT), number(values, LON)))
        if ts < MONDAY + leaves_h * HOUR:
            assert inside
        elif ts >= MONDAY + (leaves_h + 0.25) * HOUR:
            assert not inside
    _, last = reports[-1]
    _, first = reports[0]
    far = haversine_m(
        (number(first, LAT), number(first, LON)), (number(last, LAT), number(last, LON))
    )
    assert far > 10_000
