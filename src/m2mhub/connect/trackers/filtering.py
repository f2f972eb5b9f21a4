"""Input filtering for tracker positions, before they reach the ingest pipeline.

Trackers send fixes without GPS lock, ``0,0`` positions, the same record twice (a resend
after a lost acknowledgement), clocks in the future and jumps no vehicle can make. Like the
filters of tracker servers (Traccar's ``filter.*`` options), this refuses them, and counts
why. Unlike a plain drop, a refused *fix* removes only the position keys of the reading: the
ignition, voltages and counters that came with it are still true and are kept. A reading
from the future, or the same timestamp again, is dropped whole.

The speed check compares each fix with the device's last accepted one. That fix is kept in
memory and, for a device seen first since the start, read from the latest stored values,
so a restart does not let one wild jump through.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from m2mhub.connect.trackers.positions import GPS_VALID, LAT, LON, POSITION_KEYS
from m2mhub.core.geo import haversine_m
from m2mhub.core.values import Value

#: Why a reading (or its position) was refused; the keys of :attr:`PositionFilter.refused`.
FUTURE: Final = "future"
DUPLICATE: Final = "duplicate"
INVALID_FIX: Final = "invalid_fix"
ZERO: Final = "zero_position"
OUT_OF_RANGE: Final = "out_of_range"
TOO_FAST: Final = "impossible_speed"

#: Timestamps remembered per device for the duplicate check: more than any tracker packet.
_REMEMBERED: Final = 1024

Reading = tuple[int, dict[str, Value]]
#: (ts, lat, lon) of a device's last accepted fix.
Fix = tuple[int, float, float]
LastFix = Callable[[int], Awaitable[Fix | None]]


@dataclass(frozen=True, slots=True)
class FilterSettings:
    """Limits of the filter (``M2MHUB_TRACKER_*`` settings)."""

    max_speed_kmh: float = 300.0
    future_tolerance_ms: int = 60_000


def _number(value: Value | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class PositionFilter:
    """Per-device state (the last accepted fix and timestamp) and counters of refusals."""

    def __init__(self, settings: FilterSettings, last_fix: LastFix) -> None:
        self.settings = settings
        self._load = last_fix
        self._fixes: dict[int, Fix | None] = {}
        # timestamps seen lately per device: a tracker that missed an acknowledgement resends
        # the whole packet, records older than its newest among them
        self._seen: dict[int, OrderedDict[int, None]] = {}
        self.refused: Counter[str] = Counter()

    async def apply(self, device_pk: int, readings: list[Reading], now_ms: int) -> list[Reading]:
        """The readings to store, in their order; the refused ones are counted."""
        if device_pk not in self._fixes:
            self._fixes[device_pk] = await self._load(device_pk)
        kept: list[Reading] = []
        for ts, values in readings:
            if ts > now_ms + self.settings.future_tolerance_ms:
                self.refused[FUTURE] += 1
                continue
            seen = self._seen.setdefault(device_pk, OrderedDict())
            if ts in seen:
                self.refused[DUPLICATE] += 1
                continue
            reason = self._position_fault(device_pk, ts, values)
            if reason is not None:
                self.refused[reason] += 1
                values = {k: v for k, v in values.items() if k not in POSITION_KEYS}
                if not values or values.keys() <= {GPS_VALID}:
                    continue
            seen[ts] = None
            if len(seen) > _REMEMBERED:
                seen.popitem(last=False)
            kept.append((ts, values))
        return kept

    def _position_fault(self, device_pk: int, ts: int, values: dict[str, Value]) -> str | None:
        lat, lon = _number(values.get(LAT)), _number(values.get(LON))
        if lat is None or lon is None:
            return None
        if values.get(GPS_VALID) is False:
            return INVALID_FIX
        if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            return OUT_OF_RANGE
        if lat == 0 and lon == 0:
            return ZERO
        last = self._fixes.get(device_pk)
        if last is not None and ts > last[0]:
            hours = (ts - last[0]) / 3_600_000
            km = haversine_m(last[1], last[2], lat, lon) / 1000
            if km / hours > self.settings.max_speed_kmh:
                return TOO_FAST
        if last is None or ts > last[0]:
            # An older fix that arrives late is stored but does not move the reference.
            self._fixes[device_pk] = (ts, lat, lon)
        return None


__all__ = [
    "DUPLICATE",
    "FUTURE",
    "INVALID_FIX",
    "OUT_OF_RANGE",
    "TOO_FAST",
    "ZERO",
    "FilterSettings",
    "PositionFilter",
]
