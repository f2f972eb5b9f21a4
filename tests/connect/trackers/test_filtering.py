"""The tracker position filter: what it refuses, what it keeps, and that it counts why."""

from __future__ import annotations

from m2mhub.connect.trackers.filtering import (
    DUPLICATE,
    FUTURE,
    INVALID_FIX,
    OUT_OF_RANGE,
    TOO_FAST,
    ZERO,
    FilterSettings,
    Fix,
    PositionFilter,
    Reading,
)
from m2mhub.core.values import Value

NOW = 1_790_000_000_000
MINUTE = 60_000
# Two points 1.11 km apart (0.01 degree of latitude).
HOME = (52.37, 4.89)
NEAR = (52.38, 4.89)


def fix(ts: int, lat: float, lon: float, **more: Value) -> Reading:
    return ts, {"lat": lat, "lon": lon, "speed_kmh": 30, "ignition": True, **more}


def make(last: Fix | None = None) -> PositionFilter:
    async def last_fix(device_pk: int) -> Fix | None:
        return last

    return PositionFilter(FilterSettings(max_speed_kmh=300, future_tolerance_ms=MINUTE), last_fix)


async def test_good_fixes_pass_unchanged() -> None:
    f = make()
    readings = [fix(NOW - 2 * MINUTE, *HOME), fix(NOW - MINUTE, *NEAR)]
    assert await f.apply(1, readings, NOW) == readings
    assert not f.refused


async def test_a_bad_fix_loses_its_position_but_keeps_the_rest() -> None:
    f = make()
    kept = await f.apply(
        1,
        [
            fix(NOW - 3 * MINUTE, *HOME, gps_valid=False),
            fix(NOW - 2 * MINUTE, 0.0, 0.0),
            fix(NOW - MINUTE, 91.0, 4.89),
        ],
        NOW,
    )
    assert [values for _, values in kept] == [
        {"ignition": True, "gps_valid": False},
        {"ignition": True},
        {"ignition": True},
    ]
    assert f.refused == {INVALID_FIX: 1, ZERO: 1, OUT_OF_RANGE: 1}


async def test_future_and_repeated_readings_are_dropped_whole() -> None:
    f = make()
    first = [fix(NOW - 2 * MINUTE, *HOME), fix(NOW - MINUTE, *NEAR)]
    await f.apply(1, first, NOW)
    # the tracker missed the acknowledgement and sends the packet again, plus a new record
    again = [*first, fix(NOW, *NEAR), fix(NOW + 2 * MINUTE, *NEAR)]
    kept = await f.apply(1, again, NOW)
    assert [ts for ts, _ in kept] == [NOW]
    assert f.refused == {DUPLICATE: 2, FUTURE: 1}
    # another device's timestamps are its own
    assert len(await f.apply(2, first, NOW)) == 2


async def test_an_impossible_jump_is_refused_against_the_last_stored_fix() -> None:
    # 1.11 km in 10 s is 400 km/h; the reference comes from the store (a restart)
    f = make(last=(NOW - 10_000, *HOME))
    kept = await f.apply(1, [fix(NOW, *NEAR)], NOW)
    assert kept == [(NOW, {"ignition": True})] and f.refused == {TOO_FAST: 1}
    # the refused fix is not the new reference: a minute later from home is fine
    kept = await f.apply(1, [fix(NOW + MINUTE, *HOME)], NOW + MINUTE)
    assert kept[0][1]["lat"] == HOME[0]


async def test_a_late_fix_is_kept_without_moving_the_reference() -> None:
    f = make()
    await f.apply(1, [fix(NOW, *HOME)], NOW)
    late = await f.apply(1, [fix(NOW - 5 * MINUTE, *NEAR)], NOW)
    assert late[0][1]["lat"] == NEAR[0]
    # 10 s after the newest fix, 1.11 km away from it: too fast, whatever the late one said
    await f.apply(1, [fix(NOW + 10_000, *NEAR)], NOW + 10_000)
    assert f.refused == {TOO_FAST: 1}
