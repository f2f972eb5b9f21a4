"""Estimates for the intervals that the reads leave missing.

Each stretch without a spread of its own is filled in one of two ways:

* **linear** for a short stretch (at most ``short_gap``, 6 hours by default): the
  register is taken to have moved at a steady rate between the reads, or, when
  the total is unknown (after a reset, before the first read, after the last),
  at a rate that runs in a straight line from the rate just before the stretch to
  the rate just after it;
* **profile** for a long stretch: each interval gets the average of the same
  weekday and time of day (local wall clock) over the previous ``weeks`` weeks of
  actual intervals, from ``history`` and from the series itself.

When the reads on both sides are known, the estimate is scaled so that the
stretch adds up to exactly the register difference: an estimate only decides how
known consumption was spread. A long stretch without a complete profile falls
back to linear and is flagged ``no_profile``; one with neither a profile nor a
neighbouring rate stays ``missing``.

Estimation never touches an ``actual`` interval. It is a pure function of the
derivation, which is a pure function of the reads, so when a late read arrives
the next :func:`~m2mhub.apps.metering.consumption.derive` and :func:`estimate`
put actual data where the estimate was: estimates are never stored over reads.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal, localcontext

import msgspec

from m2mhub.apps.metering import _grid
from m2mhub.apps.metering.consumption import (
    _actual_pieces,
    _assemble,
    _grid_for,
    _marks,
    _overlaps,
    _Piece,
    _pieces,
)
from m2mhub.apps.metering.values import (
    _PRECISION,
    QUANTUM,
    Derivation,
    FlagCode,
    Interval,
    MeterDataError,
    Method,
    Quality,
)

__all__ = ["EstimationRules", "estimate"]


class EstimationRules(msgspec.Struct, frozen=True):
    """How :func:`estimate` fills missing stretches.

    Stretches up to ``short_gap`` are linear, longer ones follow the profile of the
    previous ``weeks`` weeks, needing at least ``min_weeks`` of them for each
    interval.
    """

    short_gap: timedelta = timedelta(hours=6)
    weeks: int = 4
    min_weeks: int = 1

    def __post_init__(self) -> None:
        if self.short_gap < timedelta(0):
            raise MeterDataError(
                f"short_gap: {self.short_gap} is negative; give a duration such as 6 hours",
                field="short_gap",
            )
        if not 1 <= self.min_weeks <= self.weeks:
            raise MeterDataError(
                f"min_weeks: {self.min_weeks} must be between 1 and weeks ({self.weeks})",
                field="min_weeks",
            )


class _Stretch(msgspec.Struct, frozen=True):
    """A stretch to estimate: its total when the reads on both sides are known, and
    the rates (quantity per ms) just before and after it when they are."""

    start: int
    end: int
    total: Decimal | None
    rate_before: Decimal | None
    rate_after: Decimal | None


def _rate(delta: Decimal | None, start: int, end: int) -> Decimal | None:
    if delta is None:
        return None
    with localcontext() as context:
        context.prec = _PRECISION
        return delta / (end - start)


def _stretches(series: Derivation) -> list[_Stretch]:
    assert series.start is not None and series.end is not None
    spans = series.spans

    def rate(k: int) -> Decimal | None:
        """The rate of span ``k``, worked out only for the neighbours of a stretch."""
        return _rate(spans[k].delta, spans[k].start, spans[k].end)

    found: list[_Stretch] = []
    for k, span in enumerate(spans):
        if span.delta is not None and not span.is_gap:
            continue
        before = rate(k - 1) if k > 0 else None
        after = rate(k + 1) if k + 1 < len(spans) else None
        found.append(_Stretch(span.start, span.end, span.delta, before, after))
    if not series.reads:
        return [_Stretch(series.start, series.end, None, None, None)]
    first, last = series.reads[0].ts, series.reads[-1].ts
    if series.start < first:
        found.append(_Stretch(series.start, first, None, None, rate(0) if spans else None))
    if last < series.end:
        found.append(_Stretch(last, series.end, None, rate(-1) if spans else None, None))
    return found


def _known(series: Derivation, history: Iterable[Interval]) -> dict[int, Decimal]:
    known: dict[int, Decimal] = {}
    for interval in (*history, *series.intervals):
        if interval.quality is Quality.ACTUAL and interval.quantity is not None:
            known[interval.start] = interval.quantity
    return known


def _profile(
    start: int, zone: zoneinfo.ZoneInfo, known: Mapping[int, Decimal], rules: EstimationRules
) -> Decimal | None:
    """The average of the same local weekday and time over the previous weeks."""
    local = _grid.to_local(start, zone)
    wall = local.replace(tzinfo=None)
    values: list[Decimal] = []
    for week in range(1, rules.weeks + 1):
        earlier = (wall - timedelta(weeks=week)).replace(tzinfo=zone, fold=local.fold)
        value = known.get(_grid.to_ms(earlier))
        if value is not None:
            values.append(value)
    if len(values) < rules.min_weeks:
        return None
    with localcontext() as context:
        context.prec = _PRECISION
        return sum(values, Decimal(0)) / len(values)


def _linear_rates(
    bounds: Sequence[int], overlaps: Sequence[tuple[int, int]], stretch: _Stretch
) -> list[Decimal] | None:
    """Rates running in a straight line from the rate before to the rate after."""
    before, after = stretch.rate_before, stretch.rate_after
    if before is None and after is None:
        return None
    before = before if before is not None else after
    after = after if after is not None else before
    assert before is not None and after is not None
    rates: list[Decimal] = []
    with localcontext() as context:
        context.prec = _PRECISION
        for index, ms in overlaps:
            middle = max(bounds[index], stretch.start) + ms / Decimal(2)
            share = (middle - stretch.start) / Decimal(stretch.end - stretch.start)
            rates.append(before + (after - before) * share)
    return rates


def _fill(
    bounds: Sequence[int],
    stretch: _Stretch,
    profile: Sequence[Decimal | None],
    rules: EstimationRules,
) -> list[_Piece]:
    overlaps = _overlaps(bounds, stretch.start, stretch.end)
    is_long = timedelta(milliseconds=stretch.end - stretch.start) > rules.short_gap
    rates: list[Decimal] | None = None
    method = Method.LINEAR
    flags: frozenset[FlagCode] = frozenset()
    if is_long:
        values = [value for value in profile if value is not None]
        if len(values) == len(profile) and (stretch.total is None or any(values)):
            with localcontext() as context:
                context.prec = _PRECISION
                rates = [
                    value / (bounds[index + 1] - bounds[index])
                    for value, (index, _) in zip(values, overlaps, strict=True)
                ]
            method = Method.PROFILE
        else:
            flags = frozenset({FlagCode.NO_PROFILE})
    if stretch.total is not None:
        return _pieces(bounds, stretch.start, stretch.end, stretch.total, method, flags, rates)
    if rates is None:
        rates = _linear_rates(bounds, overlaps, stretch)
        if rates is None:
            return []
    with localcontext() as context:
        context.prec = _PRECISION
        total = sum((rate * ms for rate, (_, ms) in zip(rates, overlaps, strict=True)), Decimal(0))
    return _pieces(
        bounds, stretch.start, stretch.end, total.quantize(QUANTUM), method, flags, rates
    )


def estimate(
    series: Derivation,
    *,
    history: Iterable[Interval] = (),
    rules: EstimationRules | None = None,
) -> tuple[Interval, ...]:
    """The intervals of ``series`` with the missing ones estimated where possible.

    ``history`` holds earlier intervals of the same meter, length and time zone
    (only ``actual`` ones count towards a profile). Estimated intervals have
    quality ``estimated`` and method ``linear`` or ``profile``; ``actual``
    intervals come back unchanged.
    """
    if series.start is None or series.end is None:
        return series.intervals
    stretches = _stretches(series)
    if not stretches:
        # Nothing to fill: the pieces would be derive's own, so would the intervals.
        return series.intervals
    return _estimated(series, stretches, history, rules)


def _estimated(
    series: Derivation,
    stretches: Sequence[_Stretch],
    history: Iterable[Interval],
    rules: EstimationRules | None,
) -> tuple[Interval, ...]:
    """The intervals of ``series`` rebuilt with ``stretches`` filled (see :func:`estimate`)."""
    assert series.start is not None and series.end is not None
    rules = rules if rules is not None else EstimationRules()
    zone = _grid.zone(series.tz)
    bounds = _grid_for(series)
    known = _known(series, history)
    pieces = _actual_pieces(bounds, series.spans)
    for stretch in stretches:
        overlaps = _overlaps(bounds, stretch.start, stretch.end)
        profile = [_profile(bounds[index], zone, known, rules) for index, _ in overlaps]
        pieces += _fill(bounds, stretch, profile, rules)
    marks = _marks(bounds, series.spans, series.flags)
    return _assemble(bounds, pieces, marks, (series.start, series.end))
