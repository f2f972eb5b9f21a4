"""Errors of the GT06 package: one base, the frame faults a server counts, and content faults."""

from __future__ import annotations

from m2mhub.core.errors import PayloadError


class Gt06Error(PayloadError):
    """Base of every GT06 error."""

    code = "gt06_error"


class FrameError(Gt06Error):
    """Bytes the deframer dropped; ``code`` names the kind, ``size`` the bytes dropped."""

    code = "frame_error"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class GarbageError(FrameError):
    """Bytes before the next start bits that belong to no frame."""

    code = "garbage"


class LengthError(FrameError):
    """A length field below the minimum or above the accepted maximum."""

    code = "bad_length"


class StopBitsError(FrameError):
    """The bytes where the length says the frame ends are not 0x0D 0x0A."""

    code = "bad_stop_bits"


class CrcError(FrameError):
    """The CRC-ITU of the frame does not match its content."""

    code = "crc_mismatch"


class DesyncError(FrameError):
    """Too many bytes dropped without a valid frame: close the connection."""

    code = "desync"


class DecodeError(Gt06Error):
    """A well framed packet whose content does not fit its protocol number."""

    code = "bad_content"


class UnknownProtocolError(DecodeError):
    """A protocol number this package does not decode."""

    code = "unknown_protocol"

    def __init__(self, message: str, *, protocol: int) -> None:
        super().__init__(message, field="protocol")
        self.protocol = protocol


class NotLoggedInError(Gt06Error):
    """A packet before the login packet: it cannot be attributed to a device."""

    code = "not_logged_in"
