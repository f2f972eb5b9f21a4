"""Framing: split a P1 byte stream into telegrams, and the CRC16 that guards them.

A telegram runs from "/" to "!", followed by 4 hex CRC digits (DSMR 4.0 and
later) and CR LF; DSMR 2.2 and 3.0 end it with "!" CR LF alone (P1 Companion
Standard 5.0.2, section 6.2). A serial port is read in arbitrary pieces, may
start in the middle of a telegram and may carry line noise: the framer keeps
what it has not finished, drops what cannot belong to a telegram and starts
over at every "/", so a telegram cut short by a new one is dropped, never glued.
"""

from __future__ import annotations

from m2mhub.connect.crc import crc16_arc
from m2mhub.connect.dsmr.const import (
    CRC_DIGITS,
    MAX_TELEGRAM_BYTES,
    TELEGRAM_END,
    TELEGRAM_START,
)
from m2mhub.connect.dsmr.errors import TelegramFormatError

_HEX = frozenset(b"0123456789abcdefABCDEF")
_WHITESPACE = frozenset(b" \t\r\n\x00")


def crc16(data: bytes) -> int:
    """CRC-16/ARC of ``data``: what a DSMR 4+ meter sends after "!" (over "/" to "!");
    DSMR 5.0.2 section 6.2 ("CRC16 ... least significant bit first")."""
    return crc16_arc(data)


class TelegramFramer:
    """Collects bytes read from a P1 port and hands out complete telegrams.

    ``feed`` returns the telegrams completed by the new bytes, each from "/"
    through its CRC (if any) and line end; it never checks the CRC (that is the
    decoder's). Bytes that cannot be part of a telegram are dropped and counted
    in ``dropped`` (whitespace between telegrams is not counted).
    """

    def __init__(self, *, max_bytes: int = MAX_TELEGRAM_BYTES) -> None:
        self.max_bytes = max_bytes
        self.dropped = 0
        #: How many telegrams had been handed out when bytes were first dropped.
        self.dropped_after: int | None = None
        self._emitted = 0
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for "/" and "!"

    @property
    def pending(self) -> bool:
        """True while a telegram has started but not ended."""
        return bool(self._buffer)

    @property
    def partial(self) -> bytes:
        """The bytes of the telegram begun but not ended."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the port; the telegrams they complete, oldest first."""
        self._buffer += data
        telegrams: list[bytes] = []
        while True:
            telegram = self._next()
            if telegram is None:
                return telegrams
            telegrams.append(telegram)

    def finish(self) -> list[bytes]:
        """The end of the stream (an HTTP body): a last telegram may lack its line end."""
        telegrams = self.feed(b"")
        buffer = bytes(self._buffer)
        end = buffer.find(TELEGRAM_END)
        if end >= 0 and _is_final_trailer(buffer[end + 1 :]):
            telegrams.append(buffer)
            self._emitted += 1
        else:
            self._drop(len(buffer))
        self._buffer.clear()
        self._scanned = 0
        return telegrams

    def _next(self) -> bytes | None:
        buffer = self._buffer
        while True:
            start = buffer.find(TELEGRAM_START)
            if start < 0:
                self._drop(len(buffer))
                return None
            if start > 0:
                self._drop(start)
            origin = max(self._scanned, 1)
            end = buffer.find(TELEGRAM_END, origin)
            # A new "/" before the "!": the telegram was cut short; start over there.
            restart = buffer.find(TELEGRAM_START, origin, end if end >= 0 else len(buffer))
            if restart > 0:
                self._drop(restart)
                continue
            if end < 0:
                self._scanned = len(buffer)
                if len(buffer) > self.max_bytes:
                    self._drop(len(buffer))
                return None
            self._scanned = end
            length = _trailer_length(bytes(buffer[end + 1 : end + 1 + CRC_DIGITS + 2]))
            if length is None:
                return None  # wait for the rest of the trailer
            if length < 0:  # "!" followed by something else: not the end of a telegram
                self._drop(end + 1)
                continue
            telegram = bytes(buffer[: end + 1 + length])
            del buffer[: end + 1 + length]
            self._scanned = 0
            self._emitted += 1
            return telegram

    def _drop(self, count: int) -> None:
        dropped = sum(1 for byte in self._buffer[:count] if byte not in _WHITESPACE)
        if dropped and self.dropped_after is None:
            self.dropped_after = self._emitted
        self.dropped += dropped
        del self._buffer[:count]
        self._scanned = 0


def _trailer_length(after: bytes) -> int | None:
    """How many bytes after "!" end the telegram; None: not known yet; -1: not a telegram end."""
    if after.startswith(b"\r\n"):
        return 2  # no CRC: DSMR 2.2 and 3.0
    if after.startswith(b"\n"):
        return 1
    if after in (b"", b"\r"):
        return None
    digits = after[:CRC_DIGITS]
    if not all(byte in _HEX for byte in digits):
        return -1
    rest = after[CRC_DIGITS:]
    if rest in (b"", b"\r"):
        return None
    if rest.startswith(b"\r\n"):
        return CRC_DIGITS + 2
    if rest.startswith(b"\n"):
        return CRC_DIGITS + 1
    return -1


def _is_final_trailer(after: bytes) -> bool:
    """At the end of the stream: "!" alone, or "!" and 4 hex digits, line end optional."""
    text = after.rstrip(b"\r\n")
    return not text or (len(text) == CRC_DIGITS and all(byte in _HEX for byte in text))


def split_telegrams(data: bytes) -> list[bytes]:
    """The telegrams of a complete body (an HTTP post), strictly.

    Unlike a serial port, a body has no excuse for noise: text outside
    telegrams, or a telegram cut short, is an error rather than dropped.
    """
    framer = TelegramFramer()
    telegrams = framer.feed(data)
    if framer.dropped:
        where = (
            f"after telegram {framer.dropped_after}"
            if framer.dropped_after
            else "before the first telegram"
        )
        raise TelegramFormatError(
            f"{framer.dropped} bytes {where} belong to no telegram (a telegram cut short, "
            "or text between telegrams); send telegrams as read from the P1 port, "
            "each from '/' to '!' and its CRC"
        )
    partial = framer.partial
    telegrams += framer.finish()
    if framer.dropped:
        raise TelegramFormatError(
            f"telegram {len(telegrams) + 1} ends before '!': it was cut short; send it whole",
            line=partial.count(b"\n") + 1,
        )
    if not telegrams:
        raise TelegramFormatError(
            "the body holds no telegram; send the text read from the P1 port, "
            "from '/' to '!' and its CRC"
        )
    return telegrams
