"""Validation: each failed read or interval flagged with a code and an explanation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from m2mhub.apps.metering.consumption import (
    Flag,
    FlagCode,
    Interval,
    MeterDataError,
    Quality,
    Read,
    Register,
    Subject,
    derive,
)
from m2mhub.apps.metering.validation import ValidationRules, mark, validate
from tests.apps.metering.register_reads import FIVE_DIGITS, HOUR, ms

HOURLY = timedelta(hours=1)
T0 = ms("2026-01-05T00:00")
NOW = ms("2026-02-01T00:00")


def register_from(steps: list[str], *, start: str = "1000") -> list[Read]:
    """Hourly reads from T0 of a register moving by ``steps`` kWh each hour."""
    value = Decimal(start)
    reads = [Read(T0, value)]
    for k, step in enumerate(steps, start=1):
        value += Decimal(step)
        reads.append(Read(T0 + k * HOUR, value))
    return reads


def codes(flags: tuple[Flag, ...]) -> list[FlagCode]:
    return [flag.code for flag in flags]


def test_clean_reads_raise_no_flags() -> None:
    series = derive(register_from(["1.0", "1.2", "0.8"] * 8), FIVE_DIGITS, length=HOURLY)
    assert validate(series, now=NOW) == ()


def test_frozen_register_is_flagged_while_it_normally_moves() -> None:
    steps = ["1.0"] * 10 + ["0"] * 9 + ["1.0"] * 10
    series = derive(register_from(steps), FIVE_DIGITS, length=HOURLY)
    (flag,) = validate(series, now=NOW)
    assert flag.code is FlagCode.FROZEN
    assert flag.subject is Subject.INTERVAL
    assert (flag.start, flag.end) == (T0 + 10 * HOUR, T0 + 19 * HOUR)
    assert "stood still at 1010.0 kWh for 9 intervals" in flag.message


def test_a_meter_that_normally_stands_still_is_not_frozen() -> None:
    steps = ["0"] * 20 + ["0.5"] + ["0"] * 10
    series = derive(register_from(steps), FIVE_DIGITS, length=HOURLY)
    assert FlagCode.FROZEN not in codes(validate(series, now=NOW))


def test_spike_far_above_the_median_is_flagged() -> None:
    steps = ["1.0", "1.1", "0.9"] * 4 + ["48.0"] + ["1.0"] * 4
    series = derive(register_from(steps), FIVE_DIGITS, length=HOURLY)
    (flag,) = validate(series, now=NOW)
    assert flag.code is FlagCode.SPIKE
    assert (flag.start, flag.value) == (T0 + 12 * HOUR, Decimal("48.0"))
    assert "more than 10 times the median interval (1.0 kWh)" in flag.message


def test_high_and_low_limits() -> None:
    series = derive(register_from(["1.0", "6.5", "0.1", "1.0"]), FIVE_DIGITS, length=HOURLY)
    rules = ValidationRules(high=Decimal(5), low=Decimal("0.2"))
    flags = validate(series, rules, now=NOW)
    assert [(f.code, f.start) for f in flags] == [
        (FlagCode.HIGH, T0 + HOUR),
        (FlagCode.LOW, T0 + 2 * HOUR),
    ]
    assert "above the high limit 5" in flags[0].message


def test_negative_consumption_on_an_import_only_register_is_flagged_on_the_read() -> None:
    reads = [*register_from(["1.0", "1.0"]), Read(T0 + 3 * HOUR, Decimal("1001.5"))]
    series = derive(reads, FIVE_DIGITS, length=HOURLY)
    (flag,) = validate(series, now=NOW)
    assert flag.code is FlagCode.NEGATIVE
    assert flag.subject is Subject.READ
    assert (flag.end, flag.value) == (T0 + 3 * HOUR, Decimal("1001.5"))
    assert "went backwards from 1002.0 to 1001.5" in flag.message
    # Flagged, not dropped, not changed: the read is still there as it came.
    assert series.reads[-1] == reads[-1]


def test_negative_consumption_on_a_net_register_is_export_not_a_fault() -> None:
    net = Register(maximum=Decimal("99999.9"), import_only=False)
    series = derive(register_from(["1.0", "-2.0", "1.0"]), net, length=HOURLY)
    assert validate(series, now=NOW) == ()


def test_negative_interval_after_an_edit_is_flagged() -> None:
    series = derive(register_from(["1.0", "1.0"]), FIVE_DIGITS, length=HOURLY)
    edited = (series.intervals[0], Interval(T0 + HOUR, T0 + 2 * HOUR, Decimal(-1), Quality.EDITED))
    (flag,) = validate(series, now=NOW, intervals=edited)
    assert (flag.code, flag.start) == (FlagCode.NEGATIVE, T0 + HOUR)


def test_gaps_longer_than_the_limit_are_flagged() -> None:
    reads = [Read(T0 + k * HOUR, Decimal(k)) for k in (0, 1, 2, 3, 7, 8, 10, 11)]
    series = derive(reads, FIVE_DIGITS, length=HOURLY)
    flags = validate(series, ValidationRules(max_gap=timedelta(hours=2)), now=NOW)
    (flag,) = flags
    assert flag.code is FlagCode.GAP
    assert (flag.start, flag.end) == (T0 + 3 * HOUR, T0 + 7 * HOUR)


def test_future_and_out_of_range_reads_are_flagged() -> None:
    reads = [
        Read(NOW - HOUR, Decimal("10")),
        Read(NOW + 3 * 60_000, Decimal("11")),  # within the clock tolerance
        Read(NOW + HOUR, Decimal("120000")),  # in the future and beyond 5 digits
    ]
    series = derive(reads, FIVE_DIGITS, length=HOURLY)
    flags = validate(series, now=NOW)
    assert [(f.code, f.start) for f in flags if f.subject is Subject.READ] == [
        (FlagCode.FUTURE, NOW + HOUR),
        (FlagCode.OUT_OF_RANGE, NOW + HOUR),
    ]
    assert [read.ts for read in series.reads] == [read.ts for read in reads]


def test_mark_puts_interval_codes_on_the_intervals() -> None:
    steps = ["1.0", "1.1", "0.9"] * 4 + ["48.0"] + ["1.0"] * 4
    series = derive(register_from(steps), FIVE_DIGITS, length=HOURLY)
    marked = mark(series.intervals, validate(series, now=NOW))
    assert [i.start for i in marked if FlagCode.SPIKE in i.flags] == [T0 + 12 * HOUR]
    assert marked[0] == series.intervals[0]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"spike_factor": Decimal("0.5")}, "spike_factor"),
        ({"frozen_intervals": 1}, "frozen_intervals"),
        ({"high": Decimal(1), "low": Decimal(2)}, "low"),
    ],
)
def test_rules_refuse_nonsense(options: dict[str, Any], field: str) -> None:
    with pytest.raises(MeterDataError) as caught:
        ValidationRules(**options)
    assert caught.value.field == field


def test_conflicting_reads_are_reported_with_the_other_findings() -> None:
    reads = [*register_from(["1.0"] * 3), Read(T0 + HOUR, Decimal(999))]
    series = derive(reads, FIVE_DIGITS, length=HOURLY, max_span=timedelta(hours=2))
    (flag,) = validate(series, now=NOW)
    assert (flag.code, flag.subject, flag.start) == (FlagCode.CONFLICT, Subject.READ, T0 + HOUR)
