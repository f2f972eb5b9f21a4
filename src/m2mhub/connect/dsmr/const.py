"""DSMR P1 constants: OBIS references, the reading keys they map to, their units.

OBIS references and units are those of the Dutch "P1 Companion Standard"
(DSMR 2.2, 4.2 and 5.0.2, Netbeheer Nederland) and the Belgian e-MUCS P1
specification (Fluvius, edition 1.7.1). Reading keys are shared by every
m2mhub component that reads meter data (docs/devices.md, "Smart meters: DSMR P1").
"""

from __future__ import annotations

from typing import Final

# -- framing (DSMR 5.0.2 section 6.2) -------------------------------------------------

#: Every telegram starts with this byte (the identification line "/XXXZ Ident").
TELEGRAM_START: Final = ord("/")
#: ... and its data ends with this one; DSMR 4 and later follow it with 4 hex CRC digits.
TELEGRAM_END: Final = ord("!")
#: Number of hex digits of the CRC16 after "!" (DSMR 4.0 and later).
CRC_DIGITS: Final = 4
#: A telegram longer than this is not a telegram: a stream without "!" for too long.
#: DSMR 5 telegrams are about 1 kB; an e-MUCS one with 13 monthly peaks about 2 kB.
MAX_TELEGRAM_BYTES: Final = 16_384

# -- reading keys ---------------------------------------------------------------------

ENERGY_IMPORT_KWH: Final = "energy_import_kwh"
ENERGY_IMPORT_T1_KWH: Final = "energy_import_t1_kwh"
ENERGY_IMPORT_T2_KWH: Final = "energy_import_t2_kwh"
ENERGY_EXPORT_KWH: Final = "energy_export_kwh"
ENERGY_EXPORT_T1_KWH: Final = "energy_export_t1_kwh"
ENERGY_EXPORT_T2_KWH: Final = "energy_export_t2_kwh"
TARIFF: Final = "tariff"
POWER_IMPORT_KW: Final = "power_import_kw"
POWER_EXPORT_KW: Final = "power_export_kw"
POWER_IMPORT_L1_KW: Final = "power_import_l1_kw"
POWER_IMPORT_L2_KW: Final = "power_import_l2_kw"
POWER_IMPORT_L3_KW: Final = "power_import_l3_kw"
POWER_EXPORT_L1_KW: Final = "power_export_l1_kw"
POWER_EXPORT_L2_KW: Final = "power_export_l2_kw"
POWER_EXPORT_L3_KW: Final = "power_export_l3_kw"
VOLTAGE_L1_V: Final = "voltage_l1_v"
VOLTAGE_L2_V: Final = "voltage_l2_v"
VOLTAGE_L3_V: Final = "voltage_l3_v"
CURRENT_L1_A: Final = "current_l1_a"
CURRENT_L2_A: Final = "current_l2_a"
CURRENT_L3_A: Final = "current_l3_a"
POWER_FAILURES: Final = "power_failures"
POWER_FAILURES_LONG: Final = "power_failures_long"
VOLTAGE_SAGS_L1: Final = "voltage_sags_l1"
VOLTAGE_SAGS_L2: Final = "voltage_sags_l2"
VOLTAGE_SAGS_L3: Final = "voltage_sags_l3"
VOLTAGE_SWELLS_L1: Final = "voltage_swells_l1"
VOLTAGE_SWELLS_L2: Final = "voltage_swells_l2"
VOLTAGE_SWELLS_L3: Final = "voltage_swells_l3"
BREAKER_STATE: Final = "breaker_state"
#: e-MUCS: average import power of the running quarter hour (capacity tariff).
DEMAND_AVG_KW: Final = "demand_avg_kw"
#: e-MUCS: this month's highest quarter-hour average, stamped when it occurred.
DEMAND_PEAK_MONTH_KW: Final = "demand_peak_month_kw"
GAS_M3: Final = "gas_m3"
WATER_M3: Final = "water_m3"
HOT_WATER_M3: Final = "hot_water_m3"
HEAT_GJ: Final = "heat_gj"

#: Event kind recorded for each entry of the power failure log (1-0:99.97.0).
POWER_FAILURE_EVENT: Final = "power_failure"

# -- OBIS references of the electricity meter (value group A-B:C.D.E) -----------------

OBIS_TIMESTAMP: Final = "0-0:1.0.0"
OBIS_VERSION: Final = "1-3:0.2.8"
#: e-MUCS puts its version (e.g. 50217 = e-MUCS 1.7.1 on DSMR 5.0.2) here instead.
OBIS_VERSION_BE: Final = "0-0:96.1.4"
OBIS_EQUIPMENT_ID: Final = "0-0:96.1.1"
OBIS_POWER_FAILURE_LOG: Final = "1-0:99.97.0"
OBIS_TARIFF: Final = "0-0:96.14.0"
OBIS_DEMAND_PEAK_MONTH: Final = "1-0:1.6.0"

