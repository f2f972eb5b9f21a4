"""Trips, stops and events of a van's day, incremental and batch."""

from __future__ import annotations

import dataclasses
import itertools
import random

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from m2mhub.apps.fleet import (
    DetectorState,
    EventKind,
    FleetEvent,
    FleetSettings,
    LateReadingError,
    Output,
    SpeedZone,
    Stop,
    Trip,
    TripDetector,
    accepts,
    detect,
)
from m2mhub.connect.trackers.positions import FUEL_PCT, IGNITION, LAT, LON, SPEED_KMH
from m2mhub.core.values import Value
from tests.apps.fleet.vans import HOUR, MINUTE, SECOND, Van, VanDay, local_ms

SETTINGS = FleetSettings(overspeed_kmh=100, offline_after_ms=HOUR)
#: The sphere's documented error against WGS 84, plus what jitter can add or hide at the
#: two ends of a trip.
SPHERE_ERROR = 0.005
JITTER_ALLOWANCE_M = 2 * SETTINGS.jitter_m

DAY = VanDay()


def trips(outputs: list[Output]) -> list[Trip]:
    return [o for o in outputs if isinstance(o, Trip)]


def stops(outputs: list[Output]) -> list[Stop]:
    return [o for o in outputs if isinstance(o, Stop)]


def events(outputs: list[Output], kind: EventKind | None = None) -> list[FleetEvent]:
    found = [o for o in outputs if isinstance(o, FleetEvent)]
    return [e for e in found if kind is None or e.kind is kind]


def assert_distance(measured: float, true_m: float) -> None:
    assert abs(measured - true_m) <= SPHERE_ERROR * true_m + JITTER_ALLOWANCE_M


def test_the_van_day_has_three_trips_split_by_a_delivery_and_a_data_gap() -> None:
    result = detect(DAY.readings, SETTINGS)
    found = trips(result.outputs)
    assert [(t.start_ts, t.end_ts) for t in found] == [
        # From key on at the depot to key off at the customer, through the red light.
        (DAY.depot_leave, DAY.arrive_a),
        # From key on at the customer (8 minutes idling) to the last fix before the gap.
        (DAY.leave_a, DAY.gap_start),
        # After the gap, from key on at B to key off in the yard.
        (DAY.leave_b, DAY.arrive_yard),
    ]
    for trip, true_m in zip(found, (DAY.trip1_m, DAY.trip2_m, DAY.trip3_m), strict=True):
        assert_distance(trip.distance_m, true_m)
        assert trip.driving_ms + trip.idle_ms == trip.duration_ms == trip.end_ts - trip.start_ts
        assert trip.avg_speed_kmh == pytest.approx(trip.distance_m / trip.duration_ms * 3600)
        assert trip.end_odometer_m - trip.start_odometer_m == pytest.approx(trip.distance_m)
    first, second, third = found
    # Warm-up (2 min) and the red light (1.5 min) are idle time of the first trip.
    assert first.idle_ms == pytest.approx(3.5 * MINUTE, abs=15 * SECOND)
    assert first.driving_ms == pytest.approx(20 * MINUTE, abs=15 * SECOND)
    assert first.max_speed_kmh == 50
    assert second.idle_ms == pytest.approx(8 * MINUTE, abs=15 * SECOND)
    assert second.max_speed_kmh == 120
    assert third.idle_ms < MINUTE
    assert (first.end_lat, first.end_lon) == pytest.approx(DAY.place_a, abs=1e-4)


def test_the_van_day_stops_are_the_depot_the_delivery_and_b_and_the_yard_is_ongoing() -> None:
    result = detect(DAY.readings, SETTINGS)
    found = stops(result.outputs)
    assert [(s.start_ts, s.end_ts) for s in found] == [
        (DAY.readings[0][0], DAY.depot_leave),
        (DAY.arrive_a, DAY.leave_a),
        (DAY.gap_end, DAY.leave_b),
    ]
    assert found[1].duration_ms == 15 * MINUTE + SECOND
    assert (found[1].lat, found[1].lon) == pytest.approx(DAY.place_a, abs=1e-4)
    assert isinstance(result.ongoing, Stop)
    assert result.ongoing.start_ts == DAY.arrive_yard
    assert result.ongoing.end_ts == DAY.readings[-1][0]


