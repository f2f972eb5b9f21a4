"""CRC-16/IBM (also called CRC-16/ARC), the checksum of Teltonika TCP packets.

Polynomial 0x8005 processed reflected (0xA001), initial value 0, no final XOR
(Teltonika wiki, "CRC-16" section of the data sending protocols page). The
check value of b"123456789" is 0xBB3D.
"""

from __future__ import annotations

from typing import Final


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE: Final = _make_table()


def crc16_ibm(data: bytes | bytearray | memoryview) -> int:
    """The CRC-16/IBM of ``data``, an int in 0..0xFFFF."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc
