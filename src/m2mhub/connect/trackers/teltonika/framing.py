"""Cut Teltonika traffic into frames: the TCP byte stream and UDP datagrams.

TCP (Teltonika data sending protocols, "communication with server"): the device
opens with its IMEI (2-byte length, 15 ASCII digits), the server answers 0x01 or
0x00, then the device sends packets::

    00 00 00 00 | data field length (4) | data field | 00 00 | CRC-16/IBM of data (2)

and the server acknowledges each AVL packet with the record count (4 bytes). Between
packets a device whose link is kept open may send a single 0xFF byte as a keep-alive
(a ping); it needs no answer.
TCP delivers those bytes split and glued arbitrarily, so :class:`TcpDeframer`
buffers them and hands back whole frames as they complete.

UDP: each datagram is one AVL packet behind a channel header, without CRC (the
UDP checksum covers it); :func:`parse_udp_datagram` parses one.
"""

from __future__ import annotations

import msgspec

from m2mhub.connect.trackers.teltonika.const import (
    CRC_FIELD_SIZE,
    HEADER_SIZE,
    IMEI_LENGTH,
    MAX_DATA_LENGTH,
    MIN_DATA_LENGTH,
)
from m2mhub.connect.trackers.teltonika.crc import crc16_ibm
from m2mhub.connect.trackers.teltonika.decoder import (
    AvlPacket,
    Codec12Message,
    decode_avl_data,
    decode_data,
)
from m2mhub.connect.trackers.teltonika.errors import (
    BadImeiError,
    BadLengthError,
    BadPreambleError,
    CrcMismatchError,
    StreamClosedError,
    TeltonikaError,
)


class ImeiHandshake(msgspec.Struct, frozen=True):
    """The device introduced itself; answer with :func:`.encoder.encode_imei_answer`."""

    imei: str


class Ping(msgspec.Struct, frozen=True):
    """A keep-alive byte (0xFF) between packets: the link is alive, nothing to answer."""


#: What :meth:`TcpDeframer.feed` yields. Errors come back as values, in stream order, so the
#: frames around a dropped one are not lost; check ``error.is_fatal`` to know when to close.
TcpEvent = ImeiHandshake | Ping | AvlPacket | Codec12Message | TeltonikaError


class TcpDeframer:
    """Incremental parser of one device's TCP stream.

    Feed it every chunk read from the socket; it returns the events completed
    by that chunk, in order. What the server does with each:

    - :class:`ImeiHandshake`: look the device up, send the IMEI answer.
    - :class:`Ping`: nothing to send; the connection is alive.
    - :class:`.decoder.AvlPacket`: store the records, send ``encode_tcp_ack(len(records))``.
    - :class:`.decoder.Codec12Message`: the response to a command sent earlier.
    - a :class:`.errors.TeltonikaError`: count it by ``code``; the frame is dropped and
      nothing is answered (the device resends). If ``is_fatal``, the stream cannot be
      resynchronised: close the connection (further :meth:`feed` calls raise).

    A server's read loop, in outline::

        for event in deframer.feed(await reader.read(4096)):
            match event:
                case ImeiHandshake(imei=imei):
                    writer.write(encode_imei_answer(is_registered(imei)))
                case AvlPacket(records=records):
                    store(records)
                    writer.write(encode_tcp_ack(len(records)))
                case TeltonikaError() if event.is_fatal:
                    count(event.code)
                    writer.close()
                case TeltonikaError():
                    count(event.code)
    """

    def __init__(self, *, expect_imei: bool = True, max_data_length: int = MAX_DATA_LENGTH) -> None:
        """``expect_imei=False`` skips the handshake (a stream resumed after it)."""
        self._buffer = bytearray()
        self._awaiting_imei = expect_imei
        self._max_data_length = max_data_length
        self._fatal: TeltonikaError | None = None
        self.imei: str | None = None

    @property
    def is_closed(self) -> bool:
        """True once a fatal error was reported: the connection should be closed."""
        return self._fatal is not None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[TcpEvent]:
        """Add ``data`` to the stream and return the events it completes."""
        if self._fatal is not None:
            raise StreamClosedError(
                f"stream: closed after {self._fatal.code}; close the connection instead "
                "of feeding more bytes",
                field="stream",
            )
        self._buffer += data
        events: list[TcpEvent] = []
        while self._fatal is None:
            event = self._next_imei() if self._awaiting_imei else self._next_packet()
            if event is None:
                break
            if isinstance(event, TeltonikaError) and event.is_fatal:
                self._fatal = event
                self._buffer.clear()
            events.append(event)
        return events

    def _next_imei(self) -> TcpEvent | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        length = int.from_bytes(buffer[:2], "big")
        if length != IMEI_LENGTH:
            return BadImeiError(
                f"imei: the handshake announces {length} bytes, a Teltonika IMEI is "
                f"{IMEI_LENGTH} digits; the peer is not a Teltonika device in TCP mode",
                field="imei",
            )
        if len(buffer) < 2 + length:
            return None
        raw = bytes(buffer[2 : 2 + length])
        del buffer[: 2 + length]
        if not (raw.isascii() and raw.isdigit()):
            return BadImeiError(f"imei: {raw!r} is not {IMEI_LENGTH} ASCII digits", field="imei")
        self._awaiting_imei = False
        self.imei = raw.decode("ascii")
        return ImeiHandshake(imei=self.imei)

    def _next_packet(self) -> TcpEvent | None:
        buffer = self._buffer
        if buffer[:1] == b"\xff":
            del buffer[:1]
            return Ping()
        # Check the preamble byte by byte, so garbage is reported as soon as it arrives.
        head = bytes(buffer[:4])
        if head.strip(b"\x00"):
            return BadPreambleError(
                f"preamble: expected 00000000, got {head.hex()}; the stream is out of step "
                "(garbage or a lost byte) and cannot be resynchronised",
                field="preamble",
            )
        if len(buffer) < HEADER_SIZE:
            return None
        length = int.from_bytes(buffer[4:8], "big")
        if not MIN_DATA_LENGTH <= length <= self._max_data_length:
            return BadLengthError(
                f"data_field_length: {length} is outside {MIN_DATA_LENGTH}.."
                f"{self._max_data_length}; the stream cannot be resynchronised",
                field="data_field_length",
            )
        end = HEADER_SIZE + length
        if len(buffer) < end + CRC_FIELD_SIZE:
            return None
        data = bytes(buffer[HEADER_SIZE:end])
        sent_crc = int.from_bytes(buffer[end : end + CRC_FIELD_SIZE], "big")
        del buffer[: end + CRC_FIELD_SIZE]
        computed = crc16_ibm(data)
        if sent_crc != computed:
            return CrcMismatchError(
                f"crc: the packet carries {sent_crc:08X}, its data field computes "
                f"{computed:08X}; the packet is dropped unanswered so the device resends it",
                expected=sent_crc,
                computed=computed,
            )
        try:
            return decode_data(data)
        except TeltonikaError as error:
            return error


