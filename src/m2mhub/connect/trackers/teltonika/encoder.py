"""Build Teltonika frames: the server's answers and commands, and device packets for tests.

Server -> device: :func:`encode_imei_answer`, :func:`encode_tcp_ack`,
:func:`encode_udp_ack`, :func:`encode_codec12_command`.
Device -> server (simulators and round-trip tests): :func:`encode_imei`,
:func:`encode_avl_data`, :func:`encode_tcp_packet`, :func:`encode_udp_datagram`,
:func:`encode_codec12_response`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from m2mhub.connect.trackers.teltonika.const import (
    CODEC12_COMMAND,
    CODEC12_RESPONSE,
    CODEC_12,
    IMEI_ACCEPT,
    IMEI_LENGTH,
    IMEI_REJECT,
    PREAMBLE,
    UDP_ACK_LENGTH,
    UDP_UNUSED_BYTE,
)
from m2mhub.connect.trackers.teltonika.crc import crc16_ibm
from m2mhub.connect.trackers.teltonika.decoder import (
    COORDINATE_SCALE,
    GPS_ELEMENT,
    IO_LAYOUTS,
    IO_WIDTHS,
    AvlRecord,
    IoValue,
)
from m2mhub.connect.trackers.teltonika.errors import EncodeError

# -- Server -> device ---------------------------------------------------------------------------


def encode_imei_answer(accepted: bool) -> bytes:
    """The one-byte answer to the IMEI handshake: 0x01 accepts, 0x00 rejects."""
    return IMEI_ACCEPT if accepted else IMEI_REJECT


def encode_tcp_ack(record_count: int) -> bytes:
    """The TCP acknowledgement of an AVL packet: its record count, 4 bytes big-endian."""
    return _uint(record_count, 4, "record_count")


def encode_udp_ack(packet_id: int, avl_packet_id: int, record_count: int) -> bytes:
    """The UDP acknowledgement: length 5, packet id, 0x01, AVL packet id, accepted count."""
    return (
        _uint(UDP_ACK_LENGTH, 2, "length")
        + _uint(packet_id, 2, "packet_id")
        + bytes([UDP_UNUSED_BYTE])
        + _uint(avl_packet_id, 1, "avl_packet_id")
        + _uint(record_count, 1, "record_count")
    )


def encode_codec12_command(command: str) -> bytes:
    """A TCP packet carrying one Codec 12 command, e.g. ``"getinfo"`` or ``"setdigout 1"``.

    The command is the device's SMS command text without the SMS login and
    password; it must be ASCII.
    """
    return encode_tcp_packet(_codec12_data(CODEC12_COMMAND, command))


def encode_codec12_response(text: str) -> bytes:
    """A TCP packet carrying a device's Codec 12 response (for device simulators)."""
    return encode_tcp_packet(_codec12_data(CODEC12_RESPONSE, text))


# -- Device -> server ---------------------------------------------------------------------------


def encode_imei(imei: str) -> bytes:
    """The device's handshake: 2-byte length then the IMEI in ASCII."""
    if len(imei) != IMEI_LENGTH or not (imei.isascii() and imei.isdigit()):
        raise EncodeError(f"imei: {imei!r} is not {IMEI_LENGTH} ASCII digits", field="imei")
    return _uint(IMEI_LENGTH, 2, "imei") + imei.encode("ascii")


def encode_tcp_packet(data: bytes) -> bytes:
    """Wrap a data field in a TCP packet: preamble, length, data, CRC-16/IBM field."""
    return PREAMBLE + _uint(len(data), 4, "data") + data + _uint(crc16_ibm(data), 4, "crc")


def encode_udp_datagram(
    data: bytes, *, imei: str, packet_id: int = 0, avl_packet_id: int = 0
) -> bytes:
    """Wrap a data field in a UDP datagram with its channel header (no CRC over UDP)."""
    body = (
        _uint(packet_id, 2, "packet_id")
        + bytes([UDP_UNUSED_BYTE])
        + _uint(avl_packet_id, 1, "avl_packet_id")
        + encode_imei(imei)
        + data
    )
    return _uint(len(body), 2, "length") + body


