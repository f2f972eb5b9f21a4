"""Tests of the DSMR P1 protocol; fixtures/ holds published telegrams byte for byte.

- dsmr50_spec_example.txt: the example of the P1 Companion Standard 5.0.2 (section 6.12),
  with the CRC printed there (EF2F), which does not match the printed text.
- dsmr50_iskra_am550.txt: an Iskra AM550 DSMR 5.0 telegram (dsmr_parser's fixtures).
- dsmr42_kaifa.txt: a Kaifa MA105 DSMR 4.2 telegram (dsmr_parser's fixtures).
- emucs_fluvius_v171.txt: the example of the Fluvius e-MUCS P1 specification 1.7.1,
  gas on channel 1 and water on channel 2.
- dsmr22_iskra_mt382.txt: an Iskra MT382 DSMR 2.2 telegram, no CRC, gas on two lines.
"""

from __future__ import annotations

from pathlib import Path

from m2mhub.connect.dsmr import crc16

FIXTURES = Path(__file__).parent / "fixtures"


def telegram(name: str) -> bytes:
    """A fixture telegram, exactly as the meter sent it."""
    return (FIXTURES / f"{name}.txt").read_bytes()


def with_crc(body: bytes) -> bytes:
    """``body`` (from "/" through "!") with its CRC and line end, as a DSMR 4+ meter sends it."""
    return body + f"{crc16(body):04X}\r\n".encode()


def replace(name: str, old: bytes, new: bytes) -> bytes:
    """A fixture with one line changed and its CRC recomputed."""
    data = telegram(name)
    assert data.count(old) == 1, old
    data = data.replace(old, new)
    return with_crc(data[: data.index(b"!") + 1])
