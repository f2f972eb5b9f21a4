"""Shared helpers of the simulator tests: a fixed start and report collection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from m2mhub.core.values import Value
from m2mhub.sim.base import AnyModel
from m2mhub.sim.clock import backfill

HOUR: Final = 3_600_000
DAY: Final = 24 * HOUR
#: Monday 2 March 2026, 00:00 UTC: tests run in UTC, so local time is UTC.
MONDAY: Final = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)

Reports = list[tuple[int, dict[str, Value]]]


def run(model: AnyModel, *, days: float, interval_ms: int, start_ms: int = MONDAY) -> Reports:
    """The reports of ``model`` over ``days`` from ``start_ms``."""
    return list(backfill(model, start_ms, start_ms + int(days * DAY), interval_ms))


def number(values: dict[str, Value], key: str) -> float:
    value = values[key]
    assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
    return float(value)


def hour_of(ts: int) -> float:
    return (ts % DAY) / HOUR


def weekday_of(ts: int) -> int:
    return datetime.fromtimestamp(ts / 1000, UTC).weekday()
