"""The two CRCs of device protocols, against the catalogue's check values."""

from __future__ import annotations

from m2mhub.connect.crc import crc16_arc, crc16_x25


def test_check_values() -> None:
    # "Catalogue of parametrised CRC algorithms": check = CRC of b"123456789".
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_arc(b"") == 0 and crc16_x25(b"") == 0
