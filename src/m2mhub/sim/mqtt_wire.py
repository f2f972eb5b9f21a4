"""MQTT 3.1.1 packets as bytes, for raw-socket publishers (the load generator, benchmarks).

Only what a fast publishing client needs: the packets it sends, and splitting what
the broker sends back into packets. Layouts are those of MQTT 3.1.1 (OASIS standard,
section 3); section numbers below refer to it.
"""

from __future__ import annotations

import struct
from typing import Final

#: Fixed-header first bytes (section 2.2).
CONNECT: Final = 0x10
CONNACK: Final = 0x20
PUBLISH_QOS0: Final = 0x30
PUBLISH_QOS1: Final = 0x32
PUBACK: Final = 0x40
SUBSCRIBE: Final = 0x82
SUBACK: Final = 0x90
PINGREQ: Final = b"\xc0\x00"
PINGRESP: Final = 0xD0
DISCONNECT: Final = b"\xe0\x00"


def remaining_length(length: int) -> bytes:
    """Variable-length encoding of the remaining length (section 2.2.3)."""
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | 0x80 if length else digit)
        if not length:
            return bytes(out)


def string(text: str | bytes) -> bytes:
    """A length-prefixed UTF-8 string (section 1.5.3)."""
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """CONNECT with a clean session and no keep-alive (section 3.1)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = string("MQTT") + bytes([4, flags]) + struct.pack("!H", 0) + string(client_id)
    if username is not None:
        body += string(username)
    if password is not None:
        body += string(password)
    return packet(CONNECT, body)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1 (section 3.3)."""
    return packet(PUBLISH_QOS1, string(topic) + struct.pack("!H", packet_id) + payload)


def subscribe_packet(topic_filter: str, packet_id: int) -> bytes:
    """SUBSCRIBE to one filter at QoS 1 (section 3.8)."""
    return packet(SUBSCRIBE, struct.pack("!H", packet_id) + string(topic_filter) + b"\x01")


def puback_packet(packet_id: int) -> bytes:
    return bytes([PUBACK, 2]) + struct.pack("!H", packet_id)


def next_packet(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """(first byte, body, rest) of the first whole packet in ``buffer``; None while incomplete."""
    length, shift, index = 0, 0, 1
    while True:
        if index >= len(buffer):
            return None
        byte = buffer[index]
        length |= (byte & 0x7F) << shift
        index += 1
        shift += 7
        if not byte & 0x80:
            break
    end = index + length
    if end > len(buffer):
        return None
    return buffer[0], buffer[index:end], buffer[end:]
