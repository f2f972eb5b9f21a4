"""One GT06 connection's protocol state, without I/O.

A server hands every chunk it reads to :meth:`Gt06Session.receive` and writes back the
replies it gets; it closes the connection when ``should_close`` turns true::

    session = Gt06Session()
    while data := await reader.read(4096):
        received = session.receive(data, now_ms=now_ms())
        for reply in received.replies:
            writer.write(reply)
        ...  # received.packets, with session.imei
        if session.should_close:
            break
"""

from __future__ import annotations

import msgspec

from m2mhub.connect.trackers.gt06.decoder import decode_frame
from m2mhub.connect.trackers.gt06.encoder import (
    ACKNOWLEDGED,
    encode_ack,
    encode_command,
    encode_time_response,
)
from m2mhub.connect.trackers.gt06.errors import FrameError, Gt06Error, NotLoggedInError
from m2mhub.connect.trackers.gt06.framing import Deframer
from m2mhub.connect.trackers.gt06.packets import Login, Packet, TimeRequest


class Received(msgspec.Struct, frozen=True):
    """What one chunk of the stream brought: packets in order, each with the reply the
    device waits for (None when it waits for none), and the errors dropped."""

    answered: list[tuple[Packet, bytes | None]]
    errors: list[Gt06Error]

    @property
    def packets(self) -> list[Packet]:
        return [packet for packet, _ in self.answered]

    @property
    def replies(self) -> list[bytes]:
        """The replies to write, in order."""
        return [reply for _, reply in self.answered if reply is not None]


class Gt06Session:
    """Deframes, decodes and answers one device's stream; counts what it drops."""

    def __init__(self, *, deframer: Deframer | None = None) -> None:
        self._deframer = deframer or Deframer()
        self._serial = 0
        self.imei: str | None = None
        self.tz_offset_minutes = 0
        self.dropped: dict[str, int] = {}

    @property
    def should_close(self) -> bool:
        """True once the stream cannot be resynchronised."""
        return self._deframer.is_desynchronised

    def receive(self, data: bytes, *, now_ms: int) -> Received:
        """Take the next bytes from the device; ``now_ms`` answers its time requests."""
        answered: list[tuple[Packet, bytes | None]] = []
        errors: list[Gt06Error] = []
        for item in self._deframer.feed(data):
            if isinstance(item, FrameError):
                self._drop(item, errors)
                continue
            try:
                packet = decode_frame(item, tz_offset_minutes=self.tz_offset_minutes)
            except Gt06Error as error:
                self._drop(error, errors)
                continue
            if isinstance(packet, Login):
                self.imei = packet.imei
                self.tz_offset_minutes = packet.tz_offset_minutes or 0
            elif self.imei is None:
                self._drop(
                    NotLoggedInError(f"packet 0x{item.protocol:02x} before the login; dropped"),
                    errors,
                )
                continue
            reply: bytes | None = None
            if item.protocol in ACKNOWLEDGED:
                reply = encode_ack(item.protocol, item.serial)
            elif isinstance(packet, TimeRequest):
                reply = encode_time_response(now_ms, item.serial)
            answered.append((packet, reply))
        return Received(answered=answered, errors=errors)

    def command(self, text: str, *, server_flag: int = 0) -> bytes:
        """The frame of an online command to write to the device, e.g. ``RELAY,1#``."""
        self._serial = (self._serial + 1) & 0xFFFF
        return encode_command(text, serial=self._serial, server_flag=server_flag)

    def _drop(self, error: Gt06Error, errors: list[Gt06Error]) -> None:
        self.dropped[error.code] = self.dropped.get(error.code, 0) + 1
        errors.append(error)
