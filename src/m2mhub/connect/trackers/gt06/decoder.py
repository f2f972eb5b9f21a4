"""Decoding the content of checked GT06 frames into packets.

Times: a GT06 unit sends the date and time of its fix as set on the device, which is
UTC unless someone configured a time zone (``GMT,E,8#`` and the like). Concox units
send that zone in their login packet; pass it as ``tz_offset_minutes`` (the session
does) and the local time is turned back into UTC. Without it, the time is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from m2mhub.connect.trackers.gt06.const import (
    COORDINATE_SCALE,
    COURSE_MASK,
    ENCODING_UTF16,
    PHONE_NUMBER_LENGTH,
    STATUS_ACC_ON,
    STATUS_DIFFERENTIAL,
    STATUS_HAS_ACC,
    STATUS_NORTH,
    STATUS_POSITIONED,
    STATUS_WEST,
    TIMEZONE_SHIFT,
    TIMEZONE_WEST,
    Protocol,
)
from m2mhub.connect.trackers.gt06.errors import DecodeError, UnknownProtocolError
from m2mhub.connect.trackers.gt06.framing import Frame
from m2mhub.connect.trackers.gt06.packets import (
    AddressRequest,
    AlarmReport,
    Cell,
    CellLocation,
    GpsFix,
    Location,
    Login,
    Packet,
    Status,
    StringInfo,
    TerminalInfo,
    TimeRequest,
)

_GPS_SIZE = 18  # date/time 6, satellites 1, lat 4, lon 4, speed 1, course/status 2
_CELL_SIZE = 8  # MCC 2, MNC 1, LAC 2, cell id 3
_MNC_TWO_BYTES = 0x8000  # Concox: MCC bit 15 set when the MNC is two bytes


class _Reader:
    """Big-endian reads over a packet's content that fail with the field's name."""

    def __init__(self, data: bytes, protocol: int) -> None:
        self._data = data
        self._at = 0
        self._protocol = protocol

    @property
    def remaining(self) -> int:
        return len(self._data) - self._at

    def take(self, size: int, field: str) -> bytes:
        if self.remaining < size:
            raise DecodeError(
                f"packet 0x{self._protocol:02x} ends before its {field} "
                f"({size} bytes needed, {self.remaining} left)",
                field=field,
            )
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")


def decode_frame(frame: Frame, *, tz_offset_minutes: int = 0) -> Packet:
    """The packet in a checked frame; ``tz_offset_minutes`` from the device's login.

    Raises :class:`DecodeError` when the content does not fit the protocol number and
    :class:`UnknownProtocolError` for a protocol number not decoded here.
    """
    reader = _Reader(frame.content, frame.protocol)
    protocol, serial = frame.protocol, frame.serial
    match protocol:
        case Protocol.LOGIN:
            return _login(reader, serial)
        case Protocol.GPS | Protocol.GPS_LBS:
            gps = _gps(reader, tz_offset_minutes)
            cell = _cell(reader) if reader.remaining >= _CELL_SIZE else None
            return Location(protocol=protocol, serial=serial, gps=gps, cell=cell)
        case Protocol.LBS:
            # The GT06N sends the cell alone; some firmware sends GPS and cell under 0x11.
            if reader.remaining >= _GPS_SIZE + _CELL_SIZE:
                gps = _gps(reader, tz_offset_minutes)
                return Location(protocol=protocol, serial=serial, gps=gps, cell=_cell(reader))
            return CellLocation(serial=serial, cell=_cell(reader))
        case Protocol.GPS_LBS_2:
            gps = _gps(reader, tz_offset_minutes)
            cell = _cell(reader)
            return Location(
                protocol=protocol,
                serial=serial,
                gps=gps,
                cell=cell,
                is_acc_on=bool(reader.uint(1, "acc")),
                upload_mode=reader.uint(1, "upload_mode"),
                is_reupload=bool(reader.uint(1, "reupload")),
            )
        case Protocol.STATUS | Protocol.HEARTBEAT:
            return _status(reader, protocol, serial)
        case Protocol.ALARM | Protocol.ALARM_2:
            return _alarm(reader, protocol, serial, tz_offset_minutes)
        case Protocol.STRING_INFO:
            return _string_info(reader, serial)
        case Protocol.STRING_INFO_LONG:
            server_flag = reader.uint(4, "server_flag")
            encoding = reader.uint(1, "encoding")
            raw = reader.take(reader.remaining, "text")
            text = raw.decode("utf-16-be" if encoding == ENCODING_UTF16 else "utf-8", "replace")
            return StringInfo(
                protocol=protocol, serial=serial, server_flag=server_flag, text=text.rstrip("\0")
            )
        case Protocol.GPS_ADDRESS_REQUEST:
            gps = _gps(reader, tz_offset_minutes)
            phone = reader.take(PHONE_NUMBER_LENGTH, "phone").decode("ascii", "replace")
            return AddressRequest(
                serial=serial,
                gps=gps,
                phone=phone.strip("\0 "),
                language=reader.uint(2, "language"),
            )
        case Protocol.TIME_REQUEST:
            return TimeRequest(serial=serial)
    raise UnknownProtocolError(
        f"protocol number 0x{protocol:02x} is not decoded; packet dropped", protocol=protocol
    )


def _login(reader: _Reader, serial: int) -> Login:
    digits = reader.take(8, "imei").hex()
    if not digits.isdigit():
        raise DecodeError(f"login IMEI {digits!r} is not BCD digits", field="imei")
    # 15 IMEI digits in 8 BCD bytes: the first nibble is a padding zero.
    imei = digits[1:] if digits.startswith("0") else digits
    type_id = reader.uint(2, "type_id") if reader.remaining >= 2 else None
    tz = None
    if reader.remaining >= 2:
        word = reader.uint(2, "timezone")
        hundreds = word >> TIMEZONE_SHIFT  # hours x 100 + minutes
        tz = (hundreds // 100) * 60 + hundreds % 100
        if word & TIMEZONE_WEST:
            tz = -tz
    return Login(serial=serial, imei=imei, type_id=type_id, tz_offset_minutes=tz)


def _time(reader: _Reader, tz_offset_minutes: int) -> int:
    year, month, day, hour, minute, second = reader.take(6, "time")
    try:
        local = datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise DecodeError(
            f"date/time {year:02d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d} "
            "is not a valid instant",
            field="time",
        ) from None
    return int(local.timestamp()) * 1000 - tz_offset_minutes * 60_000


def _gps(reader: _Reader, tz_offset_minutes: int) -> GpsFix:
    time_ms = _time(reader, tz_offset_minutes)
    satellites = reader.uint(1, "satellites") & 0x0F  # high nibble: GPS info length
    lat = reader.uint(4, "lat") / COORDINATE_SCALE
    lon = reader.uint(4, "lon") / COORDINATE_SCALE
    speed = reader.uint(1, "speed")
    status = reader.uint(2, "course")
    if lat > 90 or lon > 180:
        raise DecodeError(f"position {lat}, {lon} is off the globe", field="lat")
    return GpsFix(
        time_ms=time_ms,
        satellites=satellites,
        lat=lat if status & STATUS_NORTH else -lat,
        lon=-lon if status & STATUS_WEST else lon,
        speed_kmh=speed,
        course=status & COURSE_MASK,
        is_positioned=bool(status & STATUS_POSITIONED),
        is_differential=bool(status & STATUS_DIFFERENTIAL),
        is_acc_on=bool(status & STATUS_ACC_ON) if status & STATUS_HAS_ACC else None,
    )


def _cell(reader: _Reader) -> Cell:
    mcc = reader.uint(2, "mcc")
    mnc = reader.uint(2 if mcc & _MNC_TWO_BYTES else 1, "mnc")
    return Cell(
        mcc=mcc & ~_MNC_TWO_BYTES,
        mnc=mnc,
        lac=reader.uint(2, "lac"),
        cell_id=reader.uint(3, "cell_id"),
    )


def _status(reader: _Reader, protocol: int, serial: int) -> Status:
    terminal = TerminalInfo.from_byte(reader.uint(1, "terminal_info"))
    level = volts = None
    if protocol == Protocol.HEARTBEAT:
        volts = reader.uint(2, "voltage") / 100
    else:
        level = reader.uint(1, "voltage_level")
    return Status(
        protocol=protocol,
        serial=serial,
        terminal=terminal,
        gsm_signal=reader.uint(1, "gsm_signal"),
        alarm=reader.uint(1, "alarm"),
        language=reader.uint(1, "language"),
        voltage_level=level,
        voltage_v=volts,
    )


def _alarm(reader: _Reader, protocol: int, serial: int, tz_offset_minutes: int) -> AlarmReport:
    gps = _gps(reader, tz_offset_minutes)
    lbs_length = reader.uint(1, "lbs_length")  # counts itself
    lbs = _Reader(reader.take(max(lbs_length - 1, 0), "lbs"), protocol)
    cell = _cell(lbs) if lbs.remaining >= _CELL_SIZE else None
    return AlarmReport(
        protocol=protocol,
        serial=serial,
        gps=gps,
        cell=cell,
        terminal=TerminalInfo.from_byte(reader.uint(1, "terminal_info")),
        voltage_level=reader.uint(1, "voltage_level"),
        gsm_signal=reader.uint(1, "gsm_signal"),
        alarm=reader.uint(1, "alarm"),
        language=reader.uint(1, "language"),
    )


def _string_info(reader: _Reader, serial: int) -> StringInfo:
    length = reader.uint(1, "command_length")  # server flag + text
    if length < 4:
        raise DecodeError(
            f"string info length {length} is shorter than its server flag", field="command_length"
        )
    server_flag = reader.uint(4, "server_flag")
    text = reader.take(length - 4, "text").decode("utf-8", "replace").rstrip("\0")
    language = reader.uint(2, "language") if reader.remaining >= 2 else None
    return StringInfo(
        protocol=int(Protocol.STRING_INFO),
        serial=serial,
        server_flag=server_flag,
        text=text,
        language=language,
    )