def test_the_van_day_events() -> None:
    outputs = detect(DAY.readings, SETTINGS).outputs
    assert [e.ts for e in events(outputs, EventKind.IGNITION_ON)] == [
        DAY.depot_leave,
        DAY.leave_a,
        DAY.leave_b,
    ]
    assert [e.ts for e in events(outputs, EventKind.IGNITION_OFF)] == [
        DAY.arrive_a,
        DAY.gap_end,  # the key went off while the tracker was unpowered
        DAY.arrive_yard,
    ]
    (idling,) = events(outputs, EventKind.IDLING)
    assert idling.values["start_ts"] == DAY.idle_a_start
    assert idling.ts - DAY.idle_a_start == pytest.approx(SETTINGS.idling_limit_ms, abs=30 * SECOND)
    (overspeed,) = events(outputs, EventKind.OVERSPEED)
    assert overspeed.values["start_ts"] == DAY.overspeed_start
    assert overspeed.values["limit_kmh"] == 100.0 and overspeed.values["zone"] == ""
    assert overspeed.ts - DAY.overspeed_start >= SETTINGS.min_overspeed_ms
    (offline,) = events(outputs, EventKind.OFFLINE)
    assert offline.values["last_seen_ts"] == DAY.gap_start
    assert offline.ts == DAY.gap_start + HOUR
    (fuel,) = events(outputs, EventKind.FUEL_DROP)
    assert fuel.ts == DAY.theft
    assert fuel.values["drop"] == pytest.approx(25, abs=0.2)


def test_a_short_traffic_stop_does_not_split_a_trip_without_ignition() -> None:
    # Speed alone decides: the 90 s red light stays inside the trip.
    readings = [
        (ts, {k: v for k, v in values.items() if k != IGNITION}) for ts, values in DAY.readings
    ]
    found = trips(detect(readings, SETTINGS).outputs)
    first = found[0]
    assert first.start_ts < DAY.traffic_stop < first.end_ts
    assert_distance(first.distance_m, DAY.trip1_m)
    assert not events(detect(readings, SETTINGS).outputs, EventKind.IDLING)


def test_a_move_across_the_yard_is_not_a_trip() -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.stand(30, every_s=60)
    van.switch(True)
    van.drive(1, 12, 45)  # 200 m to the loading bay
    van.switch(False)
    van.stand(30, every_s=60)
    result = detect(van.readings, SETTINGS)
    assert trips(result.outputs) == [] and stops(result.outputs) == []
    assert isinstance(result.ongoing, Stop)
    assert result.ongoing.start_ts == van.readings[0][0]


def test_a_speed_zone_limit_applies_inside_it_only() -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.switch(True)
    van.drive(3, 45, 90)  # inside the 30 km/h school zone
    van.drive(5, 70, 90)  # outside it: under the global limit
    school = SpeedZone(name="school", limit_kmh=30, center=(52.37, 4.89), radius_m=1500)
    cfg = FleetSettings(overspeed_kmh=80, speed_zones=(school,))
    (overspeed,) = events(detect(van.readings, cfg).outputs, EventKind.OVERSPEED)
    assert overspeed.values["zone"] == "school" and overspeed.values["limit_kmh"] == 30.0
    assert overspeed.values["start_ts"] == van.readings[2][0]


def test_overspeed_shorter_than_the_minimal_duration_is_not_raised() -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.switch(True)
    van.drive(2, 60, 0)
    van.drive(5 / 60, 140, 0, every_s=5)  # one fast fix: GPS noise or a moment
    van.drive(2, 60, 0)
    assert events(detect(van.readings, SETTINGS).outputs, EventKind.OVERSPEED) == []


# -- incremental == batch -------------------------------------------------------------------


