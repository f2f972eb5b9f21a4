"""Data fields decoded from Teltonika's published examples and from real devices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m2mhub.connect.trackers.teltonika import const
from m2mhub.connect.trackers.teltonika.decoder import (
    AvlPacket,
    Codec12Message,
    decode_avl_data,
    decode_codec12,
    decode_data,
)
from m2mhub.connect.trackers.teltonika.errors import DecodeError, UnknownCodecError

from .samples import data_field, frame


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_codec8_first_example_has_one_io_element_of_each_width() -> None:
    packet = decode_avl_data(data_field(frame("wiki_codec8_1")))

    assert packet.codec_id == const.CODEC_8
    (record,) = packet.records
    # The wiki: "GMT: Monday, June 10, 2019 10:04:46 AM".
    assert record.ts == _ms("2019-06-10T10:04:46")
    assert record.priority == const.PRIORITY_HIGH
    assert record.event_io_id == 1
    assert record.io == {21: 3, 1: 1, 66: 0x5E0F, 241: 0x0000601A, 78: 0}


def test_codec8_second_example() -> None:
    (record,) = decode_avl_data(data_field(frame("wiki_codec8_2"))).records

    assert record.ts == _ms("2019-06-10T10:05:36")
    assert record.io == {21: 3, 1: 1, 66: 0x5E10}


def test_codec8_third_example_has_two_records() -> None:
    packet = decode_avl_data(data_field(frame("wiki_codec8_3")))

    assert [r.ts for r in packet.records] == [
        _ms("2019-06-10T10:01:01"),
        _ms("2019-06-10T10:01:19"),
    ]
    assert [r.io for r in packet.records] == [{1: 0}, {1: 1}]


def test_wiki_examples_have_no_fix_and_are_kept() -> None:
    (record,) = decode_avl_data(data_field(frame("wiki_codec8_1"))).records

    assert (record.lat, record.lon, record.satellites) == (0.0, 0.0, 0)
    assert not record.has_fix


def test_codec8_extended_example_uses_two_byte_ids() -> None:
    packet = decode_avl_data(data_field(frame("wiki_codec8e")))

    assert packet.codec_id == const.CODEC_8E
    (record,) = packet.records
    assert record.ts == _ms("2019-06-10T11:36:32")
    assert record.io == {
        0x0001: 1,
        0x0011: 0x001D,
        0x0010: 0x015E2C88,
        0x000B: 0x000000003544C87A,
        0x000E: 0x000000001DD7E06A,
    }


def test_codec16_example_has_generation_type() -> None:
    packet = decode_avl_data(data_field(frame("wiki_codec16")))

    assert packet.codec_id == const.CODEC_16
    assert len(packet.records) == 2
    first = packet.records[0]
    assert first.event_io_id == 0x000B
    assert first.generation_type == const.GENERATION_ON_CHANGE
    assert first.io == {1: 0, 3: 0, 0x0B: 0x27, 0x42: 0x563A}


def test_real_moving_vehicle() -> None:
    (record,) = decode_avl_data(data_field(frame("device_codec8_moving"))).records

    assert record.lat == pytest.approx(56.8255366)
    assert record.lon == pytest.approx(60.4544333)
    assert (record.altitude_m, record.angle_deg) == (311, 95)
    assert (record.satellites, record.speed_kmh) == (18, 95)
    assert record.has_fix
    assert record.io[const.IO_IGNITION] == 1
    assert record.io[const.IO_EXTERNAL_VOLTAGE] == 14375
    assert record.io[const.IO_SPEED] == record.speed_kmh


def test_negative_coordinates_are_twos_complement() -> None:
    (record,) = decode_avl_data(data_field(frame("device_codec16_southern"))).records

    assert record.lat == pytest.approx(-33.4379166)
    assert record.lon == pytest.approx(-70.64967)
    assert record.generation_type == const.GENERATION_PERIODICAL
    assert len(record.io) == 0x20


def test_variable_length_io_elements_are_bytes() -> None:
    (record,) = decode_avl_data(data_field(frame("device_codec8e_nx"))).records

    assert record.io[256] == b"WV1ZZZ2EZ86015388"
    assert record.io[281] == b"P0299,P0675,P0674,P0672,P0671,P0471,P2BAC"
    assert record.io[const.IO_TOTAL_ODOMETER] == 41397


def test_codec12_command_and_response() -> None:
    command = decode_codec12(data_field(frame("wiki_codec12_getinfo")))
    response = decode_codec12(data_field(frame("wiki_codec12_getinfo_response")))

    assert command == Codec12Message(message_type=const.CODEC12_COMMAND, payload=b"getinfo")
    assert not command.is_response
    assert response.is_response
    assert response.text.startswith("INI:2019/7/22 7:22 RTC:2019/7/22 7:53 RST:2")
    assert response.text.endswith("SF:1 MD:0")


def test_decode_data_dispatches_on_codec_id() -> None:
    assert isinstance(decode_data(data_field(frame("wiki_codec8e"))), AvlPacket)
    assert isinstance(decode_data(data_field(frame("wiki_codec12_getinfo"))), Codec12Message)


@pytest.mark.parametrize("codec_id", [0x0D, 0x0E, 0x0F, 0x00, 0xFF])
def test_unknown_codec_is_named(codec_id: int) -> None:
    data = bytes([codec_id]) + data_field(frame("wiki_codec8_1"))[1:]

    with pytest.raises(UnknownCodecError) as caught:
        decode_data(data)

    assert caught.value.codec_id == codec_id
    assert caught.value.field == "codec_id"
    assert not caught.value.is_fatal


def test_record_counts_must_match() -> None:
    data = bytearray(data_field(frame("wiki_codec8_3")))
    data[-1] = 3

    with pytest.raises(DecodeError, match="number_of_data_2: 3 differs"):
        decode_avl_data(bytes(data))


def test_a_count_larger_than_the_records_is_truncation() -> None:
    data = bytearray(data_field(frame("wiki_codec8_3")))
    data[1] = 3

    with pytest.raises(DecodeError, match=r"records\[2\]"):
        decode_avl_data(bytes(data))


@pytest.mark.parametrize("cut", [1, 2, 10, 30, 45])
def test_truncated_data_field(cut: int) -> None:
    data = data_field(frame("wiki_codec8_1"))

    with pytest.raises(DecodeError, match="truncated"):
        decode_avl_data(data[:-cut])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DecodeError, match="1 byte\\(s\\) left"):
        decode_avl_data(data_field(frame("wiki_codec8_2")) + b"\x00")


def test_io_total_must_match_the_groups() -> None:
    data = bytearray(data_field(frame("wiki_codec8_2")))
    # Codec id, count, timestamp (8), priority, GPS (15), event id: then the IO total.
    total_at = 2 + 8 + 1 + 15 + 1
    assert data[total_at] == 3
    data[total_at] = 4

    with pytest.raises(DecodeError, match=r"records\[0\]\.io_count: says 4"):
        decode_avl_data(bytes(data))


def test_codec12_quantities_must_match() -> None:
    data = bytearray(data_field(frame("wiki_codec12_getinfo")))
    data[-1] = 2

    with pytest.raises(DecodeError, match="quantity_2"):
        decode_codec12(bytes(data))


def test_codec12_unknown_type() -> None:
    data = bytearray(data_field(frame("wiki_codec12_getinfo")))
    data[2] = 0x11

    with pytest.raises(DecodeError, match="type: 0x11"):
        decode_codec12(bytes(data))


def test_empty_data_field() -> None:
    with pytest.raises(DecodeError, match="empty"):
        decode_data(b"")