class UdpDatagram(msgspec.Struct, frozen=True):
    """One UDP datagram: the channel header and its AVL packet.

    Acknowledge it with ``encode_udp_ack(packet_id, avl_packet_id, len(packet.records))``.
    """

    packet_id: int
    avl_packet_id: int
    imei: str
    packet: AvlPacket


# Length (2), packet id (2), unused byte (1), AVL packet id (1), IMEI length (2).
_UDP_HEADER_SIZE = 8


def parse_udp_datagram(datagram: bytes) -> UdpDatagram:
    """Parse one UDP datagram (Codec 8, 8E or 16).

    Raises a :class:`.errors.TeltonikaError` (``BadLengthError``, ``BadImeiError``,
    ``UnknownCodecError``, ``DecodeError``) when it is malformed: drop the
    datagram and send no acknowledgement.
    """
    if len(datagram) < _UDP_HEADER_SIZE + IMEI_LENGTH + MIN_DATA_LENGTH:
        raise BadLengthError(
            f"datagram: {len(datagram)} bytes is shorter than a UDP channel header with an "
            "IMEI and an empty AVL packet",
            field="length",
        )
    length = int.from_bytes(datagram[:2], "big")
    if length != len(datagram) - 2:
        raise BadLengthError(
            f"length: the header says {length} bytes follow, the datagram carries "
            f"{len(datagram) - 2}",
            field="length",
        )
    packet_id = int.from_bytes(datagram[2:4], "big")
    # datagram[4] is the "not usable" byte: ignored, as the protocol says.
    avl_packet_id = datagram[5]
    imei_length = int.from_bytes(datagram[6:8], "big")
    raw_imei = datagram[_UDP_HEADER_SIZE : _UDP_HEADER_SIZE + imei_length]
    if imei_length != IMEI_LENGTH or not (raw_imei.isascii() and raw_imei.isdigit()):
        raise BadImeiError(
            f"imei: expected {IMEI_LENGTH} ASCII digits, got {imei_length} byte(s) {raw_imei!r}",
            field="imei",
        )
    packet = decode_avl_data(datagram[_UDP_HEADER_SIZE + IMEI_LENGTH :])
    return UdpDatagram(
        packet_id=packet_id,
        avl_packet_id=avl_packet_id,
        imei=raw_imei.decode("ascii"),
        packet=packet,
    )