def feed_in_chunks(
    readings: list[tuple[int, dict[str, Value]]],
    cuts: list[int],
    cfg: FleetSettings,
    *,
    now_ms: int | None = None,
) -> tuple[list[Output], DetectorState]:
    """Feed chunk by chunk, storing and reloading the state (JSON) between chunks and
    ticking just before each chunk's first reading, as a live service would."""
    outputs: list[Output] = []
    state: DetectorState | None = None
    bounds = [0, *sorted({c for c in cuts if c < len(readings)}), len(readings)]
    for lo, hi in itertools.pairwise(bounds):
        if lo >= hi:
            continue
        detector = TripDetector(cfg, state)
        outputs += detector.tick(readings[lo][0] - 1)
        for ts, values in readings[lo:hi]:
            outputs += detector.feed(ts, values)
        state = msgspec.json.decode(msgspec.json.encode(detector.snapshot()), type=DetectorState)
    detector = TripDetector(cfg, state)
    if now_ms is not None:
        outputs += detector.tick(now_ms)
    return outputs, detector.snapshot()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(DAY.readings)), max_size=12))
@example(cuts=[284])  # a tick in the evening's silence once left its seal in the state
def test_feeding_the_day_in_any_chunks_equals_the_batch(cuts: list[int]) -> None:
    batch = detect(DAY.readings, SETTINGS)
    outputs, state = feed_in_chunks(DAY.readings, cuts, SETTINGS)
    assert outputs == batch.outputs
    assert state == batch.state
    assert state.emitted == len(outputs)


Step = tuple[int, float, bool, bool]
steps = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 120), st.integers(120, 1200), st.sampled_from([3700, 8000])),
        st.sampled_from([0.0, 0.0, 2.0, 8.0, 35.0, 60.0, 125.0]),
        st.booleans(),  # ignition
        st.booleans(),  # a fuel level in this reading
    ),
    min_size=1,
    max_size=120,
)


def history(plan: list[Step], *, seed: int = 1) -> list[tuple[int, dict[str, Value]]]:
    """Readings of a vehicle following ``plan``: (seconds since the last, speed, key, fuel)."""
    rng = random.Random(seed)
    ts, lat, lon, fuel = local_ms("2026-06-10T06:00"), 52.0, 5.0, 70.0
    readings: list[tuple[int, dict[str, Value]]] = []
    for seconds, speed, ignition, has_fuel in plan:
        ts += seconds * SECOND
        lon += min(speed, 100.0) / 3.6 * min(seconds, 600) / 68_000
        lat += rng.uniform(-8, 8) / 111_000
        values: dict[str, Value] = {LAT: lat, LON: lon, SPEED_KMH: speed, IGNITION: ignition}
        if has_fuel:
            fuel -= rng.choice([0.0, 0.5, 12.0])
            values[FUEL_PCT] = fuel
        readings.append((ts, values))
    return readings


RANDOM_SETTINGS = FleetSettings(
    overspeed_kmh=110, offline_after_ms=HOUR, min_trip_duration_ms=30_000, min_trip_distance_m=100
)


@settings(max_examples=150, deadline=None)
@given(steps, st.lists(st.integers(0, 120), max_size=8), st.booleans())
def test_incremental_with_ticks_equals_batch_on_any_history(
    plan: list[Step], cuts: list[int], use_ignition: bool
) -> None:
    cfg = dataclasses.replace(RANDOM_SETTINGS, use_ignition=use_ignition)
    readings = history(plan)
    now = readings[-1][0] + 3 * HOUR
    batch = detect(readings, cfg, now_ms=now)
    outputs, state = feed_in_chunks(readings, cuts, cfg, now_ms=now)
    assert outputs == batch.outputs
    assert state == batch.state


@settings(max_examples=60, deadline=None)
@given(steps, st.randoms(use_true_random=False))
def test_the_batch_does_not_depend_on_the_order_readings_arrive_in(
    plan: list[Step], rnd: random.Random
) -> None:
    readings = history(plan)
    shuffled = readings[:]
    rnd.shuffle(shuffled)
    assert detect(shuffled, RANDOM_SETTINGS) == detect(readings, RANDOM_SETTINGS)


