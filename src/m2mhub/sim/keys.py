"""Telemetry keys the simulated devices report, with their value types and units.

The names carry the unit (``_kwh``, ``_kmh``, ``_pct``) so a reading is readable
without its device type; :data:`KEY_SPECS` is what a device type declares.
"""

from __future__ import annotations

from typing import Final

from m2mhub.core.values import ValueType
from m2mhub.store.models import KeySpec

# Electricity meters.
ENERGY_KWH: Final = "energy_kwh"
POWER_KW: Final = "power_kw"
VOLTAGE_V: Final = "voltage_v"
# Position (vehicles, trackers).
LAT: Final = "lat"
LON: Final = "lon"
# Vehicles.
SPEED_KMH: Final = "speed_kmh"
HEADING_DEG: Final = "heading_deg"
IGNITION: Final = "ignition"
FUEL_PCT: Final = "fuel_pct"
#: Metres, as trackers report it (m2mhub.connect.trackers.positions.ODOMETER_M) and the
#: fleet app reads it.
ODOMETER_M: Final = "odometer_m"
# Asset trackers.
RUNTIME_H: Final = "runtime_h"
BATTERY_PCT: Final = "battery_pct"
# Industrial machines (and pumps: current).
VIBRATION_MM_S: Final = "vibration_mm_s"
TEMPERATURE_C: Final = "temperature_c"
CURRENT_A: Final = "current_a"
RUNNING: Final = "running"
# Wearables.
HEART_RATE_BPM: Final = "heart_rate_bpm"
SPO2_PCT: Final = "spo2_pct"
RESPIRATION_RPM: Final = "respiration_rpm"
BODY_TEMP_C: Final = "body_temp_c"
SYSTOLIC_MMHG: Final = "systolic_mmhg"
DIASTOLIC_MMHG: Final = "diastolic_mmhg"
# Stock bins.
WEIGHT_KG: Final = "weight_kg"
# Tank and pump.
LEVEL_PCT: Final = "level_pct"
PUMP: Final = "pump"
FLOW_M3_H: Final = "flow_m3_h"

_NUMBER = ValueType.NUMBER
_BOOL = ValueType.BOOL

#: Every key above as a device type declares it.
KEY_SPECS: Final[dict[str, KeySpec]] = {
    spec.key: spec
    for spec in (
        KeySpec(ENERGY_KWH, _NUMBER, "kWh", "cumulative energy register"),
        KeySpec(POWER_KW, _NUMBER, "kW", "active power"),
        KeySpec(VOLTAGE_V, _NUMBER, "V", "line voltage"),
        KeySpec(LAT, _NUMBER, "°", "latitude, WGS 84"),
        KeySpec(LON, _NUMBER, "°", "longitude, WGS 84"),
        KeySpec(SPEED_KMH, _NUMBER, "km/h", "ground speed"),
        KeySpec(HEADING_DEG, _NUMBER, "°", "course over ground, clockwise from north"),
        KeySpec(IGNITION, _BOOL, None, "engine running"),
        KeySpec(FUEL_PCT, _NUMBER, "%", "fuel tank level"),
        KeySpec(ODOMETER_M, _NUMBER, "m", "total distance"),
        KeySpec(RUNTIME_H, _NUMBER, "h", "engine hours"),
        KeySpec(BATTERY_PCT, _NUMBER, "%", "battery charge"),
        KeySpec(VIBRATION_MM_S, _NUMBER, "mm/s", "vibration velocity, RMS"),
        KeySpec(TEMPERATURE_C, _NUMBER, "°C", "temperature"),
        KeySpec(CURRENT_A, _NUMBER, "A", "motor current"),
        KeySpec(RUNNING, _BOOL, None, "machine running"),
        KeySpec(HEART_RATE_BPM, _NUMBER, "bpm", "heart rate"),
        KeySpec(SPO2_PCT, _NUMBER, "%", "blood oxygen saturation"),
        KeySpec(RESPIRATION_RPM, _NUMBER, "/min", "respiration rate"),
        KeySpec(BODY_TEMP_C, _NUMBER, "°C", "body temperature"),
        KeySpec(SYSTOLIC_MMHG, _NUMBER, "mmHg", "systolic blood pressure"),
        KeySpec(DIASTOLIC_MMHG, _NUMBER, "mmHg", "diastolic blood pressure"),
        KeySpec(WEIGHT_KG, _NUMBER, "kg", "net weight in the bin"),
        KeySpec(LEVEL_PCT, _NUMBER, "%", "tank level"),
        KeySpec(PUMP, _BOOL, None, "pump running"),
        KeySpec(FLOW_M3_H, _NUMBER, "m³/h", "pump flow"),
    )
}