def encode_avl_data(
    codec_id: int,
    records: Iterable[AvlRecord],
    *,
    io_sizes: Mapping[int, int] | None = None,
) -> bytes:
    """The data field (codec id .. number of data 2) of an AVL packet.

    Integer IO values go in the group of ``io_sizes[id]`` bytes (1, 2, 4 or 8)
    if given, else in the smallest group that holds them; ``bytes`` values go in
    Codec 8E's variable-length group. Codec 16 records need a ``generation_type``.
    """
    layout = IO_LAYOUTS.get(codec_id)
    if layout is None:
        raise EncodeError(
            f"codec_id: 0x{codec_id:02X} is not an AVL codec (0x08, 0x8E or 0x10)",
            field="codec_id",
        )
    sizes = io_sizes or {}
    records = list(records)
    count = _uint(len(records), 1, "records")
    parts = [bytes([codec_id]), count]
    for index, record in enumerate(records):
        prefix = f"records[{index}]"
        parts.append(_gps_element(record, prefix))
        parts.append(_uint(record.event_io_id, layout.id_size, f"{prefix}.event_io_id"))
        if layout.has_generation_type:
            if record.generation_type is None:
                raise EncodeError(
                    f"{prefix}.generation_type: Codec 16 needs one (const.GENERATION_*)",
                    field=f"{prefix}.generation_type",
                )
            parts.append(_uint(record.generation_type, 1, f"{prefix}.generation_type"))
        fixed, variable = _group_io(record.io, sizes, has_nx=layout.has_nx, prefix=prefix)
        total = sum(len(group) for group in fixed.values()) + len(variable)
        parts.append(_uint(total, layout.count_size, f"{prefix}.io_count"))
        for width in IO_WIDTHS:
            group = fixed.get(width, [])
            parts.append(_uint(len(group), layout.count_size, f"{prefix}.io_n{width}_count"))
            for io_id, number in group:
                parts.append(_uint(io_id, layout.id_size, f"{prefix}.io[{io_id}]"))
                parts.append(_uint(number, width, f"{prefix}.io[{io_id}]"))
        if layout.has_nx:
            parts.append(_uint(len(variable), layout.count_size, f"{prefix}.io_nx_count"))
            for io_id, blob in variable:
                parts.append(_uint(io_id, layout.id_size, f"{prefix}.io[{io_id}]"))
                parts.append(_uint(len(blob), 2, f"{prefix}.io[{io_id}]"))
                parts.append(blob)
    parts.append(count)
    return b"".join(parts)


def _gps_element(record: AvlRecord, prefix: str) -> bytes:
    try:
        return GPS_ELEMENT.pack(
            record.ts,
            record.priority,
            round(record.lon * COORDINATE_SCALE),
            round(record.lat * COORDINATE_SCALE),
            record.altitude_m,
            record.angle_deg,
            record.satellites,
            record.speed_kmh,
        )
    except struct.error as error:
        raise EncodeError(
            f"{prefix}: a GPS element field is out of its wire range ({error})",
            field=prefix,
        ) from None


def _group_io(
    io: Mapping[int, IoValue], sizes: Mapping[int, int], *, has_nx: bool, prefix: str
) -> tuple[dict[int, list[tuple[int, int]]], list[tuple[int, bytes]]]:
    """IO elements split into the fixed-width groups (by width) and the NX group."""
    fixed: dict[int, list[tuple[int, int]]] = {}
    variable: list[tuple[int, bytes]] = []
    for io_id, value in io.items():
        if isinstance(value, bytes):
            if not has_nx:
                raise EncodeError(
                    f"{prefix}.io[{io_id}]: a bytes value needs Codec 8 Extended (0x8E)",
                    field=f"{prefix}.io",
                )
            variable.append((io_id, value))
            continue
        width = sizes.get(io_id) or next(
            (w for w in IO_WIDTHS if value < 1 << (8 * w)), IO_WIDTHS[-1]
        )
        if width not in IO_WIDTHS:
            raise EncodeError(
                f"io_sizes[{io_id}]: {width} is not an IO width; use 1, 2, 4 or 8",
                field="io_sizes",
            )
        fixed.setdefault(width, []).append((io_id, value))
    return fixed, variable


def _codec12_data(message_type: int, text: str) -> bytes:
    if not text.isascii():
        raise EncodeError(f"command: {text!r} must be ASCII", field="command")
    payload = text.encode("ascii")
    return (
        bytes([CODEC_12, 1, message_type])
        + _uint(len(payload), 4, "command")
        + payload
        + bytes([1])
    )


def _uint(value: int, size: int, field: str) -> bytes:
    try:
        return value.to_bytes(size, "big")
    except OverflowError:
        raise EncodeError(
            f"{field}: {value} does not fit in {size} unsigned byte(s)", field=field
        ) from None
