"""The reading keys every tracker protocol maps its positions to.

The names are the platform's: ``lat``/``lon`` are what geofence rules and the console's map
read, so a Teltonika, a GT06 and a phone running Traccar Client all land on the same keys.
"""

from __future__ import annotations

from typing import Final

LAT: Final = "lat"
LON: Final = "lon"
ALTITUDE_M: Final = "altitude_m"
SPEED_KMH: Final = "speed_kmh"
HEADING_DEG: Final = "heading_deg"
SATELLITES: Final = "satellites"
#: False when the tracker says its fix is not valid (no GPS lock): the filter drops the
#: position keys of such a reading and keeps the rest (ignition, voltages).
GPS_VALID: Final = "gps_valid"
IGNITION: Final = "ignition"
ODOMETER_M: Final = "odometer_m"
#: The engine-hours counter a tracker reads from the vehicle (CAN bus) or keeps itself,
#: in hours; the same key as the simulated vehicles' ``runtime_h``.
RUNTIME_H: Final = "runtime_h"
#: Fuel level in percent of the tank (Teltonika IO 89 from the CAN bus, analogue sensors
#: scaled by the device); the same key as the simulated vehicles' ``fuel_pct``.
FUEL_PCT: Final = "fuel_pct"
CHARGING: Final = "charging"
BATTERY_VOLTAGE_V: Final = "battery_voltage_v"
#: Signal bars as the device counts them (GT06: 0-4, Teltonika: 0-5).
GSM_SIGNAL: Final = "gsm_signal"

#: The keys that describe where the device is and how it moves; the filter removes them
#: together from a reading whose fix it refuses.
POSITION_KEYS: Final = frozenset({LAT, LON, ALTITUDE_M, SPEED_KMH, HEADING_DEG})

__all__ = [
    "ALTITUDE_M",
    "BATTERY_VOLTAGE_V",
    "CHARGING",
    "FUEL_PCT",
    "GPS_VALID",
    "GSM_SIGNAL",
    "HEADING_DEG",
    "IGNITION",
    "LAT",
    "LON",
    "ODOMETER_M",
    "POSITION_KEYS",
    "RUNTIME_H",
    "SATELLITES",
    "SPEED_KMH",
]
