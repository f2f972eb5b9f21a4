"""Decode the data field of a Teltonika packet: AVL records (Codec 8, 8E, 16) and Codec 12.

The data field runs from the codec id to "number of data 2"; TCP and UDP wrap
it differently (see :mod:`.framing`) but its content is the same. Layout per
Teltonika's data sending protocols page (https://wiki.teltonika-gps.com/view/
Teltonika_Data_Sending_Protocols). All integers are big-endian.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

import msgspec

from m2mhub.connect.trackers.teltonika.const import (
    CODEC12_COMMAND,
    CODEC12_RESPONSE,
    CODEC_8,
    CODEC_8E,
    CODEC_12,
    CODEC_16,
)
from m2mhub.connect.trackers.teltonika.errors import DecodeError, UnknownCodecError

#: Coordinates are sent as degrees x 10^7 in a signed 32-bit integer.
COORDINATE_SCALE: Final = 10_000_000

#: An IO element value: an unsigned integer for the 1/2/4/8-byte groups, bytes for Codec 8E's
#: variable-length (NX) group.
IoValue = int | bytes


class AvlRecord(msgspec.Struct, frozen=True):
    """One AVL record: a position fix and the IO elements read with it.

    ``ts`` is UTC milliseconds since the epoch, as the device sent it. A record
    without a GNSS fix (no satellites, or 0,0) is kept: :attr:`has_fix` tells it
    apart, and filtering is left to the application.
    """

    ts: int
    priority: int
    lat: float
    lon: float
    altitude_m: int
    angle_deg: int
    satellites: int
    speed_kmh: int
    event_io_id: int
    io: dict[int, IoValue]
    #: Codec 16 only: why the record was generated (``const.GENERATION_*``).
    generation_type: int | None = None

    @property
    def has_fix(self) -> bool:
        """True when the position comes from a GNSS fix (satellites in view, not 0,0)."""
        return self.satellites > 0 and not (self.lat == 0 and self.lon == 0)


class AvlPacket(msgspec.Struct, frozen=True):
    """The records of one AVL data field; the server acknowledges ``len(records)``."""

    codec_id: int
    records: tuple[AvlRecord, ...]


class Codec12Message(msgspec.Struct, frozen=True):
    """A Codec 12 command (server -> device) or response (device -> server)."""

    message_type: int
    payload: bytes

    @property
    def is_response(self) -> bool:
        """True for a device's response (type 0x06), False for a command (0x05)."""
        return self.message_type == CODEC12_RESPONSE

    @property
    def text(self) -> str:
        """The payload as text; devices send ASCII, anything else is replaced."""
        return self.payload.decode("utf-8", errors="replace")


class _IoLayout(NamedTuple):
    """How a codec writes the IO part of a record (field widths in bytes)."""

    id_size: int
    count_size: int
    has_generation_type: bool
    has_nx: bool


#: Codec 8: 1-byte ids and counts. Codec 8E: 2-byte ids and counts, plus the variable-length
#: NX group. Codec 16: 2-byte ids (the event id too), 1-byte counts, a generation type byte.
IO_LAYOUTS: Final = {
    CODEC_8: _IoLayout(id_size=1, count_size=1, has_generation_type=False, has_nx=False),
    CODEC_8E: _IoLayout(id_size=2, count_size=2, has_generation_type=False, has_nx=True),
    CODEC_16: _IoLayout(id_size=2, count_size=1, has_generation_type=True, has_nx=False),
}

#: The fixed-width IO groups, in wire order.
IO_WIDTHS: Final = (1, 2, 4, 8)

#: Timestamp (ms), priority, longitude, latitude (signed), altitude (signed), angle,
#: satellites, speed.
GPS_ELEMENT: Final = struct.Struct(">QBiihHBH")


