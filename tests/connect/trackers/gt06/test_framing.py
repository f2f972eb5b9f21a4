"""The deframer on real frames: CRCs, splits, glue, garbage and corrupt frames."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2mhub.connect.trackers.gt06 import (
    CrcError,
    Deframer,
    DesyncError,
    Frame,
    FrameError,
    GarbageError,
    Gt06Error,
    LengthError,
    StopBitsError,
    crc_itu,
)
from tests.connect.trackers.gt06.frames import FRAMES

GOOD = [name for name in FRAMES if "bad_crc" not in name]
STREAM = b"".join(FRAMES[name] for name in GOOD)


def frames_of(items: list[Frame | FrameError]) -> list[Frame]:
    return [item for item in items if isinstance(item, Frame)]


def test_crc_itu_is_crc16_x25() -> None:
    # The catalogued check value of CRC-16/X-25 over "123456789".
    assert crc_itu(b"123456789") == 0x906E


@pytest.mark.parametrize("name", GOOD)
def test_crc_of_every_published_frame_matches(name: str) -> None:
    raw = FRAMES[name]
    assert crc_itu(raw[2:-4]) == int.from_bytes(raw[-4:-2], "big")
    (frame,) = Deframer().feed(raw)
    assert isinstance(frame, Frame)
    assert frame.protocol == raw[4 if frame.is_long else 3]


@pytest.mark.parametrize("name", ["doc_gps_bad_crc", "doc_login_tz_bad_crc"])
def test_published_frames_with_a_wrong_crc_are_dropped(name: str) -> None:
    deframer = Deframer()
    (error,) = deframer.feed(FRAMES[name])
    assert isinstance(error, CrcError)
    assert error.size == len(FRAMES[name])
    assert deframer.dropped == {"crc_mismatch": 1}
    assert deframer.buffered == 0


def test_frame_fields() -> None:
    (frame,) = Deframer().feed(FRAMES["doc_login"])
    assert frame == Frame(protocol=0x01, content=bytes.fromhex("0123456789012345"), serial=1)
    (long,) = Deframer().feed(FRAMES["string_info_utf16"])
    assert isinstance(long, Frame)
    assert long.is_long and long.protocol == 0x21 and long.serial == 0x23


def test_byte_by_byte_and_glued_give_the_same_frames() -> None:
    glued = Deframer().feed(STREAM)
    one_by_one = Deframer()
    split: list[Frame | FrameError] = []
    for byte in STREAM:
        split += one_by_one.feed(bytes([byte]))
    assert frames_of(glued) == frames_of(split)
    assert len(frames_of(glued)) == len(GOOD) == len(glued)
    assert one_by_one.buffered == 0


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_random_split_points_never_change_the_frames(cuts: list[int]) -> None:
    deframer = Deframer()
    items: list[Frame | FrameError] = []
    points = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(points):
        items += deframer.feed(STREAM[start:end])
    assert items == Deframer().feed(STREAM)


@given(
    st.lists(st.integers(min_value=0, max_value=len(STREAM) + 64), max_size=20),
    st.binary(max_size=64),
)
def test_random_splits_with_garbage_report_the_same_items(cuts: list[int], junk: bytes) -> None:
    stream = junk + FRAMES["doc_login"] + junk + STREAM
    deframer = Deframer()
    items: list[Frame | FrameError] = []
    points = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(points):
        items += deframer.feed(stream[start:end])
    whole = Deframer().feed(stream)
    assert [type(i) for i in items] == [type(i) for i in whole]
    assert frames_of(items) == frames_of(whole)
    # Every good frame after the junk still comes out.
    assert frames_of(items)[-len(GOOD) :] == frames_of(Deframer().feed(STREAM))


def test_garbage_before_a_frame_is_skipped_and_reported_once() -> None:
    deframer = Deframer()
    items = deframer.feed(b"GET / HTTP/1.1\r\n" + FRAMES["doc_login"])
    assert isinstance(items[0], GarbageError) and items[0].size == 16
    assert isinstance(items[1], Frame) and items[1].protocol == 0x01
    assert deframer.dropped == {"garbage": 1}


def test_garbage_fed_byte_by_byte_is_one_report() -> None:
    deframer = Deframer()
    items: list[Frame | FrameError] = []
    for byte in b"\x00\x01\x78\x02\x79" + FRAMES["doc_status"]:
        items += deframer.feed(bytes([byte]))
    assert [type(i) for i in items] == [GarbageError, Frame]
    assert items[0].size == 5  # type: ignore[union-attr]


def test_truncated_frame_waits_then_completes() -> None:
    deframer = Deframer()
    raw = FRAMES["gps_lbs_vilnius"]
    assert deframer.feed(raw[:-3]) == []
    assert deframer.buffered == len(raw) - 3
    (frame,) = deframer.feed(raw[-3:])
    assert isinstance(frame, Frame) and frame.protocol == 0x12


def test_corrupt_crc_is_dropped_and_the_next_frame_kept() -> None:
    corrupt = bytearray(FRAMES["gps_lbs_vilnius"])
    corrupt[10] ^= 0x01  # one bit of the latitude
    items = Deframer().feed(bytes(corrupt) + FRAMES["doc_status"])
    assert isinstance(items[0], CrcError)
    assert isinstance(items[1], Frame) and items[1].protocol == 0x13


def test_truncated_frame_followed_by_another_resynchronises() -> None:
    # A frame cut short on the wire: its length runs into the next frame, the stop
    # bits are not where they should be, and the deframer finds the next start bits.
    cut = FRAMES["gps_lbs_vilnius"][:20]
    deframer = Deframer()
    items = deframer.feed(cut + FRAMES["doc_login"] + FRAMES["doc_status"])
    assert isinstance(items[0], StopBitsError)
    assert [i.protocol for i in frames_of(items)] == [0x01, 0x13]
    assert deframer.dropped["bad_stop_bits"] == 1
    assert deframer.dropped["garbage"] == 1


def test_bad_length_is_reported() -> None:
    items = Deframer().feed(b"\x78\x78\x02\x01\x00" + FRAMES["doc_login"])
    assert isinstance(items[0], LengthError)
    assert frames_of(items)[0].protocol == 0x01


def test_long_length_beyond_the_maximum_is_not_waited_for() -> None:
    items = Deframer().feed(b"\x79\x79\xff\xff" + FRAMES["doc_login"])
    assert isinstance(items[0], LengthError)
    assert frames_of(items)[0].protocol == 0x01


def test_connection_closes_when_it_cannot_resynchronise() -> None:
    deframer = Deframer(max_junk=100)
    items = deframer.feed(FRAMES["doc_login"] + bytes(range(0x20, 0x70)) * 2)
    assert isinstance(items[0], Frame)
    assert isinstance(items[-1], DesyncError)
    assert deframer.is_desynchronised
    assert deframer.dropped["desync"] == 1
    with pytest.raises(Gt06Error, match="close the connection"):
        deframer.feed(FRAMES["doc_login"])


def test_a_good_frame_resets_the_junk_count() -> None:
    deframer = Deframer(max_junk=100)
    for _ in range(5):
        items = deframer.feed(bytes(60) + FRAMES["doc_status"])
        assert [type(i) for i in items] == [GarbageError, Frame]
    assert not deframer.is_desynchronised
