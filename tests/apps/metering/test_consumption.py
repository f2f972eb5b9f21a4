"""Interval consumption from cumulative register reads."""

from __future__ import annotations

import random
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2mhub.apps.metering.consumption import (
    Derivation,
    FlagCode,
    Interval,
    MeterDataError,
    Method,
    Quality,
    Read,
    Register,
    SpanKind,
    _actual_pieces,
    _assemble,
    _grid_for,
    _marks,
    _pieces,
    _split,
    derive,
)
from tests.apps.metering.register_reads import FIVE_DIGITS, HOUR, MINUTE, QUARTER, meter_history, ms

AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


def quantities(intervals: tuple[Interval, ...]) -> list[Decimal | None]:
    return [interval.quantity for interval in intervals]


def test_reads_are_spread_over_intervals_in_proportion_to_time() -> None:
    t0 = ms("2026-01-05T00:00")
    # 10 kWh over 30 minutes starting mid-interval: 5 minutes, 15 minutes, 10 minutes.
    reads = [Read(t0 + 10 * MINUTE, Decimal(100)), Read(t0 + 40 * MINUTE, Decimal(110))]
    series = derive(reads, FIVE_DIGITS, length=timedelta(minutes=15), max_span=timedelta(hours=1))
    assert [(i.start - t0) // MINUTE for i in series.intervals] == [0, 15, 30]
    assert series.intervals[1].quantity == Decimal(5)
    assert series.intervals[1].quality is Quality.ACTUAL
    assert series.intervals[1].method is Method.REGISTER
    # The first and last intervals are only partly covered by reads: missing, not guessed.
    assert series.intervals[0].quality is Quality.MISSING
    assert series.intervals[0].quantity is None
    assert series.intervals[2].quality is Quality.MISSING


def test_rollover_counts_on_past_the_maximum() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [
        Read(t0, Decimal("99999.500")),
        Read(t0 + HOUR, Decimal("99999.990")),
        Read(t0 + 2 * HOUR, Decimal("0.740")),
        Read(t0 + 3 * HOUR, Decimal("1.240")),
    ]
    series = derive(reads, FIVE_DIGITS, length=timedelta(hours=1))
    assert quantities(series.intervals) == [
        Decimal("0.490"),
        Decimal("0.750"),
        Decimal("0.500"),
    ]
    assert series.intervals[1].flags == (FlagCode.ROLLOVER,)
    assert [span.kind for span in series.spans] == [
        SpanKind.COUNT,
        SpanKind.ROLLOVER,
        SpanKind.COUNT,
    ]
    (flag,) = series.flags
    assert flag.code is FlagCode.ROLLOVER
    assert (flag.start, flag.end, flag.value) == (t0 + HOUR, t0 + 2 * HOUR, Decimal("0.740"))
    assert "0.750 kWh consumed" in flag.message


def test_reset_restarts_counting_from_the_new_value() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [
        Read(t0, Decimal("5120.0")),
        Read(t0 + HOUR, Decimal("5121.5")),
        # Meter exchanged: the new one starts near zero. 5121.5 -> 3 is no rollover.
        Read(t0 + 2 * HOUR, Decimal("3.0")),
        Read(t0 + 3 * HOUR, Decimal("4.2")),
    ]
    series = derive(reads, FIVE_DIGITS, length=timedelta(hours=1))
    assert quantities(series.intervals)[:3] == [Decimal("1.5"), None, Decimal("1.2")]
    assert series.intervals[1].quality is Quality.MISSING
    assert series.intervals[1].flags == (FlagCode.RESET,)
    assert series.spans[1].kind is SpanKind.RESET
    assert series.spans[1].delta is None
    (flag,) = series.flags
    assert flag.code is FlagCode.RESET
    assert flag.value == Decimal("3.0")
    assert "restarts from the new value" in flag.message


def test_a_register_without_a_maximum_never_rolls_over() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [Read(t0, Decimal("99999.99")), Read(t0 + HOUR, Decimal("0.01"))]
    series = derive(reads, Register(), length=timedelta(hours=1))
    assert series.spans[0].kind is SpanKind.RESET


def test_net_register_running_backwards_is_negative_consumption() -> None:
    t0 = ms("2026-01-05T12:00")
    reads = [Read(t0, Decimal("800.0")), Read(t0 + HOUR, Decimal("797.5"))]
    net = Register(maximum=Decimal("99999.9"), import_only=False)
    series = derive(reads, net, length=timedelta(hours=1))
    assert series.intervals[0].quantity == Decimal("-2.5")
    assert series.intervals[0].quality is Quality.ACTUAL
    assert series.flags == ()


def test_net_register_exporting_runs_backwards_through_zero() -> None:
    t0 = ms("2026-06-15T12:00")
    net = Register(maximum=Decimal("99999.9"), import_only=False)
    reads = [Read(t0, Decimal("1.5")), Read(t0 + HOUR, Decimal("99998.0"))]
    series = derive(reads, net, length=timedelta(hours=1))
    assert series.intervals[0].quantity == Decimal("-3.5")
    assert series.intervals[0].flags == (FlagCode.ROLLOVER,)
    assert "3.5 kWh exported" in series.flags[0].message


def test_exact_duplicates_collapse_and_conflicting_ones_are_left_out_and_flagged() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [
        Read(t0, Decimal("10.0")),
        Read(t0, Decimal("10.00")),  # the same value, written differently
        Read(t0 + HOUR, Decimal("11")),
        Read(t0 + HOUR, Decimal("19")),  # conflict: which is right is unknown
        Read(t0 + 2 * HOUR, Decimal("12")),
    ]
    series = derive(reads, FIVE_DIGITS, length=timedelta(hours=1), max_span=timedelta(hours=3))
    assert [read.ts for read in series.reads] == [t0, t0 + 2 * HOUR]
    # Neither 11 nor 19 is used: the 2 kWh between the neighbours spread evenly.
    assert quantities(series.intervals)[:2] == [Decimal(1), Decimal(1)]
    assert series.intervals[1].flags == (FlagCode.CONFLICT,)
    (flag,) = series.flags
    assert flag.code is FlagCode.CONFLICT
    assert flag.start == t0 + HOUR
    assert "11, 19" in flag.message


def test_reads_further_apart_than_max_span_leave_a_gap() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [Read(t0 + k * QUARTER, Decimal(k)) for k in (0, 1, 2, 5, 6)]
    series = derive(reads, FIVE_DIGITS, length=timedelta(minutes=15))
    assert [i.quality for i in series.intervals[:5]] == [
        Quality.ACTUAL,
        Quality.ACTUAL,
        Quality.MISSING,
        Quality.MISSING,
        Quality.MISSING,
    ]
    assert [span.is_gap for span in series.spans] == [False, False, True, False]
    assert series.spans[2].delta == Decimal(3)


def test_window_beyond_the_reads_is_missing() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [Read(t0 + HOUR, Decimal(1)), Read(t0 + 2 * HOUR, Decimal(2))]
    series = derive(reads, FIVE_DIGITS, length=timedelta(hours=1), start=t0, end=t0 + 4 * HOUR)
    assert [i.quality for i in series.intervals] == [
        Quality.MISSING,
        Quality.ACTUAL,
        Quality.MISSING,
        Quality.MISSING,
    ]
    assert (series.start, series.end) == (t0, t0 + 4 * HOUR)


def test_window_uses_the_reads_just_outside_it() -> None:
    t0 = ms("2026-01-05T00:00")
    reads = [Read(t0 + k * HOUR, Decimal(2 * k)) for k in range(10)]
    series = derive(
        reads, FIVE_DIGITS, length=timedelta(hours=1), start=t0 + 3 * HOUR, end=t0 + 5 * HOUR
    )
    assert quantities(series.intervals) == [Decimal(2), Decimal(2)]
    assert [read.ts for read in series.reads] == [t0 + 3 * HOUR, t0 + 4 * HOUR, t0 + 5 * HOUR]


@pytest.mark.parametrize(
    ("day", "count"),
    [("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-15", 24)],
)
def test_hourly_intervals_of_a_local_day_in_amsterdam(day: str, count: int) -> None:
    start = ms(f"{day}T00:00+00:00") - HOUR * 3  # well before local midnight
    reads = [Read(start + k * HOUR, Decimal(k) * Decimal("0.5")) for k in range(31)]
    local_midnight = datetime.fromisoformat(day).replace(tzinfo=AMSTERDAM)
    day_start = int(local_midnight.timestamp() * 1000)
    day_end = int((local_midnight + timedelta(days=1)).timestamp() * 1000)
    series = derive(
        reads,
        FIVE_DIGITS,
        length=timedelta(hours=1),
        tz="Europe/Amsterdam",
        start=day_start,
        end=day_end,
    )
    assert len(series.intervals) == count
    assert all(i.quality is Quality.ACTUAL for i in series.intervals)
    assert sum(quantities(series.intervals), Decimal(0)) == Decimal(count) / 2  # type: ignore[arg-type]
    local_hours = [datetime.fromtimestamp(i.start / 1000, AMSTERDAM).hour for i in series.intervals]
    if count == 23:
        assert 2 not in local_hours  # 02:00 to 03:00 does not exist that day
    if count == 25:
        assert local_hours.count(2) == 2  # 02:00 to 03:00 happens twice


def test_a_daily_interval_on_the_spring_day_lasts_23_hours() -> None:
    start = ms("2026-03-27T00:00")
    reads = [Read(start + k * HOUR, Decimal(k)) for k in range(4 * 24)]
    series = derive(reads, FIVE_DIGITS, length=timedelta(days=1), tz="Europe/Amsterdam")
    lengths = {
        datetime.fromtimestamp(i.start / 1000, AMSTERDAM).date().isoformat(): (i.end - i.start)
        // HOUR
        for i in series.intervals
    }
    assert lengths["2026-03-28"] == 24
    assert lengths["2026-03-29"] == 23
    assert series.intervals[2].quantity == Decimal(23)


def test_read_of_converts_floats_by_their_decimal_repr() -> None:
    read = Read.of(datetime(2026, 1, 5, tzinfo=UTC), 12345.1)
    assert read.value == Decimal("12345.1")
    assert read.ts == ms("2026-01-05T00:00")
    assert Read.of(0, "7.25").value == Decimal("7.25")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Read(0, 1.5), "value"),
        (lambda: Read(0, Decimal("NaN")), "value"),
        (lambda: Read.of(0, "abc"), "value"),
        (lambda: Read.of(datetime(2026, 1, 5), 1), "ts"),
        (lambda: Register(maximum=Decimal(-1)), "maximum"),
        (lambda: Register(rollover_fraction=Decimal(2)), "rollover_fraction"),
        (lambda: derive([], FIVE_DIGITS, length=timedelta(minutes=7)), "length"),
        (lambda: derive([], FIVE_DIGITS, length=timedelta(hours=1), tz="Mars/Base"), "tz"),
        (lambda: derive([], FIVE_DIGITS, length=timedelta(hours=1), start=5, end=5), "start"),
    ],
)
def test_bad_input_names_the_field(make: object, field: str) -> None:
    assert callable(make)
    with pytest.raises(MeterDataError) as caught:
        make()
    assert caught.value.field == field


