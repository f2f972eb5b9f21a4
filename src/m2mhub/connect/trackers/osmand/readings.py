"""OsmAnd positions as m2mhub reading values, under the same key names as GT06."""

from __future__ import annotations

from typing import Final

from m2mhub.connect.trackers.osmand.decoder import Position
from m2mhub.connect.trackers.positions import (
    ALTITUDE_M,
    CHARGING,
    GPS_VALID,
    HEADING_DEG,
    LAT,
    LON,
    ODOMETER_M,
    SPEED_KMH,
)
from m2mhub.core.values import Value

ACCURACY_M: Final = "accuracy_m"
HDOP: Final = "hdop"
BATTERY_PCT: Final = "battery_pct"
DRIVER_ID: Final = "driver_id"
MOVING: Final = "moving"
EVENT: Final = "event"
ACTIVITY: Final = "activity"


def to_values(position: Position) -> dict[str, Value]:
    """The reading values of a position: extra attributes first, named fields over them."""
    values: dict[str, Value] = dict(position.attributes)
    values[GPS_VALID] = position.is_valid
    named: dict[str, Value | None] = {
        LAT: position.lat,
        LON: position.lon,
        SPEED_KMH: position.speed_kmh,
        HEADING_DEG: position.heading_deg,
        ALTITUDE_M: position.altitude_m,
        ACCURACY_M: position.accuracy_m,
        HDOP: position.hdop,
        BATTERY_PCT: position.battery_pct,
        CHARGING: position.is_charging,
        DRIVER_ID: position.driver_id,
        MOVING: position.is_moving,
        EVENT: position.event,
        ACTIVITY: position.activity,
        ODOMETER_M: position.odometer_m,
    }
    values.update({key: value for key, value in named.items() if value is not None})
    return values
