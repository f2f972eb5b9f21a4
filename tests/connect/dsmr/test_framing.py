"""Framing: telegrams out of a serial byte stream, however it is cut."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2mhub.connect.dsmr import TelegramFormatError, TelegramFramer, crc16, split_telegrams
from tests.connect.dsmr import telegram

V5 = telegram("dsmr50_iskra_am550")
V42 = telegram("dsmr42_kaifa")
BE = telegram("emucs_fluvius_v171")
V22 = telegram("dsmr22_iskra_mt382")


def test_crc16_is_crc16_arc() -> None:
    # The catalogue check value of CRC-16/ARC, and a meter's own telegram.
    assert crc16(b"123456789") == 0xBB3D
    assert crc16(V5[: V5.index(b"!") + 1]) == 0x6EEE


def test_whole_telegrams_come_out_as_they_went_in() -> None:
    framer = TelegramFramer()
    assert framer.feed(V5 + V42 + BE + V22) == [V5, V42, BE, V22]
    assert not framer.pending and framer.dropped == 0


def test_byte_by_byte() -> None:
    framer = TelegramFramer()
    out: list[bytes] = []
    for byte in V42 + V22 + V5:
        out += framer.feed(bytes([byte]))
    assert out == [V42, V22, V5]
    assert framer.dropped == 0


@given(st.lists(st.integers(min_value=0, max_value=len(V5 + BE)), max_size=30))
def test_any_split_gives_the_same_telegrams(cuts: list[int]) -> None:
    stream = V5 + BE
    framer = TelegramFramer()
    out: list[bytes] = []
    points = [0, *sorted(cuts), len(stream)]
    for start, end in itertools.pairwise(points):
        out += framer.feed(stream[start:end])
    assert out == [V5, BE]


def test_garbage_between_telegrams_is_dropped_and_counted() -> None:
    framer = TelegramFramer()
    out = framer.feed(b"\x00\xffnoise" + V5 + b"\r\n\r\nxx!!" + V42)
    assert out == [V5, V42]
    assert framer.dropped == len(b"\xffnoise") + len(b"xx!!")


def test_starting_mid_telegram_skips_to_the_next_one() -> None:
    framer = TelegramFramer()
    assert framer.feed(V5[300:] + V42) == [V42]
    assert framer.dropped > 0


def test_a_telegram_cut_short_by_the_next_is_dropped_not_glued() -> None:
    framer = TelegramFramer()
    cut = V5[: V5.index(b"1-0:32.7.0") + 7]  # the meter restarted mid-line
    assert framer.feed(cut + V42) == [V42]
    assert framer.dropped == len(cut) - cut.count(b"\r") - cut.count(b"\n")


def test_waits_for_the_crc_and_line_end() -> None:
    framer = TelegramFramer()
    end = V5.index(b"!")
    assert framer.feed(V5[: end + 3]) == []
    assert framer.pending
    assert framer.feed(V5[end + 3 : end + 6]) == []  # "!6EEE\r": the LF may follow
    assert framer.feed(V5[end + 6 :]) == [V5]


def test_an_endless_telegram_is_given_up() -> None:
    framer = TelegramFramer(max_bytes=2000)
    assert framer.feed(b"/ISk5\\2MT382-1000\r\n" + b"1-0:1.8.1(000004.426*kWh)\r\n" * 100) == []
    assert not framer.pending
    assert framer.feed(V5) == [V5]


def test_finish_accepts_a_last_telegram_without_line_end() -> None:
    framer = TelegramFramer()
    assert framer.feed(V5.rstrip()) == []
    assert framer.finish() == [V5.rstrip()]


def test_split_telegrams_of_a_body() -> None:
    assert split_telegrams(V5) == [V5]
    assert split_telegrams(b"\r\n" + V5 + V42 + b"\r\n") == [V5, V42]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "no telegram"),
        (b"hello", "belong to no telegram"),
        (V5[:400], "cut short"),
        (V5[:400] + V42, "belong to no telegram"),
        (V5 + b"junk" + V42, "4 bytes after telegram 1"),
        (b"junk" + V5, "4 bytes before the first telegram"),
    ],
)
def test_split_telegrams_refuses_what_is_not_telegrams(body: bytes, words: str) -> None:
    with pytest.raises(TelegramFormatError) as caught:
        split_telegrams(body)
    assert words in caught.value.message


def test_a_telegram_cut_short_at_the_end_names_its_last_line() -> None:
    with pytest.raises(TelegramFormatError) as caught:
        split_telegrams(V42 + V5[: V5.index(b"1-0:1.8.2") + 5])
    assert caught.value.line == 7
    assert "telegram 2" in caught.value.message
