"""One connection's exchange: login, acks, drops and commands."""

from __future__ import annotations

from m2mhub.connect.trackers.gt06 import (
    AlarmReport,
    CrcError,
    Gt06Session,
    Location,
    Login,
    NotLoggedInError,
    Status,
    TimeRequest,
    encode_frame,
    encode_time_response,
)
from tests.connect.trackers.gt06.frames import FRAMES

NOW = 1_700_000_000_000


def test_login_then_heartbeat_get_the_acks_the_device_waits_for() -> None:
    session = Gt06Session()
    received = session.receive(FRAMES["doc_login"] + FRAMES["doc_status"], now_ms=NOW)
    assert [type(p) for p in received.packets] == [Login, Status]
    assert received.replies == [FRAMES["doc_login_ack"], FRAMES["doc_status_ack"]]
    assert session.imei == "123456789012345"
    assert received.errors == []


def test_positions_are_not_acknowledged_alarms_are() -> None:
    session = Gt06Session()
    session.receive(FRAMES["login_gt06"], now_ms=NOW)
    received = session.receive(FRAMES["gps_lbs_vilnius"] + FRAMES["alarm_16"], now_ms=NOW)
    assert [type(p) for p in received.packets] == [Location, AlarmReport]
    assert len(received.replies) == 1
    assert received.replies[0][3] == 0x16  # protocol number of the ack


def test_time_request_is_answered_with_now() -> None:
    session = Gt06Session()
    session.receive(FRAMES["doc_login"], now_ms=NOW)
    received = session.receive(FRAMES["time_request"], now_ms=NOW)
    assert received.packets == [TimeRequest(serial=6)]
    assert received.replies == [encode_time_response(NOW, 6)]


def test_time_zone_of_the_login_applies_to_later_positions() -> None:
    session = Gt06Session()
    session.receive(FRAMES["login_concox_tz_west4"], now_ms=NOW)
    assert session.tz_offset_minutes == -240
    (location,) = session.receive(FRAMES["gps_lbs_vilnius"], now_ms=NOW).packets
    assert isinstance(location, Location)
    assert location.gps.time_ms == 1445350871000 + 4 * 3_600_000


def test_packets_before_login_are_dropped_and_counted() -> None:
    session = Gt06Session()
    received = session.receive(FRAMES["doc_status"], now_ms=NOW)
    assert received.packets == [] and received.replies == []
    assert isinstance(received.errors[0], NotLoggedInError)
    assert session.dropped == {"not_logged_in": 1}


def test_corrupt_and_unknown_frames_are_counted_per_kind() -> None:
    session = Gt06Session()
    corrupt = bytearray(FRAMES["gps_lbs_vilnius"])
    corrupt[12] ^= 0xFF
    unknown = encode_frame(0x99, b"", 1)  # a protocol number not decoded
    stream = FRAMES["doc_login"] + bytes(corrupt) + b"junk" + unknown + FRAMES["doc_status"]
    received = session.receive(stream, now_ms=NOW)
    assert [type(p) for p in received.packets] == [Login, Status]
    assert isinstance(received.errors[0], CrcError)
    assert session.dropped == {"crc_mismatch": 1, "garbage": 1, "unknown_protocol": 1}
    assert not session.should_close


def test_session_asks_to_close_when_the_stream_is_beyond_repair() -> None:
    session = Gt06Session()
    session.receive(FRAMES["doc_login"], now_ms=NOW)
    received = session.receive(b"\x00" * 5000, now_ms=NOW)
    assert session.should_close
    assert received.errors[-1].code == "desync"


def test_commands_number_their_frames() -> None:
    session = Gt06Session()
    first, second = session.command("RELAY,1#"), session.command("RELAY,0#")
    assert first[-6:-4] == b"\x00\x01" and second[-6:-4] == b"\x00\x02"
    assert b"RELAY,1#" in first
