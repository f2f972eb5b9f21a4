"""Encoding GT06 frames: the server's acks and commands, and device packets for tests.

The device waits for an answer to its login, status (heartbeat) and alarm packets: a
frame with the same protocol number and serial number and no content. Without the
login answer it reconnects after a few seconds and never sends positions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from m2mhub.connect.trackers.gt06.const import (
    COORDINATE_SCALE,
    ENCODING_ASCII,
    ENCODING_UTF16,
    MAX_LONG_LENGTH,
    PHONE_NUMBER_LENGTH,
    START_LONG,
    START_SHORT,
    STATUS_ACC_ON,
    STATUS_DIFFERENTIAL,
    STATUS_HAS_ACC,
    STATUS_NORTH,
    STATUS_POSITIONED,
    STATUS_WEST,
    STOP,
    TIMEZONE_SHIFT,
    TIMEZONE_WEST,
    Protocol,
)
from m2mhub.connect.trackers.gt06.errors import Gt06Error
from m2mhub.connect.trackers.gt06.framing import crc_itu
from m2mhub.connect.trackers.gt06.packets import (
    AlarmReport,
    Cell,
    GpsFix,
    Location,
    Login,
    Status,
    StringInfo,
)

#: Protocol numbers whose packets the device expects acknowledged.
ACKNOWLEDGED = frozenset(
    {Protocol.LOGIN, Protocol.STATUS, Protocol.HEARTBEAT, Protocol.ALARM, Protocol.ALARM_2}
)


def encode_frame(protocol: int, content: bytes, serial: int, *, is_long: bool = False) -> bytes:
    """One frame around ``content``: start bits, length, CRC-ITU and stop bits."""
    length = 1 + len(content) + 2 + 2
    if not is_long and length > 0xFF:
        is_long = True
    if length > MAX_LONG_LENGTH:
        raise Gt06Error(f"content of {len(content)} bytes does not fit a GT06 frame")
    size = length.to_bytes(2 if is_long else 1, "big")
    body = size + bytes([protocol]) + content + (serial & 0xFFFF).to_bytes(2, "big")
    start = START_LONG if is_long else START_SHORT
    return start + body + crc_itu(body).to_bytes(2, "big") + STOP


def encode_ack(protocol: int, serial: int) -> bytes:
    """The answer to a login, status or alarm packet: its protocol and serial number."""
    return encode_frame(protocol, b"", serial)


def encode_login_ack(serial: int) -> bytes:
    """The answer to a login packet."""
    return encode_ack(Protocol.LOGIN, serial)


def encode_time_response(now_ms: int, serial: int) -> bytes:
    """The answer to a 0x8A time request: the UTC date and time."""
    return encode_frame(Protocol.TIME_REQUEST, _time_bytes(now_ms, 0), serial)


def encode_command(
    text: str, *, serial: int, server_flag: int = 0, language: int | None = None
) -> bytes:
    """An online command (0x80), e.g. ``RELAY,1#`` for engine cut-off.

    The device answers with a string info packet carrying the same ``server_flag``.
    Some firmware expects a trailing language word; pass ``language`` for those.
    """
    try:
        command = text.encode("ascii")
    except UnicodeEncodeError:
        raise Gt06Error(f"command {text!r} must be ASCII", field="command") from None
    content = bytes([4 + len(command)]) + server_flag.to_bytes(4, "big") + command
    if language is not None:
        content += language.to_bytes(2, "big")
    return encode_frame(Protocol.COMMAND, content, serial)


# -- Device packets: what a tracker sends, for tests and the simulator. --------------


def encode_login(login: Login) -> bytes:
    """A login packet (0x01), with type and time zone when the login has them."""
    content = bytes.fromhex(login.imei.rjust(16, "0"))
    if login.type_id is not None:
        content += login.type_id.to_bytes(2, "big")
        if login.tz_offset_minutes is not None:
            minutes = abs(login.tz_offset_minutes)
            word = ((minutes // 60) * 100 + minutes % 60) << TIMEZONE_SHIFT
            if login.tz_offset_minutes < 0:
                word |= TIMEZONE_WEST
            content += word.to_bytes(2, "big")
    return encode_frame(Protocol.LOGIN, content, login.serial)


def encode_location(location: Location, *, tz_offset_minutes: int = 0) -> bytes:
    """A GPS (0x10), GPS+LBS (0x12) or GPS+LBS 2 (0x22) packet."""
    content = _gps_bytes(location.gps, tz_offset_minutes)
    if location.cell is not None:
        content += _cell_bytes(location.cell)
    if location.protocol == Protocol.GPS_LBS_2:
        content += bytes(
            [bool(location.is_acc_on), location.upload_mode or 0, bool(location.is_reupload)]
        )
    return encode_frame(location.protocol, content, location.serial)


def encode_status(status: Status) -> bytes:
    """A status (0x13) or heartbeat (0x23) packet."""
    content = bytes([status.terminal.to_byte()])
    if status.protocol == Protocol.HEARTBEAT:
        content += round((status.voltage_v or 0) * 100).to_bytes(2, "big")
    else:
        content += bytes([status.voltage_level or 0])
    content += bytes([status.gsm_signal, status.alarm, status.language])
    return encode_frame(status.protocol, content, status.serial)


def encode_alarm(alarm: AlarmReport, *, tz_offset_minutes: int = 0) -> bytes:
    """An alarm packet (0x16 or 0x26)."""
    lbs = _cell_bytes(alarm.cell) if alarm.cell is not None else b""
    content = (
        _gps_bytes(alarm.gps, tz_offset_minutes)
        + bytes([len(lbs) + 1])
        + lbs
        + bytes(
            [
                alarm.terminal.to_byte(),
                alarm.voltage_level,
                alarm.gsm_signal,
                alarm.alarm,
                alarm.language,
            ]
        )
    )
    return encode_frame(alarm.protocol, content, alarm.serial)


def encode_string_info(info: StringInfo) -> bytes:
    """A string info packet (0x15, or 0x21 in a long frame)."""
    flag = info.server_flag.to_bytes(4, "big")
    if info.protocol == Protocol.STRING_INFO_LONG:
        is_ascii = info.text.isascii()
        text = info.text.encode("ascii" if is_ascii else "utf-16-be")
        encoding = ENCODING_ASCII if is_ascii else ENCODING_UTF16
        return encode_frame(
            info.protocol, flag + bytes([encoding]) + text, info.serial, is_long=True
        )
    text = info.text.encode("utf-8")
    content = bytes([4 + len(text)]) + flag + text
    if info.language is not None:
        content += info.language.to_bytes(2, "big")
    return encode_frame(info.protocol, content, info.serial)


def encode_address_request(
    gps: GpsFix, phone: str, *, serial: int, language: int, tz_offset_minutes: int = 0
) -> bytes:
    """A GPS address request (0x1A)."""
    number = phone.encode("ascii").ljust(PHONE_NUMBER_LENGTH, b"\0")[:PHONE_NUMBER_LENGTH]
    content = _gps_bytes(gps, tz_offset_minutes) + number + language.to_bytes(2, "big")
    return encode_frame(Protocol.GPS_ADDRESS_REQUEST, content, serial)


def _time_bytes(time_ms: int, tz_offset_minutes: int) -> bytes:
    local = datetime.fromtimestamp(time_ms / 1000 + tz_offset_minutes * 60, UTC)
    return bytes(
        [local.year - 2000, local.month, local.day, local.hour, local.minute, local.second]
    )


def _gps_bytes(gps: GpsFix, tz_offset_minutes: int) -> bytes:
    status = gps.course & 0x03FF
    status |= STATUS_NORTH if gps.lat >= 0 else 0
    status |= STATUS_WEST if gps.lon < 0 else 0
    status |= STATUS_POSITIONED if gps.is_positioned else 0
    status |= STATUS_DIFFERENTIAL if gps.is_differential else 0
    if gps.is_acc_on is not None:
        status |= STATUS_HAS_ACC | (STATUS_ACC_ON if gps.is_acc_on else 0)
    return (
        _time_bytes(gps.time_ms, tz_offset_minutes)
        + bytes([0xC0 | (gps.satellites & 0x0F)])  # GPS info length 12, satellites
        + round(abs(gps.lat) * COORDINATE_SCALE).to_bytes(4, "big")
        + round(abs(gps.lon) * COORDINATE_SCALE).to_bytes(4, "big")
        + bytes([gps.speed_kmh])
        + status.to_bytes(2, "big")
    )


def _cell_bytes(cell: Cell) -> bytes:
    mnc = cell.mnc.to_bytes(1, "big") if cell.mnc <= 0xFF else cell.mnc.to_bytes(2, "big")
    mcc = cell.mcc | (0x8000 if cell.mnc > 0xFF else 0)
    return (
        mcc.to_bytes(2, "big") + mnc + cell.lac.to_bytes(2, "big") + cell.cell_id.to_bytes(3, "big")
    )
