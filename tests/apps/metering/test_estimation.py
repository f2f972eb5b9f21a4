"""Estimates for missing intervals: linear for short gaps, a weekly profile for long ones."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings

from m2mhub.apps.metering.consumption import (
    FlagCode,
    Interval,
    MeterDataError,
    Method,
    Quality,
    Read,
    derive,
)
from m2mhub.apps.metering.estimation import EstimationRules, _estimated, _stretches, estimate
from tests.apps.metering.register_reads import FIVE_DIGITS, HOUR, QUARTER, meter_history, ms

AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")
HOURLY = timedelta(hours=1)


def hourly_load(ts: int) -> Decimal:
    """A household's hourly kWh: low at night, high in the day (local time)."""
    hour = datetime.fromtimestamp(ts / 1000, AMSTERDAM).hour
    return Decimal("0.2") if hour < 7 or hour >= 23 else Decimal("1.0")


def hourly_reads(start: int, hours: int, *, value: Decimal = Decimal(1000)) -> list[Read]:
    """Reads on the hour of a meter following :func:`hourly_load`."""
    reads = [Read(start, value)]
    for k in range(hours):
        value += hourly_load(start + k * HOUR)
        reads.append(Read(start + (k + 1) * HOUR, value))
    return reads


def by_start(intervals: tuple[Interval, ...]) -> dict[int, Interval]:
    return {interval.start: interval for interval in intervals}


def test_short_gap_is_interpolated_linearly() -> None:
    t0 = ms("2026-01-05T06:00")
    values = ["100.000", "100.250", "100.500", None, None, "101.400", "101.650"]
    reads = [Read.of(t0 + k * QUARTER, v) for k, v in enumerate(values) if v is not None]
    series = derive(reads, FIVE_DIGITS, length=timedelta(minutes=15))
    assert [i.quality for i in series.intervals[2:5]] == [Quality.MISSING] * 3
    filled = estimate(series)
    assert [i.quantity for i in filled] == [
        Decimal("0.250"),
        Decimal("0.250"),
        Decimal("0.3"),
        Decimal("0.3"),
        Decimal("0.3"),
        Decimal("0.250"),
    ]
    assert [(i.quality, i.method) for i in filled[2:5]] == [(Quality.ESTIMATED, Method.LINEAR)] * 3
    assert filled[:2] == series.intervals[:2]


def test_long_gap_follows_the_profile_of_previous_weeks_scaled_to_the_register() -> None:
    week_ago = ms("2026-01-05T00:00+01:00")  # Monday, local midnight
    monday = week_ago + 7 * 24 * HOUR
    earlier = derive(
        hourly_reads(week_ago - 21 * 24 * HOUR, 28 * 24),
        FIVE_DIGITS,
        length=HOURLY,
        tz="Europe/Amsterdam",
    )
    # This Monday the meter went quiet from 02:00 to 14:00 local; the reads on both sides
    # say 16 kWh were used meanwhile, twice what the profile (5 x 0.2 + 7 x 1.0) says.
    before = hourly_reads(monday, 2, value=Decimal(5000))
    after = hourly_reads(monday + 14 * HOUR, 10, value=before[-1].value + 16)
    series = derive(before + after, FIVE_DIGITS, length=HOURLY, tz="Europe/Amsterdam")
    filled = by_start(estimate(series, history=earlier.intervals))
    gap = [filled[monday + k * HOUR] for k in range(2, 14)]
    assert all((i.quality, i.method) == (Quality.ESTIMATED, Method.PROFILE) for i in gap)
    assert [i.quantity for i in gap] == [Decimal("0.4")] * 5 + [Decimal("2.0")] * 7
    assert sum(i.quantity for i in gap if i.quantity is not None) == Decimal(16)
    assert filled[monday + 15 * HOUR] == by_start(series.intervals)[monday + 15 * HOUR]


def test_long_gap_without_a_profile_falls_back_to_linear_and_says_so() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [Read(t0, Decimal(0)), Read(t0 + HOUR, Decimal(1)), Read(t0 + 13 * HOUR, Decimal(25))]
    filled = estimate(derive(reads, FIVE_DIGITS, length=HOURLY))
    assert [i.quantity for i in filled[1:]] == [Decimal(2)] * 12
    assert all(i.method is Method.LINEAR and FlagCode.NO_PROFILE in i.flags for i in filled[1:])


def test_after_the_last_read_short_gaps_continue_the_last_rate() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [Read(t0, Decimal(0)), Read(t0 + HOUR, Decimal("1.5"))]
    series = derive(reads, FIVE_DIGITS, length=HOURLY, start=t0, end=t0 + 4 * HOUR)
    filled = estimate(series)
    assert [i.quantity for i in filled] == [Decimal("1.5")] * 4
    assert [i.quality for i in filled] == [Quality.ACTUAL] + [Quality.ESTIMATED] * 3


