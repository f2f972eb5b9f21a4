"""Interval consumption derived from the cumulative register reads of a meter.

A meter reports its register (kWh, m³) now and then; billing wants the quantity
consumed in each interval of a fixed length (15 minutes, an hour, a day) aligned
to the local clock. :func:`derive` turns reads into intervals:

1. Reads are a set: they are sorted by time, exact duplicates collapse to one,
   and two different values at the same instant (a *conflict*) are both left
   out and flagged, since nothing says which is right; the consumption around
   that instant still comes from the neighbouring reads. So the result depends
   only on the set of reads, never on the order they arrived in.
2. Between two consecutive reads the register moved by ``later - earlier``. A
   drop is a *rollover* when counting on past the register's maximum to the new
   value is a small step (at most ``rollover_fraction`` of the register's
   range): ``99999.990 -> 0.005`` on a 5-digit register with 3 decimals is
   0.015 consumed. Any other drop on an import-only register is a *reset* or a
   meter exchange: the consumption between those two reads is unknown and
   counting restarts from the new value. Both are flagged.
3. The step between two reads is spread over the intervals it overlaps in
   proportion to time. Reads further apart than ``max_span`` leave a *gap*: the
   total is known but not how it was spread, so those intervals are ``missing``
   until :func:`m2mhub.apps.metering.estimation.estimate` fills them.

Each interval's quantity is the difference of the spread register at its two
boundaries, quantized to :data:`QUANTUM`, so the quantities of the intervals
between two reads add up to exactly the register difference.

Nothing here modifies or discards a read silently: the reads used are kept on
the :class:`Derivation`, and every read left out or treated specially has a
:class:`Flag` saying why.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal, localcontext
from typing import Final

import msgspec

from m2mhub.apps.metering import _grid
from m2mhub.apps.metering.values import (
    _PRECISION,
    QUANTUM,
    Derivation,
    Edit,
    Flag,
    FlagCode,
    Interval,
    MeterDataError,
    Method,
    Quality,
    Read,
    Register,
    Span,
    SpanKind,
    Subject,
)
from m2mhub.core.timeutil import format_ms

__all__ = [
    "QUANTUM",
    "Derivation",
    "Edit",
    "Flag",
    "FlagCode",
    "Interval",
    "MeterDataError",
    "Method",
    "Quality",
    "Read",
    "Register",
    "Span",
    "SpanKind",
    "Subject",
    "derive",
]


class _Piece(msgspec.Struct, frozen=True):
    """Part of one interval covered by one span."""

    index: int
    ms: int
    quantity: Decimal
    method: Method
    flags: frozenset[FlagCode] = frozenset()


_ZERO: Final = Decimal(0)


def _collapse(reads: Iterable[Read]) -> tuple[list[Read], list[Flag]]:
    """One read per instant; instants with conflicting values are left out and flagged."""
    reads = list(reads)
    if all(a.ts < b.ts for a, b in itertools.pairwise(reads)):
        # Already sorted, one read per instant (as the store returns them): nothing to do.
        return reads, []
    by_ts: dict[int, dict[Decimal, Decimal]] = {}
    for read in reads:
        values = by_ts.setdefault(read.ts, {})
        known = values.get(read.value)
        # Equal values written differently (1.0 and 1.00) keep one spelling, chosen by
        # the spelling itself so that arrival order cannot change the result.
        if known is None or str(read.value) < str(known):
            values[read.value] = read.value
    kept: list[Read] = []
    flags: list[Flag] = []
    for ts in sorted(by_ts):
        distinct = sorted(by_ts[ts].values())
        if len(distinct) == 1:
            kept.append(Read(ts, distinct[0]))
            continue
        shown = ", ".join(str(v) for v in distinct)
        flags.append(
            Flag(
                FlagCode.CONFLICT,
                Subject.READ,
                ts,
                ts,
                f"{len(distinct)} different register values at {format_ms(ts)} ({shown}); "
                "none is used, the consumption around it comes from the neighbouring "
                "reads; correct the source or remove the wrong read",
            )
        )
    return kept, flags


def _between(a: Read, b: Read) -> str:
    """The two reads of a step, for a flag's message (built only when one is raised)."""
    return f"between {format_ms(a.ts)} ({a.value}) and {format_ms(b.ts)} ({b.value})"


