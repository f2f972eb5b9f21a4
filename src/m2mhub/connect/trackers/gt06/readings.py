"""GT06 packets as m2mhub reading values.

Key names follow the platform's convention (unit in the name, ``lat``/``lon`` as the
map and geofence rules read them); the OsmAnd package uses the same names.
"""

from __future__ import annotations

from typing import Final

from m2mhub.connect.trackers.gt06.const import Alarm, TerminalAlarm
from m2mhub.connect.trackers.gt06.packets import (
    AlarmReport,
    Cell,
    CellLocation,
    GpsFix,
    Location,
    Packet,
    Status,
    TerminalInfo,
)
from m2mhub.connect.trackers.positions import (
    BATTERY_VOLTAGE_V,
    CHARGING,
    GPS_VALID,
    GSM_SIGNAL,
    HEADING_DEG,
    IGNITION,
    LAT,
    LON,
    SATELLITES,
    SPEED_KMH,
)
from m2mhub.core.values import Value

BATTERY_LEVEL: Final = "battery_level"  # 0 (no power) .. 6 (very high)
ENGINE_CUT: Final = "engine_cut"  # the cut-off relay is engaged
POWER_CUT: Final = "power_cut"  # external power removed
DEFENCE: Final = "defence"
ALARM: Final = "alarm"
MCC: Final = "mcc"
MNC: Final = "mnc"
LAC: Final = "lac"
CELL_ID: Final = "cell_id"

#: Alarm names a rule can match, by alarm byte.
ALARM_NAMES: Final[dict[int, str]] = {
    Alarm.SOS: "sos",
    Alarm.POWER_CUT: "power_cut",
    Alarm.SHOCK: "shock",
    Alarm.FENCE_IN: "fence_in",
    Alarm.FENCE_OUT: "fence_out",
    Alarm.OVERSPEED: "overspeed",
    Alarm.DISPLACEMENT: "displacement",
}
_TERMINAL_ALARM_NAMES: Final[dict[int, str]] = {
    TerminalAlarm.SHOCK: "shock",
    TerminalAlarm.POWER_CUT: "power_cut",
    TerminalAlarm.LOW_BATTERY: "low_battery",
    TerminalAlarm.SOS: "sos",
}


def to_values(packet: Packet) -> dict[str, Value]:
    """The reading values a packet carries; empty for packets without any (login, acks).

    Positions are given only when the GPS has a fix; ``gps_valid`` says which it was.
    """
    values: dict[str, Value] = {}
    match packet:
        case Location(gps=gps, cell=cell, is_acc_on=acc):
            _gps(values, gps)
            _cell(values, cell)
            if acc is not None:
                values[IGNITION] = acc
        case CellLocation(cell=cell):
            _cell(values, cell)
        case Status():
            _terminal(values, packet.terminal)
            values[GSM_SIGNAL] = packet.gsm_signal
            if packet.voltage_level is not None:
                values[BATTERY_LEVEL] = packet.voltage_level
            if packet.voltage_v is not None:
                values[BATTERY_VOLTAGE_V] = packet.voltage_v
            _alarm(values, packet.alarm)
        case AlarmReport():
            _gps(values, packet.gps)
            _cell(values, packet.cell)
            _terminal(values, packet.terminal)
            values[BATTERY_LEVEL] = packet.voltage_level
            values[GSM_SIGNAL] = packet.gsm_signal
            _alarm(values, packet.alarm)
    return values


def _gps(values: dict[str, Value], gps: GpsFix) -> None:
    values[GPS_VALID] = gps.is_positioned
    if gps.is_acc_on is not None:
        values[IGNITION] = gps.is_acc_on
    values[SATELLITES] = gps.satellites
    if gps.is_positioned:
        values[LAT] = gps.lat
        values[LON] = gps.lon
        values[SPEED_KMH] = gps.speed_kmh
        values[HEADING_DEG] = gps.course


def _cell(values: dict[str, Value], cell: Cell | None) -> None:
    if cell is not None:
        values.update({MCC: cell.mcc, MNC: cell.mnc, LAC: cell.lac, CELL_ID: cell.cell_id})


def _terminal(values: dict[str, Value], terminal: TerminalInfo) -> None:
    values[IGNITION] = terminal.is_acc_on
    values[CHARGING] = terminal.is_charging
    values[ENGINE_CUT] = terminal.is_fuel_cut
    values[DEFENCE] = terminal.is_defence_on
    values[POWER_CUT] = terminal.alarm == TerminalAlarm.POWER_CUT
    if terminal.alarm in _TERMINAL_ALARM_NAMES:
        values[ALARM] = _TERMINAL_ALARM_NAMES[terminal.alarm]


def _alarm(values: dict[str, Value], alarm: int) -> None:
    # The alarm byte is more precise than the terminal bits: it wins when set.
    if alarm in ALARM_NAMES:
        values[ALARM] = ALARM_NAMES[alarm]
        if alarm == Alarm.POWER_CUT:
            values[POWER_CUT] = True
    elif alarm != Alarm.NORMAL:
        values[ALARM] = f"0x{alarm:02x}"
