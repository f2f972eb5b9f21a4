"""Distance with GPS jitter and impossible jumps filtered, the device odometer, engine hours."""

from __future__ import annotations

import pytest

from m2mhub.apps.fleet import FleetSettings
from m2mhub.apps.fleet.odometer import (
    EngineState,
    OdometerState,
    advance_engine,
    advance_odometer,
)
from m2mhub.connect.trackers.positions import (
    GPS_VALID,
    IGNITION,
    LAT,
    LON,
    ODOMETER_M,
    RUNTIME_H,
)
from m2mhub.core.values import Value
from tests.apps.fleet.vans import HOUR, MINUTE, SECOND, Van, local_ms

SETTINGS = FleetSettings()


def total(readings: list[tuple[int, dict[str, Value]]], *, use_speed: bool = True) -> float:
    state = OdometerState()
    for ts, values in readings:
        speed = values.get("speed_kmh")
        is_moving = (
            isinstance(speed, float) and speed >= SETTINGS.motion_speed_kmh if use_speed else None
        )
        advance_odometer(state, ts, values, is_moving=is_moving, settings=SETTINGS)
    return state.total_m


def test_a_parked_vehicle_whose_fixes_wander_covers_no_distance() -> None:
    van = Van(local_ms("2026-06-10T00:00"), 52.37, 4.89)
    van.stand(12 * 60, every_s=60, jitter_m=12)  # 720 fixes within 12 m per axis
    assert total(van.readings) == 0
    assert total(van.readings, use_speed=False) == 0


@pytest.mark.parametrize("use_speed", [True, False])
def test_driving_counts_the_true_distance_within_the_sphere_error(use_speed: bool) -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.stand(10, every_s=60)
    van.drive(30, 70, 35)
    van.stand(10, every_s=60)
    van.drive(15, 40, 200)
    counted = total(van.readings, use_speed=use_speed)
    assert abs(counted - van.driven_m) <= 0.005 * van.driven_m + 2 * SETTINGS.jitter_m


def test_an_impossible_jump_is_refused() -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.drive(5, 50, 90)
    ts, values = van.readings[-1]
    van.readings.append((ts + SECOND, {**values, LAT: 48.85, LON: 2.35}))  # Paris, 1 s later
    van.ts += SECOND
    van.drive(5, 50, 90)
    assert total(van.readings) == pytest.approx(van.driven_m, rel=0.005, abs=60)


def test_fixes_without_lock_add_nothing() -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.drive(5, 50, 90)
    ts, values = van.readings[-1]
    van.readings.append((ts + SECOND, {**values, LAT: 52.5, GPS_VALID: False}))
    van.readings.append((ts + 2 * SECOND, {**values, LAT: 0.0, LON: 0.0}))
    assert total(van.readings) == pytest.approx(van.driven_m, rel=0.005, abs=60)


def test_the_device_odometer_is_preferred_across_resets_and_set_values() -> None:
    t0 = local_ms("2026-06-10T06:00")
    readings: list[tuple[int, dict[str, Value]]] = [
        (t0, {ODOMETER_M: 120_000_000.0, LAT: 52.0, LON: 5.0}),
        (t0 + 10 * MINUTE, {ODOMETER_M: 120_010_000.0, LAT: 52.0, LON: 5.5}),  # GPS says 34 km
        (t0 + 11 * MINUTE, {LAT: 52.0, LON: 5.6}),  # no odometer in this record: adds nothing
        (t0 + 20 * MINUTE, {ODOMETER_M: 120_020_000.0}),
        (t0 + 30 * MINUTE, {ODOMETER_M: 0.0}),  # tracker replaced: counter from 0
        (t0 + 40 * MINUTE, {ODOMETER_M: 5_000.0}),
        (t0 + 41 * MINUTE, {ODOMETER_M: 300_000_000.0}),  # set to the dashboard value
        (t0 + 50 * MINUTE, {ODOMETER_M: 300_007_000.0}),
    ]
    state = OdometerState()
    added = [
        advance_odometer(state, ts, values, is_moving=None, settings=SETTINGS)
        for ts, values in readings
    ]
    assert added == [0, 10_000, 0, 10_000, 0, 5_000, 0, 7_000]
    # The total starts at the vehicle's odometer and never jumps.
    assert state.total_m == 120_000_000 + 32_000


def test_engine_hours_from_ignition_on_time() -> None:
    t0 = local_ms("2026-06-10T06:00")
    state = EngineState()
    timeline: list[tuple[int, bool]] = [
        (0, True),
        (10, True),
        (30, False),  # 30 minutes on
        (60, True),
        (75, True),  # 15 more
        (75 + 90, False),  # a 90-minute gap: unknown, not counted
    ]
    for minute, ignition in timeline:
        advance_engine(state, t0 + minute * MINUTE, {IGNITION: ignition}, settings=SETTINGS)
    assert state.total_ms == 45 * MINUTE


def test_engine_hours_prefer_the_runtime_counter_and_survive_its_reset() -> None:
    t0 = local_ms("2026-06-10T06:00")
    state = EngineState()
    points: list[tuple[int, dict[str, Value]]] = [
        (0, {RUNTIME_H: 1500.0, IGNITION: True}),
        (60, {RUNTIME_H: 1501.0, IGNITION: True}),
        (90, {IGNITION: False}),  # the counter governs; on-time is not added on top
        (120, {RUNTIME_H: 1501.5}),
        (180, {RUNTIME_H: 0.0}),  # counter reset
        (240, {RUNTIME_H: 0.25}),
        (250, {RUNTIME_H: 90.0}),  # set: cannot have run 90 hours in 10 minutes
    ]
    for minute, values in points:
        advance_engine(state, t0 + minute * MINUTE, values, settings=SETTINGS)
    assert state.total_ms == pytest.approx(1.75 * HOUR)