# -- late data -----------------------------------------------------------------------------


def replay_late(
    readings: list[tuple[int, dict[str, Value]]], late_index: int, cfg: FleetSettings
) -> list[Output]:
    """Run the late-data policy: live feeding without one reading, then that reading late."""
    late_ts, late_values = readings[late_index]
    stored = readings[:late_index] + readings[late_index + 1 :]
    detector = TripDetector(cfg)
    outputs: list[Output] = []
    checkpoints: list[DetectorState] = []
    for ts, values in stored:
        checkpoints.append(detector.snapshot())
        outputs += detector.feed(ts, values)
    checkpoints.append(detector.snapshot())
    if accepts(detector.snapshot(), late_ts):
        # Not late after all (it is the newest): it is simply fed.
        return outputs + detector.feed(late_ts, late_values)
    with pytest.raises(LateReadingError) as caught:
        detector.feed(late_ts, late_values)
    assert caught.value.field == "ts"
    # The policy: store it, replay from the newest checkpoint that accepts it.
    stored = sorted([*stored, (late_ts, late_values)], key=lambda r: r[0])
    checkpoint = next(c for c in reversed(checkpoints) if accepts(c, late_ts))
    newer = [r for r in stored if checkpoint.last_ts is None or r[0] > checkpoint.last_ts]
    replayed = detect(newer, cfg, state=checkpoint)
    return outputs[: checkpoint.emitted] + replayed.outputs


@pytest.mark.parametrize(
    "late_ts",
    [DAY.traffic_stop, DAY.arrive_a + 5 * MINUTE, DAY.leave_a, DAY.gap_start, DAY.theft],
)
def test_a_late_reading_replayed_from_a_checkpoint_equals_the_batch(late_ts: int) -> None:
    index = next(i for i, (ts, _) in enumerate(DAY.readings) if ts >= late_ts)
    assert replay_late(DAY.readings, index, SETTINGS) == detect(DAY.readings, SETTINGS).outputs


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(0, 200))
def test_any_late_reading_replayed_equals_the_batch(plan: list[Step], pick: int) -> None:
    readings = history(plan)
    index = pick % len(readings)
    assert (
        replay_late(readings, index, RANDOM_SETTINGS) == detect(readings, RANDOM_SETTINGS).outputs
    )


def test_a_reading_inside_a_silence_a_tick_acted_on_is_late() -> None:
    van = Van(local_ms("2026-06-10T06:00"), 52.37, 4.89)
    van.switch(True)
    van.drive(5, 50, 0)
    detector = TripDetector(SETTINGS)
    for ts, values in van.readings:
        detector.feed(ts, values)
    closed = detector.tick(van.ts + 2 * HOUR)
    assert [type(o) for o in closed] == [FleetEvent, Trip]  # offline, then the trip
    assert detector.tick(van.ts + 3 * HOUR) == []
    # A buffered fix from 30 minutes after the last one would have kept the trip going.
    with pytest.raises(LateReadingError):
        detector.feed(van.ts + 30 * MINUTE, van.readings[-1][1])
    assert not accepts(detector.snapshot(), van.ts + HOUR)
    assert accepts(detector.snapshot(), van.ts + HOUR + 1)


def test_a_detector_restarted_from_its_stored_state_goes_on() -> None:
    half = len(DAY.readings) // 2
    first = TripDetector(SETTINGS)
    outputs = [o for ts, v in DAY.readings[:half] for o in first.feed(ts, v)]
    stored = msgspec.msgpack.encode(first.snapshot())
    second = TripDetector(SETTINGS, msgspec.msgpack.decode(stored, type=DetectorState))
    outputs += [o for ts, v in DAY.readings[half:] for o in second.feed(ts, v)]
    assert outputs == detect(DAY.readings, SETTINGS).outputs
    decoded = msgspec.json.decode(msgspec.json.encode(outputs), type=list[Output])
    assert decoded == outputs
