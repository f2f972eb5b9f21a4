"""Device time: faster than the wall clock (``--speed``), or in the past (``--backfill``)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping

from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.sim.base import AnyModel


class SimClock:
    """Device time that starts at ``start_ms`` and runs ``speed`` times faster than the wall.

    ``SimClock(60)`` makes an hour of device time pass in a wall-clock minute,
    starting now: device timestamps then run ahead of the wall clock. To end
    near the present instead, start in the past, e.g. ``start_ms = now - 24 h``
    reaches the wall clock after 24 wall minutes at speed 60.
    """

    def __init__(
        self, speed: float = 1.0, start_ms: int | None = None, *, wall: Callable[[], int] = now_ms
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed: {speed!r} must be a positive factor, e.g. 1 or 60")
        self.speed = speed
        self._wall = wall
        self.wall_start_ms = wall()
        self.start_ms = self.wall_start_ms if start_ms is None else start_ms

    def now_ms(self) -> int:
        """The current device time, in UTC milliseconds."""
        return self.device_ms(self._wall())

    def device_ms(self, wall_ms: int) -> int:
        """The device time at wall time ``wall_ms``."""
        return self.start_ms + round((wall_ms - self.wall_start_ms) * self.speed)

    def wall_ms(self, device_ms: int) -> int:
        """The wall time at which the device clock shows ``device_ms``."""
        return self.wall_start_ms + round((device_ms - self.start_ms) / self.speed)

    def wall_seconds(self, device_ms: int) -> float:
        """How long, in wall seconds, ``device_ms`` of device time lasts: what to sleep."""
        return device_ms / self.speed / 1000


def backfill(
    model: AnyModel, start_ms: int, end_ms: int, interval_ms: int
) -> Iterator[tuple[int, dict[str, Value]]]:
    """The reports of ``model`` every ``interval_ms`` from ``start_ms`` up to ``end_ms`` (excluded).

    Pure computation, no I/O: a month of one-minute reports takes well under a
    second per device. Gaps (reports the model leaves empty) are skipped. The
    model keeps its state, so stepping it from ``end_ms`` on continues the same
    history live.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms: {interval_ms!r} must be positive")
    ts = start_ms
    while ts < end_ms:
        values = model.step(ts)
        if values:
            yield ts, values
        ts += interval_ms


def backfill_fleet(
    models: Mapping[str, AnyModel],
    intervals_ms: Mapping[str, int],
    start_ms: int,
    end_ms: int,
) -> Iterator[tuple[str, int, dict[str, Value]]]:
    """Every device's history as ``(device_id, ts, values)`` in time order."""
    streams = [
        _tagged(device_id, backfill(model, start_ms, end_ms, intervals_ms[device_id]))
        for device_id, model in models.items()
    ]
    for ts, device_id, values in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield device_id, ts, values


def _tagged(
    device_id: str, reports: Iterator[tuple[int, dict[str, Value]]]
) -> Iterator[tuple[int, str, dict[str, Value]]]:
    for ts, values in reports:
        yield ts, device_id, values
