"""The TCP deframer on split, glued and broken streams, and UDP datagrams."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2mhub.connect.trackers.teltonika.decoder import AvlPacket, Codec12Message
from m2mhub.connect.trackers.teltonika.encoder import (
    encode_imei_answer,
    encode_tcp_ack,
    encode_tcp_packet,
)
from m2mhub.connect.trackers.teltonika.errors import (
    BadImeiError,
    BadLengthError,
    BadPreambleError,
    CrcMismatchError,
    DecodeError,
    StreamClosedError,
    TeltonikaError,
    UnknownCodecError,
)
from m2mhub.connect.trackers.teltonika.framing import (
    ImeiHandshake,
    Ping,
    TcpDeframer,
    TcpEvent,
    parse_udp_datagram,
)

from .samples import TCP_FRAMES, data_field, frame

IMEI = "356307042441013"
#: A whole connection: handshake, then every published and device packet, in one stream.
STREAM = frame("wiki_imei") + b"".join(frame(name) for name in TCP_FRAMES)


def _feed_in_pieces(stream: bytes, cuts: list[int]) -> list[TcpEvent]:
    deframer = TcpDeframer()
    events: list[TcpEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        events += deframer.feed(stream[start:cut])
        start = cut
    assert deframer.buffered == 0
    return events


def _expected_events() -> list[TcpEvent]:
    return TcpDeframer().feed(STREAM)


def test_handshake_then_packets_in_one_chunk() -> None:
    events = _expected_events()

    assert events[0] == ImeiHandshake(imei=IMEI)
    assert len(events) == 1 + len(TCP_FRAMES)
    assert all(isinstance(e, AvlPacket | Codec12Message) for e in events[1:])
    assert [len(e.records) for e in events[1:5] if isinstance(e, AvlPacket)] == [1, 1, 2, 1]


def test_imei_is_remembered() -> None:
    deframer = TcpDeframer()
    deframer.feed(frame("wiki_imei"))

    assert deframer.imei == IMEI


def test_byte_by_byte_gives_the_same_events() -> None:
    deframer = TcpDeframer()
    events: list[TcpEvent] = []
    for index in range(len(STREAM)):
        events += deframer.feed(STREAM[index : index + 1])

    assert events == _expected_events()


def test_nothing_comes_out_before_the_last_byte() -> None:
    packet = frame("wiki_codec8_1")
    deframer = TcpDeframer(expect_imei=False)

    assert deframer.feed(packet[:-1]) == []
    assert deframer.buffered == len(packet) - 1
    assert len(deframer.feed(packet[-1:])) == 1


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_split_points_never_change_the_result(cuts: list[int]) -> None:
    assert _feed_in_pieces(STREAM, cuts) == _expected_events()


def test_crc_error_drops_one_frame_and_the_stream_goes_on() -> None:
    bad = bytearray(frame("wiki_codec8_1"))
    bad[-1] ^= 0xFF
    deframer = TcpDeframer(expect_imei=False)

    events = deframer.feed(bytes(bad) + frame("wiki_codec8_2"))

    error, packet = events
    assert isinstance(error, CrcMismatchError)
    assert (error.expected, error.computed) == (0xC730, 0xC7CF)
    assert not error.is_fatal
    assert isinstance(packet, AvlPacket)
    assert not deframer.is_closed


def test_corrupt_data_is_a_crc_error() -> None:
    bad = bytearray(frame("device_codec8_moving"))
    bad[30] ^= 0x01

    (error,) = TcpDeframer(expect_imei=False).feed(bytes(bad))

    assert isinstance(error, CrcMismatchError)
    assert error.code == "teltonika_crc_mismatch"


def test_crc_field_high_bytes_must_be_zero() -> None:
    bad = bytearray(frame("wiki_codec8_1"))
    bad[-4] = 0x01

    (error,) = TcpDeframer(expect_imei=False).feed(bytes(bad))

    assert isinstance(error, CrcMismatchError)


def test_garbage_before_the_preamble_closes_the_stream() -> None:
    deframer = TcpDeframer()
    events = deframer.feed(frame("wiki_imei") + b"GET / HTTP/1.1\r\n" + frame("wiki_codec8_1"))

    handshake, error = events
    assert isinstance(handshake, ImeiHandshake)
    assert isinstance(error, BadPreambleError)
    assert error.is_fatal
    assert "47455420" in str(error)  # "GET ", named in the message
    assert deframer.is_closed
    assert deframer.buffered == 0


def test_bad_preamble_is_seen_on_its_first_byte() -> None:
    deframer = TcpDeframer(expect_imei=False)

    assert deframer.feed(b"\x00\x00") == []
    (error,) = deframer.feed(b"\x07")
    assert isinstance(error, BadPreambleError)


def test_keepalive_bytes_between_packets_are_pings() -> None:
    stream = (
        frame("wiki_imei") + b"\xff" + frame("wiki_codec8_1") + b"\xff\xff" + frame("wiki_codec8_2")
    )

    events = _feed_in_pieces(stream, list(range(1, len(stream))))  # byte by byte

    kinds = [type(e) for e in events]
    assert kinds == [ImeiHandshake, Ping, AvlPacket, Ping, Ping, AvlPacket]


def test_feeding_a_closed_stream_raises() -> None:
    deframer = TcpDeframer(expect_imei=False)
    deframer.feed(b"\x07")

    with pytest.raises(StreamClosedError, match="close the connection"):
        deframer.feed(frame("wiki_codec8_1"))


def test_length_over_the_limit_closes_the_stream() -> None:
    header = b"\x00\x00\x00\x00" + (100_000).to_bytes(4, "big")

    (error,) = TcpDeframer(expect_imei=False).feed(header)

    assert isinstance(error, BadLengthError)
    assert error.is_fatal
    assert error.field == "data_field_length"


def test_length_limit_is_configurable() -> None:
    deframer = TcpDeframer(expect_imei=False, max_data_length=0x20)

    (error,) = deframer.feed(frame("wiki_codec8_1"))  # data field 0x36 bytes

    assert isinstance(error, BadLengthError)


def test_length_under_the_minimum_closes_the_stream() -> None:
    (error,) = TcpDeframer(expect_imei=False).feed(bytes(8))

    assert isinstance(error, BadLengthError)


def test_wrong_length_in_a_whole_packet_breaks_the_crc() -> None:
    # A length one too short moves the CRC field: the frame fails its CRC, and the
    # leftover byte then shows as a bad preamble.
    packet = bytearray(frame("wiki_codec8_2"))
    packet[7] -= 1

    events = TcpDeframer(expect_imei=False).feed(bytes(packet))

    assert [type(e) for e in events] == [CrcMismatchError, BadPreambleError]


def test_unknown_codec_drops_the_frame_only() -> None:
    data = b"\x0d" + data_field(frame("wiki_codec12_getinfo"))[1:]  # as if Codec 13

    events = TcpDeframer(expect_imei=False).feed(encode_tcp_packet(data) + frame("wiki_codec8_2"))

    error, packet = events
    assert isinstance(error, UnknownCodecError)
    assert error.codec_id == 0x0D
    assert isinstance(packet, AvlPacket)


def test_wrong_record_count_drops_the_frame_only() -> None:
    data = bytearray(data_field(frame("wiki_codec8_3")))
    data[-1] = 1

    error, packet = TcpDeframer(expect_imei=False).feed(
        encode_tcp_packet(bytes(data)) + frame("wiki_codec8_1")
    )

    assert isinstance(error, DecodeError)
    assert not error.is_fatal
    assert isinstance(packet, AvlPacket)


def test_truncated_stream_waits_for_more() -> None:
    deframer = TcpDeframer()
    stream = frame("wiki_imei") + frame("wiki_codec8e")[:40]

    (handshake,) = deframer.feed(stream)

    assert isinstance(handshake, ImeiHandshake)
    assert deframer.buffered == 40
    assert not deframer.is_closed


@pytest.mark.parametrize(
    "handshake",
    [
        bytes.fromhex("000E") + b"35630704244101",  # 14 digits
        bytes.fromhex("0010") + b"3563070424410130",  # 16 digits
        bytes.fromhex("000F") + b"35630704244101X",
        bytes(frame("wiki_codec8_1")),  # data before the handshake
    ],
)
def test_bad_imei_closes_the_stream(handshake: bytes) -> None:
    deframer = TcpDeframer()

    events = deframer.feed(handshake)

    assert len(events) == 1
    assert isinstance(events[0], BadImeiError)
    assert deframer.is_closed


def test_every_error_is_a_teltonika_error_with_a_code() -> None:
    bad = bytearray(frame("wiki_codec8_1"))
    bad[-1] ^= 1

    (error,) = TcpDeframer(expect_imei=False).feed(bytes(bad))

    assert isinstance(error, TeltonikaError)
    assert error.code.startswith("teltonika_")


# -- UDP ----------------------------------------------------------------------------------------


def test_udp_example() -> None:
    datagram = parse_udp_datagram(frame("wiki_udp_codec8"))

    assert datagram.packet_id == 0xCAFE
    assert datagram.avl_packet_id == 0x05
    assert datagram.imei == "352093086403655"
    (record,) = datagram.packet.records
    assert record.io == {21: 3, 1: 1, 66: 0x5DBC}


def test_udp_length_must_match_the_datagram() -> None:
    with pytest.raises(BadLengthError, match="length: the header says 61"):
        parse_udp_datagram(frame("wiki_udp_codec8")[:-1])


def test_udp_short_datagram() -> None:
    with pytest.raises(BadLengthError, match="shorter"):
        parse_udp_datagram(b"\x00\x05\xca\xfe\x01\x05\x01")


def test_udp_bad_imei() -> None:
    datagram = bytearray(frame("wiki_udp_codec8"))
    datagram[10] = ord("X")

    with pytest.raises(BadImeiError):
        parse_udp_datagram(bytes(datagram))


def test_udp_record_count_mismatch() -> None:
    datagram = bytearray(frame("wiki_udp_codec8"))
    datagram[-1] = 2

    with pytest.raises(DecodeError, match="number_of_data_2"):
        parse_udp_datagram(bytes(datagram))


def test_udp_codec12_is_not_an_avl_codec() -> None:
    datagram = bytearray(frame("wiki_udp_codec8"))
    datagram[23] = 0x0C

    with pytest.raises(UnknownCodecError):
        parse_udp_datagram(bytes(datagram))


def test_events_can_be_matched_as_the_server_loop_does() -> None:
    bad = bytearray(frame("wiki_codec8_2"))
    bad[-1] ^= 1
    stream = frame("wiki_imei") + frame("wiki_codec8_3") + bytes(bad) + b"\x01"
    replies: list[bytes] = []
    counted: list[str] = []

    for event in TcpDeframer().feed(stream):
        match event:
            case ImeiHandshake(imei=imei):
                replies.append(encode_imei_answer(imei == IMEI))
            case AvlPacket(records=records):
                replies.append(encode_tcp_ack(len(records)))
            case TeltonikaError() if event.is_fatal:
                counted.append(f"closed:{event.code}")
            case TeltonikaError():
                counted.append(event.code)

    assert replies == [b"\x01", b"\x00\x00\x00\x02"]
    assert counted == ["teltonika_crc_mismatch", "closed:teltonika_bad_preamble"]
