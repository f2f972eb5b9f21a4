"""Encoded frames equal the published ones byte for byte, and decode back to their input."""

from __future__ import annotations

import pytest
from hypothesis import given

from m2mhub.connect.trackers.teltonika import const
from m2mhub.connect.trackers.teltonika.decoder import (
    AvlPacket,
    AvlRecord,
    decode_avl_data,
    decode_codec12,
)
from m2mhub.connect.trackers.teltonika.encoder import (
    encode_avl_data,
    encode_codec12_command,
    encode_codec12_response,
    encode_imei,
    encode_imei_answer,
    encode_tcp_ack,
    encode_tcp_packet,
    encode_udp_ack,
    encode_udp_datagram,
)
from m2mhub.connect.trackers.teltonika.errors import EncodeError
from m2mhub.connect.trackers.teltonika.framing import TcpDeframer, parse_udp_datagram

from .samples import avl_batches, data_field, frame


def test_imei_answers() -> None:
    assert encode_imei_answer(True) == b"\x01"
    assert encode_imei_answer(False) == b"\x00"


def test_tcp_ack_is_the_record_count_on_four_bytes() -> None:
    # The wiki's third Codec 8 example: "Server acknowledges data reception (2 data elements)".
    assert encode_tcp_ack(2) == bytes.fromhex("00000002")


def test_udp_ack_matches_the_published_one() -> None:
    assert encode_udp_ack(0xCAFE, 0x05, 1) == bytes.fromhex("0005CAFE010501")


def test_getinfo_command_matches_the_published_packet() -> None:
    assert encode_codec12_command("getinfo") == frame("wiki_codec12_getinfo")


def test_getinfo_response_matches_the_published_packet() -> None:
    published = frame("wiki_codec12_getinfo_response")
    text = decode_codec12(data_field(published)).text

    assert encode_codec12_response(text) == published


def test_setdigout_command_round_trips() -> None:
    packet = encode_codec12_command("setdigout 1")

    (message,) = TcpDeframer(expect_imei=False).feed(packet)

    assert message == decode_codec12(data_field(packet))
    assert message.payload == b"setdigout 1"


def test_imei_handshake_matches_the_published_one() -> None:
    assert encode_imei("356307042441013") == frame("wiki_imei")


@pytest.mark.parametrize(
    ("name", "io_sizes"),
    [
        ("wiki_codec8_1", {21: 1, 1: 1, 66: 2, 241: 4, 78: 8}),
        ("wiki_codec8_2", {21: 1, 1: 1, 66: 2}),
        ("wiki_codec8_3", {}),
        ("wiki_codec8e", {0x01: 1, 0x11: 2, 0x10: 4, 0x0B: 8, 0x0E: 8}),
        ("wiki_codec16", {0x01: 1, 0x03: 1, 0x0B: 2, 0x42: 2}),
    ],
)
def test_published_packets_re_encode_byte_for_byte(name: str, io_sizes: dict[int, int]) -> None:
    published = frame(name)
    packet = decode_avl_data(data_field(published))

    data = encode_avl_data(packet.codec_id, packet.records, io_sizes=io_sizes)

    assert encode_tcp_packet(data) == published  # so the CRC we compute is the published one


def test_udp_datagram_matches_the_published_one() -> None:
    published = frame("wiki_udp_codec8")
    datagram = parse_udp_datagram(published)
    data = encode_avl_data(const.CODEC_8, datagram.packet.records, io_sizes={21: 1, 1: 1, 66: 2})

    assert (
        encode_udp_datagram(data, imei=datagram.imei, packet_id=0xCAFE, avl_packet_id=0x05)
        == published
    )


def test_real_device_packets_round_trip() -> None:
    for name in ("device_codec8_three_records", "device_codec8e_nx", "device_codec16_southern"):
        packet = decode_avl_data(data_field(frame(name)))
        assert decode_avl_data(encode_avl_data(packet.codec_id, packet.records)) == packet


@given(avl_batches())
def test_decode_inverts_encode_over_tcp(batch: tuple[int, list[AvlRecord]]) -> None:
    codec_id, records = batch
    packet = encode_tcp_packet(encode_avl_data(codec_id, records))

    (decoded,) = TcpDeframer(expect_imei=False).feed(packet)

    assert decoded == AvlPacket(codec_id=codec_id, records=tuple(records))


@given(avl_batches())
def test_decode_inverts_encode_over_udp(batch: tuple[int, list[AvlRecord]]) -> None:
    codec_id, records = batch
    datagram = encode_udp_datagram(
        encode_avl_data(codec_id, records), imei="352093086403655", packet_id=7
    )

    parsed = parse_udp_datagram(datagram)

    assert parsed.packet == AvlPacket(codec_id=codec_id, records=tuple(records))
    assert parsed.packet_id == 7


def _record(**changes: object) -> AvlRecord:
    fields: dict[str, object] = {
        "ts": 0,
        "priority": 0,
        "lat": 0.0,
        "lon": 0.0,
        "altitude_m": 0,
        "angle_deg": 0,
        "satellites": 0,
        "speed_kmh": 0,
        "event_io_id": 0,
        "io": {},
    }
    fields.update(changes)
    return AvlRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("codec_id", "record", "message"),
    [
        (const.CODEC_8, _record(io={300: 1}), r"records\[0\]\.io\[300\]"),
        (const.CODEC_8, _record(event_io_id=256), "event_io_id"),
        (const.CODEC_8, _record(io={1: b"x"}), "needs Codec 8 Extended"),
        (const.CODEC_16, _record(), "generation_type"),
        (const.CODEC_8, _record(io={1: 1 << 64}), r"io\[1\]"),
        (const.CODEC_8, _record(speed_kmh=70_000), "GPS element"),
        (const.CODEC_12, _record(), "not an AVL codec"),
    ],
)
def test_unencodable_values_are_named(codec_id: int, record: AvlRecord, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_avl_data(codec_id, [record])


def test_io_size_must_be_a_group_width() -> None:
    with pytest.raises(EncodeError, match="io_sizes"):
        encode_avl_data(const.CODEC_8, [_record(io={1: 1})], io_sizes={1: 3})


def test_command_must_be_ascii() -> None:
    with pytest.raises(EncodeError, match="ASCII"):
        encode_codec12_command("setparam 2001 café")


def test_imei_must_be_fifteen_digits() -> None:
    with pytest.raises(EncodeError, match="imei"):
        encode_imei("12345")