#: Plain numeric objects: OBIS -> (reading key, the unit the key is stored in).
NUMERIC: Final[dict[str, tuple[str, str]]] = {
    "1-0:1.8.0": (ENERGY_IMPORT_KWH, "kWh"),
    "1-0:1.8.1": (ENERGY_IMPORT_T1_KWH, "kWh"),
    "1-0:1.8.2": (ENERGY_IMPORT_T2_KWH, "kWh"),
    "1-0:2.8.0": (ENERGY_EXPORT_KWH, "kWh"),
    "1-0:2.8.1": (ENERGY_EXPORT_T1_KWH, "kWh"),
    "1-0:2.8.2": (ENERGY_EXPORT_T2_KWH, "kWh"),
    "1-0:1.7.0": (POWER_IMPORT_KW, "kW"),
    "1-0:2.7.0": (POWER_EXPORT_KW, "kW"),
    "1-0:21.7.0": (POWER_IMPORT_L1_KW, "kW"),
    "1-0:41.7.0": (POWER_IMPORT_L2_KW, "kW"),
    "1-0:61.7.0": (POWER_IMPORT_L3_KW, "kW"),
    "1-0:22.7.0": (POWER_EXPORT_L1_KW, "kW"),
    "1-0:42.7.0": (POWER_EXPORT_L2_KW, "kW"),
    "1-0:62.7.0": (POWER_EXPORT_L3_KW, "kW"),
    "1-0:32.7.0": (VOLTAGE_L1_V, "V"),
    "1-0:52.7.0": (VOLTAGE_L2_V, "V"),
    "1-0:72.7.0": (VOLTAGE_L3_V, "V"),
    "1-0:31.7.0": (CURRENT_L1_A, "A"),
    "1-0:51.7.0": (CURRENT_L2_A, "A"),
    "1-0:71.7.0": (CURRENT_L3_A, "A"),
    "1-0:1.4.0": (DEMAND_AVG_KW, "kW"),
}

#: Counters and states without a unit, stored as integers: OBIS -> reading key.
INTEGER: Final[dict[str, str]] = {
    OBIS_TARIFF: TARIFF,
    "0-0:96.7.21": POWER_FAILURES,
    "0-0:96.7.9": POWER_FAILURES_LONG,
    "1-0:32.32.0": VOLTAGE_SAGS_L1,
    "1-0:52.32.0": VOLTAGE_SAGS_L2,
    "1-0:72.32.0": VOLTAGE_SAGS_L3,
    "1-0:32.36.0": VOLTAGE_SWELLS_L1,
    "1-0:52.36.0": VOLTAGE_SWELLS_L2,
    "1-0:72.36.0": VOLTAGE_SWELLS_L3,
    "0-0:96.3.10": BREAKER_STATE,
}

#: Units some meters use, converted to the unit of the key: unit -> (unit, factor).
#: Sagemcom T210-D (Luxembourg, Belgium) reports Wh and W where DSMR says kWh and kW.
UNIT_CONVERSIONS: Final[dict[str, tuple[str, float]]] = {
    "Wh": ("kWh", 0.001),
    "W": ("kW", 0.001),
}

# -- M-Bus channels (gas, water, heat): 0-n:C.D.E with n = channel 1..4 ---------------

#: Device type of the meter on a channel (0-n:24.1.0), EN 13757-3 table 3.
MBUS_DEVICE_TYPE: Final = "24.1.0"
#: Equipment identifier of the channel's meter: 96.1.0 in DSMR, 96.1.1 in e-MUCS.
MBUS_EQUIPMENT_IDS: Final = ("96.1.0", "96.1.1")
#: Last 5-minute (DSMR 5) or hourly (DSMR 4) value: (TST)(value*unit). e-MUCS
#: sends gas as 24.2.3 (not temperature corrected) and water as 24.2.1.
MBUS_VALUES: Final = ("24.2.1", "24.2.3")
#: DSMR 2.2 and 3.0 gas: (TST)(00)(60)(1)(0-n:24.2.1)(m3) and the value on the next line.
MBUS_LEGACY_VALUE: Final = "24.3.0"

MBUS_GAS: Final = 3
MBUS_HEAT: Final = 4
MBUS_HOT_WATER: Final = 6
MBUS_WATER: Final = 7
MBUS_HEAT_INLET: Final = 12

#: M-Bus device type -> (reading key, unit).
MBUS_KEYS: Final[dict[int, tuple[str, str]]] = {
    MBUS_GAS: (GAS_M3, "m3"),
    MBUS_HEAT: (HEAT_GJ, "GJ"),
    MBUS_HOT_WATER: (HOT_WATER_M3, "m3"),
    MBUS_WATER: (WATER_M3, "m3"),
    MBUS_HEAT_INLET: (HEAT_GJ, "GJ"),
}
#: A channel whose device type is not sent: guess from the unit (DSMR 2.2 meters).
MBUS_KEYS_BY_UNIT: Final[dict[str, tuple[str, str]]] = {
    "m3": (GAS_M3, "m3"),
    "GJ": (HEAT_GJ, "GJ"),
}

# -- time ---------------------------------------------------------------------------

#: The meter's clock runs on Dutch/Belgian legal time (CET/CEST): Europe/Amsterdam
#: and Europe/Brussels share the rules. Only used for timestamps without S/W flag.
DEFAULT_ZONE: Final = "Europe/Amsterdam"
#: TST flag -> UTC offset in hours: S = summer time (CEST), W = winter time (CET).
#: DSMR 5.0.2 section 6.4: "X = S (DST active) or W (DST not active)".
DST_FLAGS: Final[dict[str, int]] = {"S": 2, "W": 1}
