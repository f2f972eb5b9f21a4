"""The 16-bit CRCs device protocols check their frames with, table-driven.

Both are reflected CRCs (least significant bit first):

- CRC-16/ARC, also called CRC-16/IBM: polynomial 0x8005 (0xA001 reflected), initial value 0,
  no final XOR; check value of b"123456789" 0xBB3D. Teltonika TCP packets, DSMR 4+ telegrams.
- CRC-16/X-25, the "CRC-ITU" of GT06 documents: polynomial 0x1021 (0x8408 reflected), initial
  value and final XOR 0xFFFF; check value 0x906E.
"""

from __future__ import annotations

from typing import Final


def _table(reflected_polynomial: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ reflected_polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_ARC: Final = _table(0xA001)
_X25: Final = _table(0x8408)


def _reflected(table: tuple[int, ...], crc: int, data: bytes | bytearray | memoryview) -> int:
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_arc(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/ARC (CRC-16/IBM) of ``data``, an int in 0..0xFFFF."""
    return _reflected(_ARC, 0, data)


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 (GT06's CRC-ITU) of ``data``, an int in 0..0xFFFF."""
    return _reflected(_X25, 0xFFFF, data) ^ 0xFFFF


__all__ = ["crc16_arc", "crc16_x25"]
