"""CRC-16/IBM against its check value and the CRCs published with Teltonika's examples."""

from __future__ import annotations

import pytest

from m2mhub.connect.trackers.teltonika.crc import crc16_ibm

from .samples import TCP_FRAMES, data_field, frame


def test_check_value() -> None:
    # The catalogue check value of CRC-16/ARC (= IBM): CRC of the ASCII digits 1..9.
    assert crc16_ibm(b"123456789") == 0xBB3D


def test_empty_input() -> None:
    assert crc16_ibm(b"") == 0


@pytest.mark.parametrize("name", TCP_FRAMES)
def test_matches_the_crc_sent_with_each_packet(name: str) -> None:
    packet = frame(name)

    assert crc16_ibm(data_field(packet)) == int.from_bytes(packet[-4:], "big")


def test_published_values() -> None:
    assert crc16_ibm(data_field(frame("wiki_codec8_1"))) == 0xC7CF
    assert crc16_ibm(data_field(frame("wiki_codec8e"))) == 0x2994
    assert crc16_ibm(data_field(frame("wiki_codec12_getinfo"))) == 0x4312
