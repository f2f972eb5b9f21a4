"""Cutting a TCP byte stream into GT06 frames, whatever the chunking.

A frame is ``start(2) length(1|2) protocol(1) content serial(2) crc(2) stop(2)``. The
length counts protocol number to CRC, and the CRC-ITU covers length to serial number.
The deframer keeps what it has not used yet, so frames split across reads or glued in
one read come out the same. Bytes that cannot start a frame are skipped up to the next
start bits and reported as one :class:`GarbageError`; a frame with a bad length, stop
bits or CRC is reported and dropped. When more than ``max_junk`` bytes have been
dropped since the last good frame, the stream is beyond repair: a :class:`DesyncError`
is the last item returned and the connection should be closed.
"""

from __future__ import annotations

import msgspec

from m2mhub.connect.crc import crc16_x25
from m2mhub.connect.trackers.gt06.const import (
    MAX_JUNK_BYTES,
    MAX_LONG_LENGTH,
    MIN_LENGTH,
    START_LONG,
    START_SHORT,
    STOP,
)
from m2mhub.connect.trackers.gt06.errors import (
    CrcError,
    DesyncError,
    FrameError,
    GarbageError,
    Gt06Error,
    LengthError,
    StopBitsError,
)


def crc_itu(data: bytes) -> int:
    """CRC-ITU as GT06 uses it: CRC-16/X-25 (poly 0x1021 reflected, init and xor 0xFFFF)."""
    return crc16_x25(data)


class Frame(msgspec.Struct, frozen=True):
    """One checked frame: protocol number, content between it and the serial number."""

    protocol: int
    content: bytes
    serial: int
    is_long: bool = False


def _starts(buffer: bytearray, at: int) -> bool:
    return bytes(buffer[at : at + 2]) in (START_SHORT, START_LONG)


def _find_start(buffer: bytearray) -> int:
    """Index of the first start bits, or of the last byte when there are none."""
    found = [i for i in (buffer.find(START_SHORT), buffer.find(START_LONG)) if i >= 0]
    return min(found) if found else max(len(buffer) - 1, 0)


class Deframer:
    """Incremental GT06 deframer for one connection.

    ``feed()`` returns, in stream order, the frames completed by the new bytes and the
    :class:`FrameError` of each piece dropped; ``dropped`` counts those by ``code``.
    """

    def __init__(
        self, *, max_long_length: int = MAX_LONG_LENGTH, max_junk: int = MAX_JUNK_BYTES
    ) -> None:
        self._buffer = bytearray()
        self._max_long_length = max_long_length
        self._max_junk = max_junk
        self._garbage = 0  # skipped bytes not yet reported
        self._junk = 0  # bytes dropped since the last good frame
        self.dropped: dict[str, int] = {}
        self.is_desynchronised = False

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Take the next bytes of the stream; return completed frames and dropped pieces."""
        if self.is_desynchronised:
            raise Gt06Error("the stream lost synchronisation; close the connection")
        self._buffer += data
        out: list[Frame | FrameError] = []
        while not self.is_desynchronised:
            item = self._next()
            if item is None:
                break
            out.append(item)
            if isinstance(item, FrameError):
                self._count(item, out)
        return out

    def _count(self, error: FrameError, out: list[Frame | FrameError]) -> None:
        self.dropped[error.code] = self.dropped.get(error.code, 0) + 1
        self._junk += error.size
        if self._junk > self._max_junk:
            self.is_desynchronised = True
            desync = DesyncError(
                f"{self._junk} bytes dropped without a valid frame; the device does not "
                "speak GT06 or the stream is corrupt beyond repair",
                size=0,
            )
            self.dropped[desync.code] = self.dropped.get(desync.code, 0) + 1
            out.append(desync)

    def _skip(self, size: int) -> None:
        del self._buffer[:size]
        self._garbage += size

    def _next(self) -> Frame | FrameError | None:
        buffer = self._buffer
        # Find the start bits; everything before them is garbage.
        at = _find_start(buffer)
        if at:
            self._skip(at)
        if len(buffer) < 2 or not _starts(buffer, 0):
            # One byte left: it may be half of the next start bits.
            if buffer and buffer[0] not in (START_SHORT[0], START_LONG[0]):
                self._skip(1)
            return self._flush_garbage_if_long()
        if self._garbage:
            return self._report_garbage()
        is_long = buffer[:2] == START_LONG
        header = 4 if is_long else 3
        if len(buffer) < header:
            return None
        length = int.from_bytes(buffer[2:header], "big")
        longest = self._max_long_length if is_long else 0xFF
        if length < MIN_LENGTH or length > longest:
            self._skip(1)
            self._garbage -= 1  # reported here, not again as garbage
            return LengthError(
                f"length field {length} outside {MIN_LENGTH}..{longest}; resynchronising",
                size=1,
            )
        total = header + length + len(STOP)
        if len(buffer) < total:
            return None
        if buffer[total - 2 : total] != STOP:
            self._skip(1)
            self._garbage -= 1
            return StopBitsError(
                f"no stop bits where length {length} ends the frame; resynchronising",
                size=1,
            )
        body = bytes(buffer[2 : total - 4])
        expected = int.from_bytes(buffer[total - 4 : total - 2], "big")
        actual = crc_itu(body)
        del buffer[:total]
        if actual != expected:
            return CrcError(
                f"CRC {expected:04x} in the frame, {actual:04x} computed; frame dropped",
                size=total,
            )
        self._junk = 0
        payload = body[header - 2 :]
        return Frame(
            protocol=payload[0],
            content=payload[1:-2],
            serial=int.from_bytes(payload[-2:], "big"),
            is_long=is_long,
        )

    def _report_garbage(self) -> GarbageError:
        size, self._garbage = self._garbage, 0
        return GarbageError(f"{size} bytes outside any frame skipped", size=size)

    def _flush_garbage_if_long(self) -> GarbageError | None:
        # Garbage is reported once per run, when the next start bits arrive, so that
        # the count does not depend on how the stream was cut. A run longer than the
        # junk limit is reported at once so that the connection can be closed.
        if self._garbage + self._junk > self._max_junk:
            return self._report_garbage()
        return None