def test_after_the_last_read_long_gaps_take_the_profile_as_it_is() -> None:
    week_ago = ms("2026-01-05T00:00+01:00")
    monday = week_ago + 7 * 24 * HOUR
    history = derive(
        hourly_reads(week_ago, 7 * 24), FIVE_DIGITS, length=HOURLY, tz="Europe/Amsterdam"
    ).intervals
    reads = hourly_reads(monday, 6)
    series = derive(
        reads,
        FIVE_DIGITS,
        length=HOURLY,
        tz="Europe/Amsterdam",
        start=monday,
        end=monday + 24 * HOUR,
    )
    filled = estimate(series, history=history)
    assert [i.quantity for i in filled] == [hourly_load(i.start) for i in filled]
    assert {i.method for i in filled[6:]} == {Method.PROFILE}


def test_a_reset_is_bridged_by_a_rate_between_its_neighbours() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [
        Read(t0, Decimal(700)),
        Read(t0 + HOUR, Decimal(701)),  # 1 kWh/h before the meter exchange
        Read(t0 + 2 * HOUR, Decimal(0)),
        Read(t0 + 3 * HOUR, Decimal(3)),  # 3 kWh/h after it
    ]
    filled = estimate(derive(reads, FIVE_DIGITS, length=HOURLY))
    assert filled[1].quantity == Decimal(2)
    assert (filled[1].quality, filled[1].method) == (Quality.ESTIMATED, Method.LINEAR)
    assert FlagCode.RESET in filled[1].flags


def test_a_late_read_replaces_the_estimate_with_actual_data() -> None:
    t0 = ms("2026-01-05T00:00")
    on_time = [Read(t0 + k * HOUR, Decimal(k * k)) for k in (0, 1, 4, 5)]
    first = estimate(derive(on_time, FIVE_DIGITS, length=HOURLY))
    assert [i.quality for i in first[1:4]] == [Quality.ESTIMATED] * 3
    assert [i.quantity for i in first[1:4]] == [Decimal(5)] * 3
    late = [Read(t0 + 2 * HOUR, Decimal(4)), Read(t0 + 3 * HOUR, Decimal(9))]
    second = estimate(derive(on_time + late, FIVE_DIGITS, length=HOURLY))
    assert [i.quality for i in second] == [Quality.ACTUAL] * 5
    assert [i.quantity for i in second] == [Decimal(n) for n in (1, 3, 5, 7, 9)]


def test_nothing_to_go_on_stays_missing() -> None:
    t0 = ms("2026-01-05T00:00")
    series = derive([], FIVE_DIGITS, length=HOURLY, start=t0, end=t0 + 2 * HOUR)
    assert [i.quality for i in estimate(series)] == [Quality.MISSING] * 2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"short_gap": timedelta(hours=-1)}, "short_gap"),
        ({"weeks": 2, "min_weeks": 3}, "min_weeks"),
    ],
)
def test_rules_refuse_nonsense(options: dict[str, Any], field: str) -> None:
    with pytest.raises(MeterDataError) as caught:
        EstimationRules(**options)
    assert caught.value.field == field


@settings(max_examples=100, deadline=None)
@given(meter_history(resets=True, aligned=False))
def test_estimation_never_changes_actual_intervals(history: tuple[list[Read], Decimal]) -> None:
    reads, _ = history
    series = derive(reads, FIVE_DIGITS, length=timedelta(minutes=15), tz="Europe/Amsterdam")
    filled = estimate(series, rules=EstimationRules(short_gap=timedelta(minutes=45)))
    assert [(i.start, i.end) for i in filled] == [(i.start, i.end) for i in series.intervals]
    for derived, estimated in zip(series.intervals, filled, strict=True):
        if derived.quality is Quality.ACTUAL:
            assert estimated == derived
        else:
            assert estimated.quality in {Quality.ESTIMATED, Quality.MISSING}


@settings(max_examples=100, deadline=None)
@given(meter_history(resets=False, aligned=False))
def test_estimates_add_up_to_the_register_difference(history: tuple[list[Read], Decimal]) -> None:
    reads, consumed = history
    series = derive(reads, FIVE_DIGITS, length=timedelta(minutes=15), tz="Europe/Amsterdam")
    filled = estimate(series)
    assert all(i.quantity is not None for i in filled)
    assert sum(i.quantity for i in filled if i.quantity is not None) == consumed


@settings(max_examples=100, deadline=None)
@given(meter_history(resets=True, aligned=True))
def test_a_series_with_nothing_to_fill_comes_back_as_the_general_path_builds_it(
    history: tuple[list[Read], Decimal],
) -> None:
    # estimate() returns a series with no stretch to fill as it is; rebuilding it
    # (estimation._estimated) gives the same intervals, with or without stretches.
    reads, _ = history
    series = derive(
        reads, FIVE_DIGITS, length=timedelta(minutes=15), tz="Europe/Amsterdam", max_span=HOURLY
    )
    stretches = _stretches(series)
    assert estimate(series) == _estimated(series, stretches, (), None)
    if not stretches:
        assert estimate(series) is series.intervals
