"""Checks on meter reads and intervals, each finding a :class:`Flag` with a reason.

:func:`validate` looks at a :class:`~m2mhub.apps.metering.consumption.Derivation`
and reports, never changes or drops:

==============  ========  ======================================================
code            subject   when
==============  ========  ======================================================
``conflict``    read      two values at one instant (found by ``derive``)
``future``      read      time stamped after ``now`` (plus a clock tolerance)
``out_of_range`` read     a value below zero or above the register's maximum
``negative``    read      an import-only register went backwards, no rollover
``high``        interval  a quantity above ``high``
``low``         interval  a quantity below ``low``
``negative``    interval  a negative quantity on an import-only register
``spike``       interval  more than ``spike_factor`` times the median interval
``frozen``      interval  ``frozen_intervals`` or more actual intervals in a row
                          without consumption, while the median of at least as
                          many other actual intervals is above zero
``gap``         interval  missing intervals in a row longer than ``max_gap``
==============  ========  ======================================================

Flags are sorted by time. :func:`mark` copies interval flag codes onto the
intervals they concern, for display next to the quantities.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal

import msgspec

from m2mhub.apps.metering.values import (
    Derivation,
    Flag,
    FlagCode,
    Interval,
    MeterDataError,
    Quality,
    Read,
    SpanKind,
    Subject,
)
from m2mhub.core.timeutil import format_ms

__all__ = ["ValidationRules", "mark", "validate"]


class ValidationRules(msgspec.Struct, frozen=True):
    """Limits for :func:`validate`, in the register's unit per interval.

    ``high`` and ``low`` are off when None. A spike needs at least
    ``spike_min_intervals`` actual intervals to take a median from.
    ``future_tolerance`` allows for meter clocks running a little ahead.
    """

    high: Decimal | None = None
    low: Decimal | None = None
    spike_factor: Decimal = Decimal(10)
    spike_min_intervals: int = 8
    frozen_intervals: int = 8
    max_gap: timedelta = timedelta(hours=1)
    future_tolerance: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.spike_factor <= 1:
            raise MeterDataError(
                f"spike_factor: {self.spike_factor} must be above 1 (e.g. 10 for ten "
                "times the median)",
                field="spike_factor",
            )
        if self.frozen_intervals < 2:
            raise MeterDataError(
                f"frozen_intervals: {self.frozen_intervals} must be at least 2",
                field="frozen_intervals",
            )
        if self.high is not None and self.low is not None and self.low > self.high:
            raise MeterDataError(
                f"low: {self.low} is above high {self.high}; swap them", field="low"
            )


def _read_flags(series: Derivation, rules: ValidationRules, now: int) -> list[Flag]:
    register = series.register
    unit = register.unit
    latest = now + rules.future_tolerance // timedelta(milliseconds=1)
    flags: list[Flag] = []
    for read in series.reads:
        if read.ts > latest:
            flags.append(
                _on_read(
                    FlagCode.FUTURE,
                    read,
                    f"read time {format_ms(read.ts)} is after now ({format_ms(now)}); "
                    "check the meter's clock before billing this read",
                )
            )
        if read.value < 0 or (register.maximum is not None and read.value > register.maximum):
            shown = "below zero" if read.value < 0 else f"above the maximum {register.maximum}"
            flags.append(
                _on_read(
                    FlagCode.OUT_OF_RANGE,
                    read,
                    f"register value {read.value} {unit} at {format_ms(read.ts)} is {shown} "
                    "the register can show; check the read or the register's digits",
                )
            )
    if register.import_only:
        for span in series.spans:
            if span.kind is SpanKind.RESET:
                flags.append(
                    Flag(
                        FlagCode.NEGATIVE,
                        Subject.READ,
                        span.start,
                        span.end,
                        f"import-only register went backwards from {span.first} to "
                        f"{span.last} {unit} at {format_ms(span.end)} without a rollover; "
                        "if the meter was exchanged or reset, record it, otherwise the "
                        "read is wrong",
                        span.last,
                    )
                )
    return flags


def _on_read(code: FlagCode, read: Read, message: str) -> Flag:
    return Flag(code, Subject.READ, read.ts, read.ts, message, read.value)


def _on_interval(code: FlagCode, interval: Interval, message: str) -> Flag:
    return Flag(code, Subject.INTERVAL, interval.start, interval.end, message, interval.quantity)


def _limit_flags(
    intervals: Sequence[Interval], series: Derivation, rules: ValidationRules
) -> list[Flag]:
    unit = series.register.unit
    is_actual = Quality.ACTUAL
    actual = [i.quantity for i in intervals if i.quality is is_actual and i.quantity is not None]
    median = statistics.median(actual) if len(actual) >= rules.spike_min_intervals else None
    flags: list[Flag] = []
    high, low, import_only = rules.high, rules.low, series.register.import_only
    # Above this an actual interval is a spike (None: no spike check).
    spike = None if median is None or not median > 0 else rules.spike_factor * median
    for interval in intervals:
        quantity = interval.quantity
        if quantity is None:
            continue
        if (
            (high is None or not quantity > high)
            and (low is None or not quantity < low)
            and not (import_only and quantity < 0)
            and (spike is None or interval.quality is not is_actual or not quantity > spike)
        ):
            continue  # no finding: the checks below would raise none
        when = format_ms(interval.start)
        if rules.high is not None and quantity > rules.high:
            message = (
                f"{quantity} {unit} from {when} is above the high limit {rules.high}; "
                "check the reads around it, or raise the limit if the connection allows it"
            )
            flags.append(_on_interval(FlagCode.HIGH, interval, message))
        if rules.low is not None and quantity < rules.low:
            message = (
                f"{quantity} {unit} from {when} is below the low limit {rules.low}; "
                "check the reads around it"
            )
            flags.append(_on_interval(FlagCode.LOW, interval, message))
        if series.register.import_only and quantity < 0:
            message = (
                f"{quantity} {unit} from {when} is negative on an import-only register; "
                "an import-only meter cannot run backwards: correct the value"
            )
            flags.append(_on_interval(FlagCode.NEGATIVE, interval, message))
        if (
            median is not None
            and median > 0
            and interval.quality is Quality.ACTUAL
            and quantity > rules.spike_factor * median
        ):
            message = (
                f"{quantity} {unit} from {when} is more than {rules.spike_factor} times "
                f"the median interval ({median} {unit}); check for a misread or a "
                "wrong register value"
            )
            flags.append(_on_interval(FlagCode.SPIKE, interval, message))
    return flags


def _runs(intervals: Sequence[Interval], pick: list[bool]) -> Iterable[tuple[int, int]]:
    """(first, last) index of each run of consecutive picked intervals."""
    first: int | None = None
    for index, picked in enumerate([*pick, False]):
        if picked and first is None:
            first = index
        elif not picked and first is not None:
            yield first, index - 1
            first = None


def _frozen_flags(
    intervals: Sequence[Interval], series: Derivation, rules: ValidationRules
) -> list[Flag]:
    unit = series.register.unit
    actual = Quality.ACTUAL
    still = [i.quality is actual and i.quantity == 0 for i in intervals]
    flags: list[Flag] = []
    for first, last in _runs(intervals, still):
        if last - first + 1 < rules.frozen_intervals:
            continue
        rest = [
            i.quantity
            for k, i in enumerate(intervals)
            if (k < first or k > last) and i.quality is Quality.ACTUAL and i.quantity is not None
        ]
        # Whether the meter normally moves is judged on as many intervals as the run
        # needs; a meter that mostly stands still (a holiday home) is not frozen.
        if len(rest) < rules.frozen_intervals or statistics.median(rest) <= 0:
            continue
        start, end = intervals[first].start, intervals[last].end
        held = [read.value for read in series.reads if start <= read.ts <= end]
        shown = f" at {held[0]} {unit}" if held else ""
        flags.append(
            Flag(
                FlagCode.FROZEN,
                Subject.INTERVAL,
                start,
                end,
                f"register stood still{shown} for {last - first + 1} intervals from "
                f"{format_ms(start)} to {format_ms(end)} while it normally moves (median "
                f"{statistics.median(rest)} {unit} per interval); check the meter",
                Decimal(0),
            )
        )
    return flags


def _gap_flags(series: Derivation, rules: ValidationRules) -> list[Flag]:
    intervals = series.intervals
    is_missing = Quality.MISSING
    missing = [i.quality is is_missing for i in intervals]
    flags: list[Flag] = []
    for first, last in _runs(intervals, missing):
        start, end = intervals[first].start, intervals[last].end
        if timedelta(milliseconds=end - start) > rules.max_gap:
            flags.append(
                Flag(
                    FlagCode.GAP,
                    Subject.INTERVAL,
                    start,
                    end,
                    f"no reads close enough to spread consumption from {format_ms(start)} "
                    f"to {format_ms(end)} ({last - first + 1} intervals, longer than "
                    f"{rules.max_gap}); estimate it until the meter's reads arrive",
                )
            )
    return flags


def validate(
    series: Derivation,
    rules: ValidationRules | None = None,
    *,
    now: int,
    intervals: Sequence[Interval] | None = None,
) -> tuple[Flag, ...]:
    """Every finding on the reads and intervals of ``series``, sorted by time.

    ``now`` (UTC ms) is the reference for future reads. ``intervals`` checks other
    intervals of the series (estimated or edited ones) against the interval limits
    instead of its derived ones; gaps are always those of the derivation.
    """
    rules = rules if rules is not None else ValidationRules()
    checked = series.intervals if intervals is None else intervals
    flags = [
        *(flag for flag in series.flags if flag.code is FlagCode.CONFLICT),
        *_read_flags(series, rules, now),
        *_limit_flags(checked, series, rules),
        *_frozen_flags(checked, series, rules),
        *_gap_flags(series, rules),
    ]
    flags.sort(key=lambda flag: (flag.start, flag.end, flag.code.value))
    return tuple(flags)


def mark(intervals: Iterable[Interval], flags: Iterable[Flag]) -> tuple[Interval, ...]:
    """``intervals`` with the code of each interval flag that overlaps them added."""
    extra = [flag for flag in flags if flag.subject is Subject.INTERVAL]
    if not extra:
        return tuple(intervals)
    marked: list[Interval] = []
    for interval in intervals:
        codes = {
            flag.code for flag in extra if flag.start < interval.end and interval.start < flag.end
        }
        if codes - set(interval.flags):
            interval = msgspec.structs.replace(
                interval, flags=tuple(sorted(codes | set(interval.flags)))
            )
        marked.append(interval)
    return tuple(marked)