def test_no_reads_and_no_window_gives_no_intervals() -> None:
    series = derive([], FIVE_DIGITS, length=timedelta(hours=1))
    assert series.intervals == ()
    assert series.start is None


# --- properties ------------------------------------------------------------------


def spread_all(reads: list[Read], tz: str = "Europe/Amsterdam") -> Derivation:
    return derive(
        reads,
        FIVE_DIGITS,
        length=timedelta(minutes=15),
        tz=tz,
        max_span=timedelta(days=30),
    )


@settings(max_examples=150, deadline=None)
@given(meter_history(resets=False, aligned=False))
def test_interval_sum_equals_register_difference_across_rollovers(
    history: tuple[list[Read], Decimal],
) -> None:
    reads, consumed = history
    series = spread_all(reads)
    assert all(i.quality is Quality.ACTUAL for i in series.intervals)
    assert sum(quantities(series.intervals), Decimal(0)) == consumed  # type: ignore[arg-type]
    assert all(i.quantity is not None and i.quantity >= 0 for i in series.intervals)


@settings(max_examples=150, deadline=None)
@given(meter_history(resets=True, aligned=True))
def test_interval_sum_equals_register_difference_across_resets(
    history: tuple[list[Read], Decimal],
) -> None:
    reads, consumed = history
    series = spread_all(reads)
    actual = [i.quantity for i in series.intervals if i.quality is Quality.ACTUAL]
    assert sum(actual, Decimal(0)) == consumed  # type: ignore[arg-type]
    # Exactly the intervals between the reads around a reset are missing.
    reset_time = sum(s.end - s.start for s in series.spans if s.kind is SpanKind.RESET)
    missing = [i for i in series.intervals if i.quality is Quality.MISSING]
    assert sum(i.end - i.start for i in missing) == reset_time
    assert all(FlagCode.RESET in i.flags for i in missing)


