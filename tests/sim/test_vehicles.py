"""Vehicles: speeds within limits, odometer against distance, fuel theft, shifts."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from m2mhub.core.values import Value
from m2mhub.sim.geo import haversine_m
from m2mhub.sim.keys import FUEL_PCT, IGNITION, LAT, LON, ODOMETER_M, SPEED_KMH
from m2mhub.sim.routes import ROUTES
from m2mhub.sim.vehicles import Vehicle, VehicleParams
from tests.sim.conftest import DAY, HOUR, MONDAY, hour_of, number, weekday_of

HALF_MINUTE = 30_000


def vehicle(seed: int = 2, **params: Any) -> Vehicle:
    return Vehicle(VehicleParams(**params), rng=random.Random(seed))


class Trace:
    """Reports of a vehicle with the limit and episode state at each one."""

    def __init__(self, model: Vehicle, *, days: float, interval_ms: int = HALF_MINUTE) -> None:
        self.rows: list[tuple[int, dict[str, Value], float, bool]] = []
        for ts in range(MONDAY, MONDAY + int(days * DAY), interval_ms):
            values = model.step(ts)
            self.rows.append((ts, values, model.limit_kmh, model.speeding))


@pytest.fixture(scope="module")
def week() -> Trace:
    return Trace(vehicle(speeding_at_h=30), days=7)


def test_speed_stays_within_the_limit_except_while_speeding(week: Trace) -> None:
    lawful = [(number(v, SPEED_KMH), limit) for _, v, limit, speeding in week.rows if not speeding]
    assert all(speed <= limit + 3 for speed, limit in lawful)
    assert max(speed for speed, _ in lawful) > 95  # it does use the expressway
    episode = [(ts, number(v, SPEED_KMH)) for ts, v, _, speeding in week.rows if speeding]
    assert episode, "the speeding episode never happened"
    assert episode[0][0] >= MONDAY + 30 * HOUR
    assert max(speed for _, speed in episode) > 140
    assert episode[-1][0] - episode[0][0] <= 25 * 60_000  # 10 minutes of driving, with stops


def test_odometer_counts_the_distance_between_positions(week: Trace) -> None:
    travelled_m = 0.0
    for (_, a, _, _), (_, b, _, _) in itertools.pairwise(week.rows):
        travelled_m += haversine_m(
            (number(a, LAT), number(a, LON)), (number(b, LAT), number(b, LON))
        )
    first, last = week.rows[0][1], week.rows[-1][1]
    odometer_m = number(last, ODOMETER_M) - number(first, ODOMETER_M)
    assert odometer_m > 1_000_000  # about 300 km a working day
    assert travelled_m == pytest.approx(odometer_m, rel=0.02)


def test_parked_at_night_and_at_weekends(week: Trace) -> None:
    for ts, values, _, _ in week.rows:
        if hour_of(ts) < 6 or weekday_of(ts) >= 5:
            assert values[IGNITION] is False
            assert values[SPEED_KMH] == 0
    depot = ROUTES["east-loop"][0]
    _, saturday, _, _ = next(row for row in week.rows if weekday_of(row[0]) == 5)
    assert haversine_m((number(saturday, LAT), number(saturday, LON)), (depot.lat, depot.lon)) < 1
    driving = {int(hour_of(ts)) for ts, v, _, _ in week.rows if number(v, SPEED_KMH) > 0}
    assert driving <= set(range(7, 18))


def test_fuel_is_burnt_per_kilometre_and_refilled_at_the_depot(week: Trace) -> None:
    fuel = [number(v, FUEL_PCT) for _, v, _, _ in week.rows]
    assert min(fuel) > 0 and max(fuel) <= 100
    refuels = [b - a for a, b in itertools.pairwise(fuel) if b - a > 20]
    assert refuels  # about 30 l a day from an 80 l tank: refuelled within the week


def test_fuel_drops_at_the_theft() -> None:
    theft_h = 2.0  # Monday 02:00, parked
    rows = Trace(vehicle(fuel_start_pct=90, fuel_theft_at_h=theft_h, fuel_theft_l=35), days=0.25)
    before = [number(v, FUEL_PCT) for ts, v, _, _ in rows.rows if ts < MONDAY + theft_h * HOUR]
    after = [number(v, FUEL_PCT) for ts, v, _, _ in rows.rows if ts > MONDAY + 2.2 * HOUR]
    assert min(before) > 88
    assert max(after) < 90 - 100 * 35 / 80 + 2
    assert all(v[IGNITION] is False for _, v, _, _ in rows.rows)


def test_custom_route_from_waypoints() -> None:
    route = [
        {"lat": 48.85, "lon": 2.35, "limit_kmh": 30},
        {"lat": 48.86, "lon": 2.35, "limit_kmh": 50, "stop_min": 2},
        {"lat": 48.86, "lon": 2.37},
    ]
    import msgspec

    params = msgspec.convert({"route": route, "shift_hours": [0, 24]}, VehicleParams)
    model = Vehicle(params, rng=random.Random(1))
    trace = Trace(model, days=0.1)
    assert max(number(v, SPEED_KMH) for _, v, _, _ in trace.rows) > 20
    assert all(48.84 < number(v, LAT) < 48.87 for _, v, _, _ in trace.rows)


def test_params_reject_an_unknown_route() -> None:
    with pytest.raises(ValueError, match="unknown route 'moon'"):
        VehicleParams(route="moon")
