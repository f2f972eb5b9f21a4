"""Manual edits over derived intervals, with the original kept for the audit trail."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from m2mhub.apps.metering.consumption import (
    Edit,
    MeterDataError,
    Method,
    Quality,
    Read,
    derive,
)
from m2mhub.apps.metering.edits import apply_edits
from m2mhub.apps.metering.estimation import estimate
from tests.apps.metering.register_reads import FIVE_DIGITS, HOUR, ms

T0 = ms("2026-01-05T00:00")
READS = [Read(T0 + k * HOUR, Decimal(10 * k)) for k in range(4)]


def test_edit_replaces_the_quantity_and_keeps_the_original() -> None:
    series = derive(READS, FIVE_DIGITS, length=timedelta(hours=1))
    edit = Edit(T0 + HOUR, Decimal("7.5"), "j.devries", ms("2026-01-06T09:00"), "meter misread")
    edited = apply_edits(series.intervals, [edit])
    assert edited[1].quantity == Decimal("7.5")
    assert (edited[1].quality, edited[1].method) == (Quality.EDITED, Method.MANUAL)
    assert edited[1].original == series.intervals[1]
    assert edited[1].edit == edit
    assert edited[0] == series.intervals[0]
    # The raw reads are untouched.
    assert series.reads == tuple(READS)


def test_edits_fill_missing_intervals_on_top_of_estimates() -> None:
    reads = [READS[0], READS[3]]
    series = derive(reads, FIVE_DIGITS, length=timedelta(hours=1), max_span=timedelta(hours=1))
    filled = estimate(series)
    edit = Edit(T0 + 2 * HOUR, Decimal(12), "ops", ms("2026-01-06T09:00"), "customer photo")
    edited = apply_edits(filled, [edit])
    assert edited[2].original is not None
    assert edited[2].original.quality is Quality.ESTIMATED
    assert [i.quality for i in edited] == [Quality.ESTIMATED, Quality.ESTIMATED, Quality.EDITED]


def test_the_latest_edit_wins_whatever_the_order() -> None:
    series = derive(READS, FIVE_DIGITS, length=timedelta(hours=1))
    early = Edit(T0, Decimal(1), "a", ms("2026-01-06T09:00"), "first look")
    late = Edit(T0, Decimal(2), "b", ms("2026-01-07T09:00"), "second look")
    assert apply_edits(series.intervals, [early, late]) == apply_edits(
        series.intervals, [late, early]
    )
    assert apply_edits(series.intervals, [early, late])[0].edit == late


def test_an_edit_outside_the_series_is_refused() -> None:
    series = derive(READS, FIVE_DIGITS, length=timedelta(hours=1))
    stray = Edit(T0 + 30 * 60_000, Decimal(1), "a", T0, "typo")
    with pytest.raises(MeterDataError) as caught:
        apply_edits(series.intervals, [stray])
    assert caught.value.field == "start"


@pytest.mark.parametrize(
    ("author", "reason", "field"), [(" ", "why", "author"), ("who", "", "reason")]
)
def test_an_edit_needs_an_author_and_a_reason(author: str, reason: str, field: str) -> None:
    with pytest.raises(MeterDataError) as caught:
        Edit(T0, Decimal(1), author, T0, reason)
    assert caught.value.field == field