class _Reader:
    """Reads big-endian fields off a data field, naming the field when it runs short."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def take(self, size: int, field: str) -> bytes:
        if size > self.remaining:
            raise DecodeError(
                f"{field}: needs {size} byte(s) at offset {self.pos} but only "
                f"{self.remaining} remain; the frame is truncated or a count in it is wrong",
                field=field,
            )
        chunk = self._data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")


def decode_data(data: bytes) -> AvlPacket | Codec12Message:
    """Decode a data field (codec id .. number of data 2) by its codec id.

    Raises :class:`UnknownCodecError` for codecs other than 8, 8E, 16 and 12,
    and :class:`DecodeError` when the content does not parse.
    """
    if not data:
        raise DecodeError("data field: empty; expected at least a codec id", field="codec_id")
    codec_id = data[0]
    if codec_id == CODEC_12:
        return decode_codec12(data)
    if codec_id in IO_LAYOUTS:
        return decode_avl_data(data)
    raise UnknownCodecError(
        f"codec_id: 0x{codec_id:02X} is not a codec this server decodes (8, 8E, 16, 12); "
        "set the device's data protocol to Codec 8 or Codec 8 Extended",
        codec_id=codec_id,
    )


def decode_avl_data(data: bytes) -> AvlPacket:
    """Decode an AVL data field of Codec 8, 8 Extended or 16."""
    reader = _Reader(data)
    codec_id = reader.uint(1, "codec_id")
    layout = IO_LAYOUTS.get(codec_id)
    if layout is None:
        raise UnknownCodecError(
            f"codec_id: 0x{codec_id:02X} is not an AVL codec (8, 8E or 16)", codec_id=codec_id
        )
    count = reader.uint(1, "number_of_data_1")
    records = tuple(_read_record(reader, layout, index) for index in range(count))
    count_2 = reader.uint(1, "number_of_data_2")
    if count_2 != count:
        raise DecodeError(
            f"number_of_data_2: {count_2} differs from number_of_data_1 {count}; "
            "the packet is corrupt and is dropped without an acknowledgement",
            field="number_of_data_2",
        )
    _expect_end(reader)
    return AvlPacket(codec_id=codec_id, records=records)


def decode_codec12(data: bytes) -> Codec12Message:
    """Decode a Codec 12 data field: one command (type 0x05) or response (type 0x06)."""
    reader = _Reader(data)
    codec_id = reader.uint(1, "codec_id")
    if codec_id != CODEC_12:
        raise UnknownCodecError(
            f"codec_id: 0x{codec_id:02X} is not Codec 12 (0x0C)", codec_id=codec_id
        )
    # The wiki says the quantity is ignored when parsing; both copies must still agree.
    quantity = reader.uint(1, "quantity_1")
    message_type = reader.uint(1, "type")
    if message_type not in (CODEC12_COMMAND, CODEC12_RESPONSE):
        raise DecodeError(
            f"type: 0x{message_type:02X} is neither a command (0x05) nor a response (0x06)",
            field="type",
        )
    size = reader.uint(4, "size")
    payload = reader.take(size, "payload")
    quantity_2 = reader.uint(1, "quantity_2")
    if quantity_2 != quantity:
        raise DecodeError(
            f"quantity_2: {quantity_2} differs from quantity_1 {quantity}; the message is corrupt",
            field="quantity_2",
        )
    _expect_end(reader)
    return Codec12Message(message_type=message_type, payload=payload)


def _read_record(reader: _Reader, layout: _IoLayout, index: int) -> AvlRecord:
    prefix = f"records[{index}]"
    ts, priority, lon, lat, altitude, angle, satellites, speed = GPS_ELEMENT.unpack(
        reader.take(GPS_ELEMENT.size, f"{prefix}.gps_element")
    )
    event_io_id = reader.uint(layout.id_size, f"{prefix}.event_io_id")
    generation_type = (
        reader.uint(1, f"{prefix}.generation_type") if layout.has_generation_type else None
    )
    total = reader.uint(layout.count_size, f"{prefix}.io_count")
    io: dict[int, IoValue] = {}
    seen = 0
    for width in IO_WIDTHS:
        group = f"{prefix}.io_n{width}"
        for _ in range(reader.uint(layout.count_size, f"{group}_count")):
            io_id = reader.uint(layout.id_size, f"{group}.id")
            io[io_id] = reader.uint(width, f"{group}.value")
            seen += 1
    if layout.has_nx:
        group = f"{prefix}.io_nx"
        for _ in range(reader.uint(layout.count_size, f"{group}_count")):
            io_id = reader.uint(layout.id_size, f"{group}.id")
            length = reader.uint(2, f"{group}.length")
            io[io_id] = reader.take(length, f"{group}.value")
            seen += 1
    if seen != total:
        raise DecodeError(
            f"{prefix}.io_count: says {total} IO elements but the groups hold {seen}; "
            "the record is corrupt",
            field=f"{prefix}.io_count",
        )
    return AvlRecord(
        ts=ts,
        priority=priority,
        lat=lat / COORDINATE_SCALE,
        lon=lon / COORDINATE_SCALE,
        altitude_m=altitude,
        angle_deg=angle,
        satellites=satellites,
        speed_kmh=speed,
        event_io_id=event_io_id,
        io=io,
        generation_type=generation_type,
    )


def _expect_end(reader: _Reader) -> None:
    if reader.remaining:
        raise DecodeError(
            f"data field: {reader.remaining} byte(s) left after the last field at offset "
            f"{reader.pos}; the data field length or a count is wrong",
            field="data_field_length",
        )
