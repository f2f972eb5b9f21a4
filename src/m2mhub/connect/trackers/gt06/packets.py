"""The decoded GT06 packets: frozen values, one per message family."""

from __future__ import annotations

import msgspec

from m2mhub.connect.trackers.gt06.const import (
    TERMINAL_ACC_HIGH,
    TERMINAL_ALARM_MASK,
    TERMINAL_ALARM_SHIFT,
    TERMINAL_CHARGING,
    TERMINAL_DEFENCE,
    TERMINAL_FUEL_CUT,
    TERMINAL_GPS_TRACKING,
)


class Cell(msgspec.Struct, frozen=True):
    """The serving cell tower (LBS): country, network, area and cell."""

    mcc: int
    mnc: int
    lac: int
    cell_id: int


class GpsFix(msgspec.Struct, frozen=True):
    """A GPS position as the device reported it; ``time_ms`` is UTC milliseconds."""

    time_ms: int
    satellites: int
    lat: float
    lon: float
    speed_kmh: int
    course: int
    is_positioned: bool
    is_differential: bool = False
    is_acc_on: bool | None = None  # Concox: ignition, when the course word carries it


class TerminalInfo(msgspec.Struct, frozen=True):
    """The terminal information byte of status and alarm packets."""

    is_fuel_cut: bool  # oil and electricity disconnected: the relay is engaged
    is_gps_tracking: bool
    alarm: int  # a TerminalAlarm value
    is_charging: bool
    is_acc_on: bool  # ignition
    is_defence_on: bool

    @classmethod
    def from_byte(cls, byte: int) -> TerminalInfo:
        """Split the byte into its flags."""
        return cls(
            is_fuel_cut=bool(byte & TERMINAL_FUEL_CUT),
            is_gps_tracking=bool(byte & TERMINAL_GPS_TRACKING),
            alarm=(byte >> TERMINAL_ALARM_SHIFT) & TERMINAL_ALARM_MASK,
            is_charging=bool(byte & TERMINAL_CHARGING),
            is_acc_on=bool(byte & TERMINAL_ACC_HIGH),
            is_defence_on=bool(byte & TERMINAL_DEFENCE),
        )

    def to_byte(self) -> int:
        """The byte these flags came from."""
        return (
            (TERMINAL_FUEL_CUT if self.is_fuel_cut else 0)
            | (TERMINAL_GPS_TRACKING if self.is_gps_tracking else 0)
            | (self.alarm & TERMINAL_ALARM_MASK) << TERMINAL_ALARM_SHIFT
            | (TERMINAL_CHARGING if self.is_charging else 0)
            | (TERMINAL_ACC_HIGH if self.is_acc_on else 0)
            | (TERMINAL_DEFENCE if self.is_defence_on else 0)
        )


class Login(msgspec.Struct, frozen=True, tag="login"):
    """0x01: the first packet on a connection, naming the device by IMEI.

    ``tz_offset_minutes`` is the device's time zone when it sends one (Concox units with
    the 18-byte login); the times of its later GPS packets are read in that zone.
    """

    serial: int
    imei: str
    type_id: int | None = None
    tz_offset_minutes: int | None = None


class Location(msgspec.Struct, frozen=True, tag="location"):
    """0x10, 0x11 (GPS form), 0x12, 0x22: a position, with the cell when sent.

    ``is_acc_on``, ``upload_mode`` and ``is_reupload`` come only with 0x22.
    """

    protocol: int
    serial: int
    gps: GpsFix
    cell: Cell | None = None
    is_acc_on: bool | None = None
    upload_mode: int | None = None
    is_reupload: bool | None = None


class CellLocation(msgspec.Struct, frozen=True, tag="cell_location"):
    """0x11: the serving cell only, when there is no GPS fix."""

    serial: int
    cell: Cell


class Status(msgspec.Struct, frozen=True, tag="status"):
    """0x13 status (the heartbeat) and 0x23 heartbeat; the device waits for an ack.

    0x13 carries a ``voltage_level`` 0..6; 0x23 carries ``voltage_v`` instead.
    """

    protocol: int
    serial: int
    terminal: TerminalInfo
    gsm_signal: int
    alarm: int
    language: int
    voltage_level: int | None = None
    voltage_v: float | None = None


class AlarmReport(msgspec.Struct, frozen=True, tag="alarm"):
    """0x16 and 0x26: position, cell and status with an alarm; the device waits for an ack."""

    protocol: int
    serial: int
    gps: GpsFix
    cell: Cell | None
    terminal: TerminalInfo
    voltage_level: int
    gsm_signal: int
    alarm: int
    language: int


class StringInfo(msgspec.Struct, frozen=True, tag="string_info"):
    """0x15 and 0x21: the device's text answer to an online command."""

    protocol: int
    serial: int
    server_flag: int
    text: str
    language: int | None = None


class AddressRequest(msgspec.Struct, frozen=True, tag="address_request"):
    """0x1A: the device asks for the street address of a position, for a phone number."""

    serial: int
    gps: GpsFix
    phone: str
    language: int


class TimeRequest(msgspec.Struct, frozen=True, tag="time_request"):
    """0x8A: the device asks for the current UTC time."""

    serial: int


#: Every packet :func:`~m2mhub.connect.trackers.gt06.decoder.decode_frame` returns.
Packet = (
    Login
    | Location
    | CellLocation
    | Status
    | AlarmReport
    | StringInfo
    | AddressRequest
    | TimeRequest
)
