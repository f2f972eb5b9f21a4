"""Frames from tests/connect/trackers/teltonika/fixtures and generators of valid records."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from m2mhub.connect.trackers.teltonika.const import CODEC_8, CODEC_8E, CODEC_16
from m2mhub.connect.trackers.teltonika.decoder import AvlRecord, IoValue

FIXTURES = Path(__file__).parent / "fixtures"

#: Every fixture that is one TCP packet (preamble to CRC).
TCP_FRAMES = (
    "wiki_codec8_1",
    "wiki_codec8_2",
    "wiki_codec8_3",
    "wiki_codec8e",
    "wiki_codec16",
    "wiki_codec12_getinfo",
    "wiki_codec12_getinfo_response",
    "device_codec8_moving",
    "device_codec8_three_records",
    "device_codec8e_nx",
    "device_codec16_southern",
)


def frame(name: str) -> bytes:
    """The bytes of ``fixtures/<name>.hex`` (``#`` lines are comments)."""
    lines = (FIXTURES / f"{name}.hex").read_text().splitlines()
    return bytes.fromhex("".join(line for line in lines if not line.startswith("#")))


def data_field(packet: bytes) -> bytes:
    """The data field of a TCP packet: between the 8-byte header and the 4-byte CRC."""
    return packet[8:-4]


_ID_BITS = {CODEC_8: 8, CODEC_8E: 16, CODEC_16: 16}


@st.composite
def records(draw: st.DrawFn, codec_id: int) -> AvlRecord:
    """A record any of the AVL codecs can carry, with coordinates on the 1e-7 degree grid."""
    max_id = (1 << _ID_BITS[codec_id]) - 1
    numbers = st.integers(min_value=0, max_value=(1 << 64) - 1)
    values: st.SearchStrategy[IoValue] = (
        numbers | st.binary(max_size=40) if codec_id == CODEC_8E else numbers
    )
    io = draw(st.dictionaries(st.integers(0, max_id), values, max_size=12))
    return AvlRecord(
        ts=draw(st.integers(0, 4_102_444_800_000)),
        priority=draw(st.integers(0, 2)),
        lat=draw(st.integers(-900_000_000, 900_000_000)) / 10_000_000,
        lon=draw(st.integers(-1_800_000_000, 1_800_000_000)) / 10_000_000,
        altitude_m=draw(st.integers(-32768, 32767)),
        angle_deg=draw(st.integers(0, 359)),
        satellites=draw(st.integers(0, 255)),
        speed_kmh=draw(st.integers(0, 65535)),
        event_io_id=draw(st.integers(0, max_id)),
        io=io,
        generation_type=draw(st.integers(0, 7)) if codec_id == CODEC_16 else None,
    )


@st.composite
def avl_batches(draw: st.DrawFn) -> tuple[int, list[AvlRecord]]:
    """A codec id and up to 5 records for it."""
    codec_id = draw(st.sampled_from((CODEC_8, CODEC_8E, CODEC_16)))
    return codec_id, draw(st.lists(records(codec_id), max_size=5))
