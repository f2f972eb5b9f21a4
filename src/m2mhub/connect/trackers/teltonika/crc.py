"""CRC-16/IBM (also called CRC-16/ARC), the checksum of Teltonika TCP packets.

Polynomial 0x8005 processed reflected (0xA001), initial value 0, no final XOR
(Teltonika wiki, "CRC-16" section of the data sending protocols page). The
check value of b"123456789" is 0xBB3D.
"""

from __future__ import annotations

from m2mhub.connect.crc import crc16_arc as crc16_ibm

__all__ = ["crc16_ibm"]
