"""Reading values as the fleet app reads them: numbers, flags and a usable position."""

from __future__ import annotations

import math
from collections.abc import Mapping

from m2mhub.connect.trackers.positions import GPS_VALID, LAT, LON
from m2mhub.core.values import Value

Values = Mapping[str, Value]


def number(values: Values, key: str) -> float | None:
    """The finite number under ``key``, else None (booleans are not numbers here)."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def flag(values: Values, key: str) -> bool | None:
    """A boolean under ``key``; trackers that send 0/1 for an input count as well."""
    value = values.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return None


def position(values: Values) -> tuple[float, float] | None:
    """``(lat, lon)`` when the reading has a valid fix: in range, not ``0,0``, not flagged."""
    lat, lon = number(values, LAT), number(values, LON)
    if lat is None or lon is None or values.get(GPS_VALID) is False:
        return None
    if abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None
    return lat, lon
