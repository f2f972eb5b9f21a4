"""Decoding real GT06 / Concox packets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m2mhub.connect.trackers.gt06 import (
    AlarmReport,
    Cell,
    DecodeError,
    Deframer,
    Frame,
    Location,
    Login,
    Packet,
    Status,
    StringInfo,
    TerminalInfo,
    TimeRequest,
    UnknownProtocolError,
    decode_frame,
)
from m2mhub.connect.trackers.gt06.const import Alarm, Language, TerminalAlarm
from tests.connect.trackers.gt06.frames import FRAMES


def decode(name: str, *, tz: int = 0) -> Packet:
    (frame,) = Deframer().feed(FRAMES[name])
    assert isinstance(frame, Frame)
    return decode_frame(frame, tz_offset_minutes=tz)


def utc_ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def test_login_of_the_protocol_document() -> None:
    assert decode("doc_login") == Login(serial=1, imei="123456789012345")


def test_login_of_a_gt06() -> None:
    packet = decode("login_gt06")
    assert isinstance(packet, Login)
    assert packet.imei == "864717003283581" and packet.serial == 9


def test_concox_login_carries_type_and_time_zone() -> None:
    # 0x190a: 400 (4 hours) << 4, with the west bit.
    assert decode("login_concox_tz_west4") == Login(
        serial=2, imei="864717003664467", type_id=0x100F, tz_offset_minutes=-240
    )


def test_gps_lbs_position() -> None:
    # Traccar expects 2015-10-20 14:21:11, valid, 54.94535, 24.01762 for this frame.
    packet = decode("gps_lbs_vilnius")
    assert isinstance(packet, Location)
    assert packet.protocol == 0x12 and packet.serial == 3
    gps = packet.gps
    assert gps.time_ms == utc_ms(2015, 10, 20, 14, 21, 11)
    assert gps.lat == pytest.approx(54.94535, abs=1e-5)
    assert gps.lon == pytest.approx(24.01762, abs=1e-5)
    assert gps.satellites == 5 and gps.speed_kmh == 0 and gps.course == 0
    assert gps.is_positioned
    assert gps.is_acc_on is False  # course word bits 14 (ACC sent) and 15 (ACC high)
    assert packet.cell == Cell(mcc=246, mnc=1, lac=110, cell_id=0x55DA)


def test_time_zone_from_the_login_turns_local_time_into_utc() -> None:
    packet = decode("gps_lbs_vilnius", tz=180)
    assert isinstance(packet, Location)
    assert packet.gps.time_ms == utc_ms(2015, 10, 20, 11, 21, 11)


def test_extension_bytes_after_the_cell_are_ignored() -> None:
    packet = decode("gps_lbs_extra_bytes")
    assert isinstance(packet, Location)
    assert packet.cell == Cell(mcc=460, mnc=0, lac=0x287D, cell_id=0x1F72)
    assert packet.gps.time_ms == utc_ms(2012, 1, 12, 15, 21, 31)


def test_gps_lbs_2_carries_acc_and_upload_mode() -> None:
    packet = decode("gps_lbs_2")
    assert isinstance(packet, Location)
    assert packet.protocol == 0x22
    assert packet.gps.lat == pytest.approx(23.111693, abs=1e-6)
    assert packet.gps.lon == pytest.approx(114.409298, abs=1e-6)
    assert (packet.is_acc_on, packet.upload_mode, packet.is_reupload) == (False, 0, True)


def test_gps_only_packet() -> None:
    packet = decode("gps_only")
    assert isinstance(packet, Location)
    assert packet.cell is None
    assert (packet.gps.speed_kmh, packet.gps.course, packet.gps.satellites) == (1, 289, 12)


def test_status_of_the_protocol_document() -> None:
    assert decode("doc_status") == Status(
        protocol=0x13,
        serial=0x0F,
        terminal=TerminalInfo(
            is_fuel_cut=False,
            is_gps_tracking=True,
            alarm=TerminalAlarm.NORMAL,
            is_charging=False,
            is_acc_on=False,
            is_defence_on=False,
        ),
        gsm_signal=4,
        alarm=Alarm.NORMAL,
        language=Language.CHINESE,
        voltage_level=4,
    )


def test_status_with_the_relay_cut_and_charging() -> None:
    packet = decode("status_relay_cut")
    assert isinstance(packet, Status)
    assert packet.terminal.is_fuel_cut and packet.terminal.is_charging
    assert (packet.voltage_level, packet.gsm_signal, packet.language) == (6, 4, 2)


def test_heartbeat_0x23_carries_volts() -> None:
    packet = decode("heartbeat_voltage")
    assert isinstance(packet, Status)
    assert packet.voltage_v == pytest.approx(2.90)
    assert packet.voltage_level is None


def test_alarm_packets() -> None:
    normal = decode("alarm_16")
    assert isinstance(normal, AlarmReport)
    assert normal.cell == Cell(mcc=460, mnc=0, lac=0x266A, cell_id=0x1E17)
    assert (normal.voltage_level, normal.gsm_signal, normal.alarm) == (5, 4, Alarm.NORMAL)
    shock = decode("alarm_26_shock")
    assert isinstance(shock, AlarmReport)
    assert shock.protocol == 0x26 and shock.alarm == Alarm.SHOCK
    assert shock.terminal.is_charging and not shock.terminal.is_acc_on


def test_string_info_answers() -> None:
    assert decode("string_info_fuel_cut") == StringInfo(
        protocol=0x15,
        serial=0x13B,
        server_flag=0,
        text="Cut off the fuel supply: Success!",
        language=2,
    )
    utf16 = decode("string_info_utf16")
    assert isinstance(utf16, StringInfo) and utf16.text == "Command error!"


def test_time_request() -> None:
    assert decode("time_request") == TimeRequest(serial=6)


def test_unknown_protocol_names_the_number() -> None:
    with pytest.raises(UnknownProtocolError, match="0x99") as caught:
        decode_frame(Frame(protocol=0x99, content=b"", serial=1))
    assert caught.value.protocol == 0x99


def test_truncated_content_names_the_field() -> None:
    (frame,) = Deframer().feed(FRAMES["gps_lbs_vilnius"])
    assert isinstance(frame, Frame)
    short = Frame(protocol=frame.protocol, content=frame.content[:10], serial=1)
    with pytest.raises(DecodeError, match="lat") as caught:
        decode_frame(short)
    assert caught.value.field == "lat"


def test_impossible_date_is_rejected() -> None:
    content = bytes(6) + bytes(12)
    with pytest.raises(DecodeError, match="not a valid instant"):
        decode_frame(Frame(protocol=0x12, content=content, serial=1))


def test_imei_that_is_not_bcd_is_rejected() -> None:
    with pytest.raises(DecodeError, match="BCD"):
        decode_frame(Frame(protocol=0x01, content=bytes.fromhex("0a23456789012345"), serial=1))
