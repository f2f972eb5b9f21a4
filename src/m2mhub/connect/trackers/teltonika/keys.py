"""Reading value keys a Teltonika record maps to.

The position keys every tracker shares (``lat``, ``lon``, ``speed_kmh``...) come
from :mod:`m2mhub.connect.trackers.positions`, so a Teltonika lands on the same
keys as a GT06 or a phone; the rest are Teltonika's IO elements. Names carry
their unit.
"""

from __future__ import annotations

from typing import Final

from m2mhub.connect.trackers.positions import (
    ALTITUDE_M,
    BATTERY_VOLTAGE_V,
    FUEL_PCT,
    GPS_VALID,
    GSM_SIGNAL,
    HEADING_DEG,
    IGNITION,
    LAT,
    LON,
    ODOMETER_M,
    SATELLITES,
    SPEED_KMH,
)

# From the AVL record header.
PRIORITY: Final = "priority"  # 0 low, 1 high, 2 panic
EVENT_IO_ID: Final = "event_io_id"  # the IO element that triggered the record, 0 if none
# From well-known IO elements.
MOVEMENT: Final = "movement"
TRIP_ODOMETER_M: Final = "trip_odometer_m"
EXTERNAL_VOLTAGE_V: Final = "external_voltage_v"
BATTERY_CURRENT_A: Final = "battery_current_a"
BATTERY_LEVEL_PCT: Final = "battery_level_pct"
GNSS_STATUS: Final = "gnss_status"  # 0 off, 1 fix, 2 no fix, 3 sleep
GNSS_PDOP: Final = "gnss_pdop"
GNSS_HDOP: Final = "gnss_hdop"
DIGITAL_INPUT_1: Final = "digital_input_1"
DIGITAL_INPUT_2: Final = "digital_input_2"
DIGITAL_OUTPUT_1: Final = "digital_output_1"
DIGITAL_OUTPUT_2: Final = "digital_output_2"

#: Prefix of the key of an IO element without a name: ``io_<id>``.
IO_PREFIX: Final = "io_"


def io_key(io_id: int) -> str:
    """The key of an IO element this package does not name, e.g. ``io_78``."""
    return f"{IO_PREFIX}{io_id}"


__all__ = [
    "ALTITUDE_M",
    "BATTERY_CURRENT_A",
    "BATTERY_LEVEL_PCT",
    "BATTERY_VOLTAGE_V",
    "DIGITAL_INPUT_1",
    "DIGITAL_INPUT_2",
    "DIGITAL_OUTPUT_1",
    "DIGITAL_OUTPUT_2",
    "EVENT_IO_ID",
    "EXTERNAL_VOLTAGE_V",
    "FUEL_PCT",
    "GNSS_HDOP",
    "GNSS_PDOP",
    "GNSS_STATUS",
    "GPS_VALID",
    "GSM_SIGNAL",
    "HEADING_DEG",
    "IGNITION",
    "IO_PREFIX",
    "LAT",
    "LON",
    "MOVEMENT",
    "ODOMETER_M",
    "PRIORITY",
    "SATELLITES",
    "SPEED_KMH",
    "TRIP_ODOMETER_M",
    "io_key",
]