def _step(a: Read, b: Read, register: Register, max_span_ms: int) -> tuple[Span, Flag | None]:
    delta = b.value - a.value
    modulus = register.modulus
    limit = None if modulus is None else register.rollover_fraction * modulus
    is_gap = b.ts - a.ts > max_span_ms
    if modulus is not None and limit is not None and delta < 0 and modulus + delta <= limit:
        wrapped = modulus + delta
        message = (
            f"register wrapped past its maximum {register.maximum} {_between(a, b)}: "
            f"{wrapped} {register.unit} consumed"
        )
        span = Span(a.ts, b.ts, a.value, b.value, wrapped, SpanKind.ROLLOVER, is_gap)
        return span, Flag(FlagCode.ROLLOVER, Subject.READ, a.ts, b.ts, message, b.value)
    if (
        modulus is not None
        and limit is not None
        and not register.import_only
        and delta > 0
        and modulus - delta <= limit
    ):
        # A net register exporting runs backwards through zero to its maximum.
        wrapped = delta - modulus
        message = (
            f"register ran backwards through zero to its maximum {register.maximum} "
            f"{_between(a, b)}: {-wrapped} {register.unit} exported"
        )
        span = Span(a.ts, b.ts, a.value, b.value, wrapped, SpanKind.ROLLOVER, is_gap)
        return span, Flag(FlagCode.ROLLOVER, Subject.READ, a.ts, b.ts, message, b.value)
    if delta < 0 and register.import_only:
        message = (
            f"register dropped {_between(a, b)}, too far from its maximum to be a rollover: "
            "taken as a reset or meter exchange, counting restarts from the new value and "
            "the consumption between these reads is unknown"
        )
        span = Span(a.ts, b.ts, a.value, b.value, None, SpanKind.RESET, is_gap)
        return span, Flag(FlagCode.RESET, Subject.READ, a.ts, b.ts, message, b.value)
    return Span(a.ts, b.ts, a.value, b.value, delta, SpanKind.COUNT, is_gap), None


def _overlaps(bounds: Sequence[int], start: int, end: int) -> list[tuple[int, int]]:
    """(interval index, milliseconds of overlap) for the grid intervals that
    ``[start, end)`` overlaps; the grid must cover it."""
    found: list[tuple[int, int]] = []
    index = bisect_right(bounds, start) - 1
    while index < len(bounds) - 1 and bounds[index] < end:
        overlap = min(end, bounds[index + 1]) - max(start, bounds[index])
        if overlap > 0:
            found.append((index, overlap))
        index += 1
    return found