@settings(max_examples=100, deadline=None)
@given(meter_history(resets=True, aligned=False), st.randoms(use_true_random=False))
def test_order_and_duplicates_do_not_change_the_result(
    history: tuple[list[Read], Decimal], shuffler: random.Random
) -> None:
    reads, _ = history
    expected = derive(reads, FIVE_DIGITS, length=timedelta(minutes=15))
    arrived = reads + shuffler.sample(reads, k=len(reads) // 2)
    shuffler.shuffle(arrived)
    assert derive(arrived, FIVE_DIGITS, length=timedelta(minutes=15)) == expected


@settings(max_examples=60, deadline=None)
@given(
    meter_history(resets=True, aligned=False),
    st.sampled_from([timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)]),
    st.sampled_from(["Europe/Amsterdam", "UTC", "Asia/Kolkata", "America/St_Johns"]),
)
def test_intervals_are_contiguous_and_aligned_to_the_local_clock(
    history: tuple[list[Read], Decimal], length: timedelta, tz: str
) -> None:
    reads, _ = history
    series = derive(reads, FIVE_DIGITS, length=length, tz=tz)
    zone = zoneinfo.ZoneInfo(tz)
    assert series.intervals
    assert series.intervals[0].start <= reads[0].ts
    assert series.intervals[-1].end >= reads[-1].ts
    for before, after in zip(series.intervals, series.intervals[1:], strict=False):
        assert before.end == after.start
    step = length // timedelta(minutes=1)
    for interval in series.intervals:
        local = datetime.fromtimestamp(interval.start / 1000, zone)
        assert (local.hour * 60 + local.minute) % step == 0
        assert local.second == 0
        if length < timedelta(days=1):
            assert interval.end - interval.start == length // timedelta(milliseconds=1)
        else:
            ends = datetime.fromtimestamp(interval.end / 1000, zone)
            assert ends.date() - local.date() == timedelta(days=1)
            assert (ends.hour, ends.minute) == (0, 0)


