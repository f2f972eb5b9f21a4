"""The line grammar of a P1 telegram: COSEM objects, values with units, timestamps.

A data line is an OBIS reference followed by one or more values in parentheses,
e.g. ``1-0:1.8.1(001234.567*kWh)`` or ``0-1:24.2.1(101209112500W)(12785.123*m3)``
(P1 Companion Standard 5.0.2, section 6.4). A line that starts with "(" continues
the object above it: DSMR 2.2 and 3.0 send the gas value of ``0-n:24.3.0`` there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from m2mhub.connect.dsmr.const import DST_FLAGS
from m2mhub.connect.dsmr.errors import TelegramFormatError

# A-B:C.D.E, some meters add the F group ("*255"); the values are "(...)" repeated.
_LINE = re.compile(r"(\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3})(?:\*\d{1,3})?((?:\([^()]*\))+)")
_VALUES = re.compile(r"\(([^()]*)\)")
_CONTINUATION = re.compile(r"(?:\([^()]*\))+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TST = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})([SW]?)")


@dataclass(frozen=True, slots=True)
class CosemObject:
    """One data line: its OBIS reference, its raw values, and where it was."""

    obis: str
    values: tuple[str, ...]
    line: int

    @property
    def channel(self) -> int:
        """Value group B: 0 for the electricity meter, 1-4 for M-Bus channels."""
        return int(self.obis.split(":", 1)[0].split("-", 1)[1])

    @property
    def code(self) -> str:
        """Value groups C.D.E, the part that names the quantity (``24.2.1``)."""
        return self.obis.split(":", 1)[1]


def parse_lines(lines: list[str], *, first_line: int) -> list[CosemObject]:
    """The data lines of a telegram (between the header and "!") as COSEM objects.

    ``first_line`` is the telegram line number of ``lines[0]``, for error messages.
    """
    objects: list[CosemObject] = []
    for number, text in enumerate(lines, start=first_line):
        text = text.strip()
        if not text:
            continue
        if text.startswith("(") and objects and _CONTINUATION.fullmatch(text):
            previous = objects[-1]
            objects[-1] = CosemObject(
                previous.obis, previous.values + tuple(_VALUES.findall(text)), previous.line
            )
            continue
        match = _LINE.fullmatch(text)
        if match is None:
            raise TelegramFormatError(
                f"{text[:40]!r} is not a COSEM line like 1-0:1.8.1(001234.567*kWh)", line=number
            )
        objects.append(CosemObject(match[1], tuple(_VALUES.findall(match[2])), number))
    return objects


def parse_quantity(raw: str, *, line: int, obis: str) -> tuple[float, str | None]:
    """``"001234.567*kWh"`` -> ``(1234.567, "kWh")``; a value without unit has None."""
    number, _, unit = raw.partition("*")
    if not _NUMBER.fullmatch(number):
        raise TelegramFormatError(f"{obis}: {raw!r} is not a number", line=line)
    return float(number), unit or None


def parse_integer(raw: str, *, line: int, obis: str) -> int:
    """``"0002"`` -> 2 (tariff indicators, counters, states)."""
    number = raw.partition("*")[0]
    if not number.isdigit():
        raise TelegramFormatError(f"{obis}: {raw!r} is not a whole number", line=line)
    return int(number)


def parse_timestamp(raw: str, *, zone: ZoneInfo, line: int, obis: str) -> int:
    """A TST ``YYMMDDhhmmssX`` in the meter's local time -> UTC milliseconds.

    X is S (summer time, UTC+2) or W (winter time, UTC+1) and settles the hour
    that occurs twice when the clocks go back. DSMR 2.2 and 3.0 send no X: their
    time is read in ``zone``, taking the first of a repeated hour.
    """
    match = _TST.fullmatch(raw)
    if match is None:
        raise TelegramFormatError(
            f"{obis}: {raw!r} is not a timestamp YYMMDDhhmmss followed by S or W", line=line
        )
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        local = datetime(2000 + year, month, day, hour, minute, second)
    except ValueError:
        raise TelegramFormatError(f"{obis}: {raw!r} is not a valid date", line=line) from None
    flag = match[7]
    if flag:
        aware = local.replace(tzinfo=timezone(timedelta(hours=DST_FLAGS[flag])))
    else:
        aware = local.replace(tzinfo=zone, fold=0)
    return int(aware.astimezone(UTC).timestamp()) * 1000