def _split(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``total`` split in proportion to ``weights`` (not all zero).

    The running total is rounded to QUANTUM and each part is the difference of two
    running totals, so the parts add up to exactly ``total``.
    """
    with localcontext() as context:
        context.prec = _PRECISION
        whole = sum(weights, Decimal(0))
        if whole == 0:
            # Only a zero total meets all-zero weights (callers see to it); spread evenly.
            weights = [Decimal(1)] * len(weights)
            whole = Decimal(len(weights))
        parts: list[Decimal] = []
        running = Decimal(0)
        done = Decimal(0)
        for position, weight in enumerate(weights):
            running += weight
            if position == len(weights) - 1:
                reached = total
            else:
                reached = (total * running / whole).quantize(QUANTUM)
            parts.append(reached - done)
            done = reached
        return parts


def _pieces(
    bounds: Sequence[int],
    start: int,
    end: int,
    total: Decimal,
    method: Method,
    flags: frozenset[FlagCode] = frozenset(),
    rates: Sequence[Decimal] | None = None,
) -> list[_Piece]:
    """``total`` spread over ``[start, end)``: in proportion to time, or to
    ``rates`` (one per overlapped interval, quantity per millisecond) when given."""
    overlaps = _overlaps(bounds, start, end)
    if len(overlaps) == 1 and (rates is None or len(rates) == 1):
        # The whole step lies in one interval: its part is the total, whatever the
        # weights, computed as _split computes its last part.
        with localcontext() as context:
            context.prec = _PRECISION
            part = total - _ZERO
        return [_Piece(overlaps[0][0], overlaps[0][1], part, method, flags)]
    if rates is None:
        weights = [Decimal(ms) for _, ms in overlaps]
    else:
        weights = [rate * ms for rate, (_, ms) in zip(rates, overlaps, strict=True)]
    parts = _split(total, weights)
    return [
        _Piece(index, ms, part, method, flags)
        for (index, ms), part in zip(overlaps, parts, strict=True)
    ]


def _actual_pieces(bounds: Sequence[int], spans: Iterable[Span]) -> list[_Piece]:
    pieces: list[_Piece] = []
    for span in spans:
        if span.delta is None or span.is_gap:
            continue
        flags = frozenset({FlagCode.ROLLOVER}) if span.kind is SpanKind.ROLLOVER else frozenset()
        pieces += _pieces(bounds, span.start, span.end, span.delta, Method.REGISTER, flags)
    return pieces


def _marks(
    bounds: Sequence[int], spans: Iterable[Span], flags: Iterable[Flag]
) -> dict[int, set[FlagCode]]:
    """Flags that belong on intervals without a quantity of their own: resets, conflicts."""
    marks: dict[int, set[FlagCode]] = {}
    for span in spans:
        if span.kind is SpanKind.RESET:
            for index, _ in _overlaps(bounds, span.start, span.end):
                marks.setdefault(index, set()).add(FlagCode.RESET)
    for flag in flags:
        if flag.code is FlagCode.CONFLICT:
            index = bisect_right(bounds, flag.start) - 1
            if 0 <= index < len(bounds) - 1:
                marks.setdefault(index, set()).add(FlagCode.CONFLICT)
    return marks


def _assemble(
    bounds: Sequence[int],
    pieces: Iterable[_Piece],
    marks: dict[int, set[FlagCode]],
    window: tuple[int, int],
) -> tuple[Interval, ...]:
    """The intervals of ``bounds`` inside ``window`` from the pieces that cover them."""
    by_index: dict[int, list[_Piece]] = {}
    for piece in pieces:
        by_index.setdefault(piece.index, []).append(piece)
    intervals: list[Interval] = []
    for index in range(len(bounds) - 1):
        start, end = bounds[index], bounds[index + 1]
        if start < window[0] or end > window[1]:
            continue
        parts = by_index.get(index, [])
        flags = set(marks.get(index, ()))
        for part in parts:
            flags |= part.flags
        ordered = tuple(sorted(flags))
        if sum(part.ms for part in parts) != end - start:
            intervals.append(Interval(start, end, None, Quality.MISSING, None, ordered))
            continue
        quantity = sum((part.quantity for part in parts), Decimal(0))
        estimated = [part for part in parts if part.method is not Method.REGISTER]
        if not estimated:
            intervals.append(
                Interval(start, end, quantity, Quality.ACTUAL, Method.REGISTER, ordered)
            )
            continue
        # The method that covers most of the interval names it; ties go to the first name.
        longest = min(estimated, key=lambda part: (-part.ms, part.method.value))
        intervals.append(Interval(start, end, quantity, Quality.ESTIMATED, longest.method, ordered))
    return tuple(intervals)


def _aligned(
    bounds: Sequence[int], spans: Iterable[Span], window: tuple[int, int]
) -> tuple[Interval, ...] | None:
    """The intervals inside ``window`` when every step between reads (gaps aside) is
    exactly one interval of ``bounds``, as when a meter reads on the grid; None
    otherwise. The caller sees to it that no flag is raised: no rollover, reset or
    conflict.

    The result is the one of :func:`_assemble` over :func:`_actual_pieces`: each
    step is one piece, ``delta - 0`` in the spreading context as :func:`_split`
    makes a last part, and each interval adds its piece to zero.
    """
    quantities: dict[int, Decimal] = {}
    index = 0
    last = len(bounds) - 1
    with localcontext() as context:
        context.prec = _PRECISION
        for span in spans:
            if span.delta is None or span.is_gap:
                continue
            while index < last and bounds[index] < span.start:
                index += 1
            if index >= last or bounds[index] != span.start or bounds[index + 1] != span.end:
                return None
            quantities[index] = span.delta - _ZERO
    intervals: list[Interval] = []
    # Enum members looked up once: on Python 3.11 each Quality.X is a descriptor call.
    actual, missing, register = Quality.ACTUAL, Quality.MISSING, Method.REGISTER
    # The window's ends are boundaries (_grid.window): the intervals between them.
    for index in range(bounds.index(window[0]), bounds.index(window[1])):
        start, end = bounds[index], bounds[index + 1]
        quantity = quantities.get(index)
        if quantity is None:
            intervals.append(Interval(start, end, None, missing, None, ()))
        else:
            intervals.append(Interval(start, end, _ZERO + quantity, actual, register, ()))
    return tuple(intervals)


def _grid_for(series: Derivation) -> list[int]:
    """The boundaries covering both the series' intervals and all its spans."""
    assert series.start is not None and series.end is not None
    lo, hi = series.start, series.end
    if series.spans:
        lo, hi = min(lo, series.spans[0].start), max(hi, series.spans[-1].end)
    return _grid.boundaries(_grid.zone(series.tz), series.length, lo, hi)


def _relevant(reads: list[Read], start: int | None, end: int | None) -> list[Read]:
    """The reads that bound consumption inside the window: those in it, plus the
    last one before it and the first one after it."""
    first = 0
    if start is not None:
        before = [i for i, read in enumerate(reads) if read.ts <= start]
        first = before[-1] if before else 0
    last = len(reads)
    if end is not None:
        after = [i for i, read in enumerate(reads) if read.ts >= end]
        last = after[0] + 1 if after else len(reads)
    return reads[first:last]


def derive(
    reads: Iterable[Read],
    register: Register,
    *,
    length: timedelta,
    tz: str = "UTC",
    start: int | None = None,
    end: int | None = None,
    max_span: timedelta | None = None,
) -> Derivation:
    """Interval consumption from cumulative register reads (see the module docstring).

    ``length`` must divide a day (15 minutes, 1 hour, 1 day); intervals are aligned
    to the wall clock of ``tz`` (an IANA name), so a day has 23 or 25 hourly
    intervals when the clocks change. Without ``start``/``end`` (UTC ms) the
    intervals run from the one holding the first read to the one holding the last;
    with them, they cover the window (aligned outwards) and the parts of it that no
    read reaches are ``missing``. Reads further apart than ``max_span`` (by default
    one and a half ``length``, i.e. one missing read) leave a gap.
    """
    try:
        _grid.check_length(length)
    except ValueError as error:
        raise MeterDataError(str(error), field="length") from None
    try:
        zone = _grid.zone(tz)
    except ValueError as error:
        raise MeterDataError(str(error), field="tz") from None
    if start is not None and end is not None and start >= end:
        raise MeterDataError(
            f"start: {format_ms(start)} is not before end {format_ms(end)}; "
            "give a window that starts before it ends",
            field="start",
        )
    span_limit = max_span if max_span is not None else length * 3 / 2
    if span_limit <= timedelta(0):
        raise MeterDataError(
            f"max_span: {span_limit} must be positive (e.g. 90 minutes for hourly reads)",
            field="max_span",
        )
    max_span_ms = span_limit // timedelta(milliseconds=1)
    kept, flags = _collapse(reads)
    kept = _relevant(kept, start, end)
    spans: list[Span] = []
    modulus = register.modulus
    limit = None if modulus is None else register.rollover_fraction * modulus
    count = SpanKind.COUNT
    for a, b in itertools.pairwise(kept):
        delta = b.value - a.value
        if delta >= 0 and (
            modulus is None or limit is None or register.import_only or modulus - delta > limit
        ):
            # The register counted up, by less than a rollover (see _step): no flag.
            is_gap = b.ts - a.ts > max_span_ms
            spans.append(Span(a.ts, b.ts, a.value, b.value, delta, count, is_gap))
            continue
        span, flag = _step(a, b, register, max_span_ms)
        spans.append(span)
        if flag is not None:
            flags.append(flag)
    lo = start if start is not None else (kept[0].ts if kept else None)
    hi = end if end is not None else (kept[-1].ts if kept else None)
    if lo is None or hi is None or lo > hi:
        return Derivation(
            register, length, tz, None, None, tuple(kept), tuple(spans), (), tuple(flags)
        )
    grid_lo = min(lo, kept[0].ts) if kept else lo
    grid_hi = max(hi, kept[-1].ts) if kept else hi
    bounds = _grid.boundaries(zone, length, grid_lo, grid_hi)
    window = _grid.window(bounds, lo, hi)
    intervals = None if flags else _aligned(bounds, spans, window)
    if intervals is None:
        intervals = _assemble(
            bounds, _actual_pieces(bounds, spans), _marks(bounds, spans, flags), window
        )
    flags.sort(key=lambda flag: (flag.end, flag.start, flag.code.value))
    return Derivation(
        register,
        length,
        tz,
        window[0],
        window[1],
        tuple(kept),
        tuple(spans),
        intervals,
        tuple(flags),
    )
