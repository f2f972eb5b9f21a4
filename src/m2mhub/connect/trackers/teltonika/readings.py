"""Turn a decoded AVL record into m2mhub reading values with named keys and units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from m2mhub.connect.trackers.teltonika import const, keys
from m2mhub.connect.trackers.teltonika.decoder import AvlRecord
from m2mhub.core.values import Value


def _flag(raw: int) -> Value:
    return raw != 0


def _milli(raw: int) -> Value:
    return raw / 1000


def _deci(raw: int) -> Value:
    return raw / 10


def _same(raw: int) -> Value:
    return raw


#: Named IO elements: id -> (key, raw value -> value in the key's unit).
#: Units and multipliers from Teltonika's "Data Sending Parameters ID" tables (see const).
IO_VALUES: Final[dict[int, tuple[str, Callable[[int], Value]]]] = {
    const.IO_IGNITION: (keys.IGNITION, _flag),
    const.IO_MOVEMENT: (keys.MOVEMENT, _flag),
    const.IO_TOTAL_ODOMETER: (keys.ODOMETER_M, _same),
    const.IO_TRIP_ODOMETER: (keys.TRIP_ODOMETER_M, _same),
    const.IO_EXTERNAL_VOLTAGE: (keys.EXTERNAL_VOLTAGE_V, _milli),
    const.IO_BATTERY_VOLTAGE: (keys.BATTERY_VOLTAGE_V, _milli),
    const.IO_BATTERY_CURRENT: (keys.BATTERY_CURRENT_A, _milli),
    const.IO_BATTERY_LEVEL: (keys.BATTERY_LEVEL_PCT, _same),
    const.IO_GSM_SIGNAL: (keys.GSM_SIGNAL, _same),
    const.IO_FUEL_LEVEL: (keys.FUEL_PCT, _same),
    const.IO_GNSS_STATUS: (keys.GNSS_STATUS, _same),
    const.IO_GNSS_PDOP: (keys.GNSS_PDOP, _deci),
    const.IO_GNSS_HDOP: (keys.GNSS_HDOP, _deci),
    const.IO_DIGITAL_INPUT_1: (keys.DIGITAL_INPUT_1, _flag),
    const.IO_DIGITAL_INPUT_2: (keys.DIGITAL_INPUT_2, _flag),
    const.IO_DIGITAL_OUTPUT_1: (keys.DIGITAL_OUTPUT_1, _flag),
    const.IO_DIGITAL_OUTPUT_2: (keys.DIGITAL_OUTPUT_2, _flag),
}


def to_values(record: AvlRecord) -> dict[str, Value]:
    """The reading values of a record (its time is ``record.ts``).

    The position (``lat``, ``lon``, ``altitude_m``) is always what the device
    sent; ``gps_valid`` says whether it is a fix or a stale / 0,0 position, and
    the position filter decides. IO elements without a name become ``io_<id>``:
    integers raw, variable-length values as lower-case hex.
    """
    values: dict[str, Value] = {
        keys.LAT: record.lat,
        keys.LON: record.lon,
        keys.ALTITUDE_M: record.altitude_m,
        keys.SPEED_KMH: record.speed_kmh,
        keys.HEADING_DEG: record.angle_deg,
        keys.SATELLITES: record.satellites,
        keys.GPS_VALID: record.has_fix,
        keys.PRIORITY: record.priority,
        keys.EVENT_IO_ID: record.event_io_id,
    }
    for io_id, raw in record.io.items():
        named = IO_VALUES.get(io_id)
        if isinstance(raw, bytes):
            values[keys.io_key(io_id)] = raw.hex()
        elif named is None:
            values[keys.io_key(io_id)] = raw
        else:
            key, convert = named
            values[key] = convert(raw)
    return values
