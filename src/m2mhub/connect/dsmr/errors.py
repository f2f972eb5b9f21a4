"""Errors of the DSMR P1 protocol: one base, with the telegram line at fault."""

from __future__ import annotations

from m2mhub.core.errors import PayloadError


class DsmrError(PayloadError):
    """A P1 telegram that cannot be accepted; ``line`` is its 1-based line number."""

    code = "invalid_telegram"

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + message, field=field)
        self.line = line
        self.reason = message


class ChecksumError(DsmrError):
    """The CRC16 after '!' does not match the telegram's bytes: it was damaged in transit."""

    code = "telegram_crc_mismatch"


class TelegramFormatError(DsmrError):
    """A telegram that does not follow the P1 grammar: header, COSEM lines, '!' and CRC."""

    code = "invalid_telegram"
