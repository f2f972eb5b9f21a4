"""What goes wrong on a Teltonika connection, as a shallow tree under one base.

Every error has a stable ``code`` the server can count per connection, and
``is_fatal``: True when the byte stream cannot be resynchronised after it (the
server closes the connection), False when only the one frame is dropped (the
server answers nothing, so the device sends it again).
"""

from __future__ import annotations

from typing import ClassVar

from m2mhub.core.errors import PayloadError


class TeltonikaError(PayloadError):
    """Base of every error of the Teltonika protocol package."""

    code = "teltonika_error"
    is_fatal: ClassVar[bool] = False


class BadImeiError(TeltonikaError):
    """The IMEI handshake is not a 2-byte length 15 followed by 15 ASCII digits."""

    code = "teltonika_bad_imei"
    is_fatal = True


class BadPreambleError(TeltonikaError):
    """A TCP packet does not start with four zero bytes: the stream is out of step."""

    code = "teltonika_bad_preamble"
    is_fatal = True


class BadLengthError(TeltonikaError):
    """A length field is outside the protocol's bounds or disagrees with the bytes."""

    code = "teltonika_bad_length"
    is_fatal = True


class CrcMismatchError(TeltonikaError):
    """The CRC-16/IBM of a data field differs from the one sent with it."""

    code = "teltonika_crc_mismatch"

    def __init__(self, message: str, *, expected: int, computed: int) -> None:
        super().__init__(message, field="crc")
        self.expected = expected
        self.computed = computed


class UnknownCodecError(TeltonikaError):
    """The codec id names a codec this package does not decode (e.g. 13, 14, 15)."""

    code = "teltonika_unknown_codec"

    def __init__(self, message: str, *, codec_id: int) -> None:
        super().__init__(message, field="codec_id")
        self.codec_id = codec_id


class DecodeError(TeltonikaError):
    """A well-framed data field whose content does not parse (counts, sizes, trailing bytes)."""

    code = "teltonika_decode_error"


class EncodeError(TeltonikaError):
    """A value cannot be written in the requested codec (id or value too large)."""

    code = "teltonika_encode_error"


class StreamClosedError(TeltonikaError):
    """Bytes were fed to a deframer that already reported a fatal error."""

    code = "teltonika_stream_closed"
    is_fatal = True