def assembled(series: Derivation) -> tuple[Interval, ...]:
    """The intervals of ``series`` as the general path builds them: every step spread
    into pieces (``_actual_pieces``) and the pieces assembled (``_assemble``)."""
    assert series.start is not None and series.end is not None
    bounds = _grid_for(series)
    pieces = _actual_pieces(bounds, series.spans)
    marks = _marks(bounds, series.spans, series.flags)
    return _assemble(bounds, pieces, marks, (series.start, series.end))


@settings(max_examples=150, deadline=None)
@given(
    meter_history(resets=True, aligned=True),
    st.sampled_from([FIVE_DIGITS, Register(), Register.of_digits(5, 3, import_only=False)]),
    st.integers(-8, 8),
    st.integers(-8, 8),
    st.sampled_from([timedelta(minutes=15), timedelta(hours=1)]),
)
def test_reads_on_the_grid_give_the_intervals_of_the_general_path(
    history: tuple[list[Read], Decimal],
    register: Register,
    early: int,
    late: int,
    max_span: timedelta,
) -> None:
    # Reads on quarter-hours, steps of one or more intervals, gaps, rollovers, resets
    # and windows reaching past the reads: the shortcut for steps of exactly one
    # interval (consumption._aligned) must give what the pieces give.
    reads, _ = history
    start, end = reads[0].ts + early * QUARTER, reads[-1].ts + late * QUARTER
    if start >= end:
        end = start + QUARTER
    series = derive(
        reads,
        register,
        length=timedelta(minutes=15),
        tz="Europe/Amsterdam",
        start=start,
        end=end,
        max_span=max_span,
    )
    assert series.intervals == assembled(series)


@settings(max_examples=100, deadline=None)
@given(meter_history(resets=False, aligned=False))
def test_reads_off_the_grid_give_the_intervals_of_the_general_path(
    history: tuple[list[Read], Decimal],
) -> None:
    reads, _ = history
    series = derive(reads, Register(), length=timedelta(minutes=15), max_span=timedelta(days=1))
    assert series.intervals == assembled(series)


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**6), max_value=10**6
    ),
    st.integers(1, QUARTER),
    st.integers(0, QUARTER - 1),
    st.none() | st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10),
)
def test_a_step_inside_one_interval_is_its_whole_total(
    total: Decimal, length: int, offset: int, rate: Decimal | None
) -> None:
    # _pieces' shortcut for one overlapped interval equals _split's last part.
    bounds = [0, QUARTER, 2 * QUARTER]
    start = min(offset, QUARTER - 1)
    end = min(start + length, QUARTER)
    rates = None if rate is None else [rate]
    (piece,) = _pieces(bounds, start, end, total, Method.REGISTER, rates=rates)
    weight = Decimal(end - start) if rate is None else rate * (end - start)
    assert (piece.index, piece.ms) == (0, end - start)
    assert str(piece.quantity) == str(_split(total, [weight])[0])
