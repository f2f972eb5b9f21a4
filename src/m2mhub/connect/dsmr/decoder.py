"""Decoding: one P1 telegram -> a :class:`Telegram` with m2mhub reading values.

Handles DSMR 2.2 and 3.0 (no CRC, no meter clock line), DSMR 4.x and 5.0 (CRC16
after "!") and the Belgian e-MUCS variant (Fluvius), whose version line is
0-0:96.1.4 and which adds capacity-tariff peaks. Values are named with the keys
of :mod:`m2mhub.connect.dsmr.const`; OBIS references without a key are kept in
``Telegram.objects`` and otherwise ignored.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from m2mhub.connect.dsmr import const
from m2mhub.connect.dsmr.cosem import (
    CosemObject,
    parse_integer,
    parse_lines,
    parse_quantity,
    parse_timestamp,
)
from m2mhub.connect.dsmr.errors import ChecksumError, TelegramFormatError
from m2mhub.connect.dsmr.framing import crc16
from m2mhub.core.values import Value

_CRC = re.compile(rb"([0-9A-Fa-f]{4})?\r?\n?")
#: The first version that carries a CRC: DSMR 4.0 writes "40" in 1-3:0.2.8.
_FIRST_VERSION_WITH_CRC = 40


@dataclass(frozen=True, slots=True)
class Measurement:
    """A value the meter stamped with its own time (gas, water, a monthly peak)."""

    key: str
    ts: int
    value: float
    channel: int = 0


@dataclass(frozen=True, slots=True)
class MBusDevice:
    """A meter on an M-Bus channel of the electricity meter (gas, water, heat)."""

    channel: int
    device_type: int | None
    equipment_id: str | None


@dataclass(frozen=True, slots=True)
class PowerFailure:
    """An entry of the long power failure log (1-0:99.97.0): when it ended, how long."""

    end_ts: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class Telegram:
    """A decoded P1 telegram.

    ``ts`` is the meter's clock (0-0:1.0.0) in UTC ms, None for DSMR 2.2 and 3.0;
    ``values`` hold what was measured at ``ts``; ``measurements`` carry their own time.
    """

    header: str
    version: str | None
    ts: int | None
    equipment_id: str | None
    crc: int | None
    values: dict[str, Value]
    measurements: tuple[Measurement, ...]
    devices: tuple[MBusDevice, ...]
    power_failures: tuple[PowerFailure, ...]
    objects: tuple[CosemObject, ...]

    @property
    def manufacturer(self) -> str:
        """The three-letter manufacturer code of the header (``ISk``, ``KFM``, ``FLU``)."""
        return self.header[1:4]

    def readings(self, *, arrival_ms: int) -> list[tuple[int, dict[str, Value]]]:
        """m2mhub readings, oldest first: the meter's values at its clock, each
        measurement at its own time. Without a meter clock (DSMR 2.2, 3.0) the
        values are stamped ``arrival_ms``.
        """
        by_ts: dict[int, dict[str, Value]] = {}
        if self.values:
            by_ts[self.ts if self.ts is not None else arrival_ms] = dict(self.values)
        for measurement in self.measurements:
            by_ts.setdefault(measurement.ts, {})[measurement.key] = measurement.value
        return sorted(by_ts.items())


def decode_telegram(
    data: bytes, *, zone: ZoneInfo | str = const.DEFAULT_ZONE, verify_crc: bool = True
) -> Telegram:
    """Decode one telegram, from "/" through "!" and its CRC (if any).

    Raises :class:`ChecksumError` when the CRC does not match (unless
    ``verify_crc`` is False) and :class:`TelegramFormatError` for anything that
    does not follow the P1 grammar; both name the line at fault.
    """
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    if not data.startswith(b"/"):
        raise TelegramFormatError(
            "a telegram starts with '/' and the meter's identification", line=1
        )
    end = data.find(b"!")
    if end < 0:
        raise TelegramFormatError(
            "the telegram ends before '!': it was cut short; send it whole",
            line=data.count(b"\n") + 1,
        )
    body = data[: end + 1]
    last_line = body.count(b"\n") + 1
    trailer = _CRC.fullmatch(data[end + 1 :])
    if trailer is None:
        raise TelegramFormatError(
            "'!' must be followed by 4 hex CRC digits (DSMR 4 and later) or the line end",
            line=last_line,
        )
    crc = int(trailer[1], 16) if trailer[1] else None
    if crc is not None and verify_crc:
        computed = crc16(body)
        if computed != crc:
            raise ChecksumError(
                f"CRC mismatch: the telegram says {crc:04X}, its bytes give {computed:04X}; "
                "it was damaged on the way (check the P1 cable or send it again)",
                line=last_line,
            )
    text = _ascii(body)
    lines = text.replace("\r\n", "\n").split("\n")
    header = lines[0].rstrip("\r")
    if len(header) < 5:
        raise TelegramFormatError(
            f"{header!r} is not an identification line like /ISk5\\2MT382-1000", line=1
        )
    objects = parse_lines(lines[1:-1], first_line=2)
    telegram = _interpret(header, crc, objects, zone)
    version = telegram.version
    if (
        crc is None
        and version
        and version[:2].isdigit()
        and int(version[:2]) >= _FIRST_VERSION_WITH_CRC
    ):
        raise TelegramFormatError(
            f"a DSMR {version[0]}.{version[1]} telegram ends with a CRC after '!'; "
            "this one has none",
            line=last_line,
        )
    return telegram


def _ascii(body: bytes) -> str:
    try:
        return body.decode("ascii")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise TelegramFormatError(
            f"byte 0x{body[exc.start]:02X} is not ASCII: line noise on the P1 port", line=line
        ) from None


def _interpret(
    header: str, crc: int | None, objects: list[CosemObject], zone: ZoneInfo
) -> Telegram:
    version: str | None = None
    ts: int | None = None
    equipment_id: str | None = None
    values: dict[str, Value] = {}
    peaks: list[Measurement] = []
    failures: tuple[PowerFailure, ...] = ()
    channels: dict[int, _Channel] = {}
    for obj in objects:
        first = obj.values[0] if obj.values else ""
        if obj.channel and obj.obis.startswith("0-"):
            _read_channel(channels.setdefault(obj.channel, _Channel()), obj, zone)
        elif obj.obis in (const.OBIS_VERSION, const.OBIS_VERSION_BE):
            version = first or None
        elif obj.obis == const.OBIS_TIMESTAMP:
            ts = parse_timestamp(first, zone=zone, line=obj.line, obis=obj.obis)
        elif obj.obis == const.OBIS_EQUIPMENT_ID:
            equipment_id = _equipment_id(first)
        elif obj.obis in const.NUMERIC:
            key, unit = const.NUMERIC[obj.obis]
            values[key] = _quantity(obj, first, unit)
        elif obj.obis in const.INTEGER:
            values[const.INTEGER[obj.obis]] = parse_integer(first, line=obj.line, obis=obj.obis)
        elif obj.obis == const.OBIS_POWER_FAILURE_LOG:
            failures = _power_failures(obj, zone)
        elif obj.obis == const.OBIS_DEMAND_PEAK_MONTH and len(obj.values) >= 2:
            at = parse_timestamp(first, zone=zone, line=obj.line, obis=obj.obis)
            peak = _quantity(obj, obj.values[1], "kW")
            peaks.append(Measurement(const.DEMAND_PEAK_MONTH_KW, at, peak))
    devices, measurements = _channel_readings(channels)
    return Telegram(
        header=header,
        version=version,
        ts=ts,
        equipment_id=equipment_id,
        crc=crc,
        values=values,
        measurements=tuple(peaks + measurements),
        devices=devices,
        power_failures=failures,
        objects=tuple(objects),
    )


def _quantity(obj: CosemObject, raw: str, unit: str) -> float:
    """A number in the unit of its key, converting W and Wh; another unit is an error."""
    number, sent = parse_quantity(raw, line=obj.line, obis=obj.obis)
    if sent is None or sent == unit:
        return number
    converted = const.UNIT_CONVERSIONS.get(sent)
    if converted is None or converted[0] != unit:
        raise TelegramFormatError(
            f"{obj.obis}: unit {sent!r} where {unit!r} was expected", line=obj.line
        )
    return round(number * converted[1], 6)


def _equipment_id(raw: str) -> str | None:
    """Equipment identifiers are sent as hex-encoded ASCII; decode them when they are."""
    if not raw:
        return None
    try:
        text = binascii.unhexlify(raw).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return raw
    return text if text.isprintable() else raw


def _power_failures(obj: CosemObject, zone: ZoneInfo) -> tuple[PowerFailure, ...]:
    # (count)(0-0:96.7.19)(end TST)(duration*s)...; DSMR 5.0.2 section 6.12.
    if not obj.values or not obj.values[0]:
        return ()
    count = parse_integer(obj.values[0], line=obj.line, obis=obj.obis)
    entries = obj.values[2:]
    if len(entries) != 2 * count:
        raise TelegramFormatError(
            f"{obj.obis}: the log announces {count} entries but holds {len(entries) // 2}",
            line=obj.line,
        )
    failures = []
    for index in range(0, len(entries), 2):
        end = parse_timestamp(entries[index], zone=zone, line=obj.line, obis=obj.obis)
        duration = parse_integer(entries[index + 1], line=obj.line, obis=obj.obis)
        failures.append(PowerFailure(end, duration))
    return tuple(failures)


@dataclass
class _Channel:
    device_type: int | None = None
    equipment_id: str | None = None
    ts: int | None = None
    value: float | None = None
    unit: str | None = None


def _read_channel(channel: _Channel, obj: CosemObject, zone: ZoneInfo) -> None:
    code, line, first = obj.code, obj.line, obj.values[0] if obj.values else ""
    if code == const.MBUS_DEVICE_TYPE and first:
        channel.device_type = parse_integer(first, line=line, obis=obj.obis)
    elif code in const.MBUS_EQUIPMENT_IDS:
        channel.equipment_id = _equipment_id(first)
    elif code in const.MBUS_VALUES and len(obj.values) >= 2 and obj.values[1]:
        channel.ts = parse_timestamp(first, zone=zone, line=line, obis=obj.obis)
        channel.value, channel.unit = parse_quantity(obj.values[1], line=line, obis=obj.obis)
    elif code == const.MBUS_LEGACY_VALUE:
        # (TST)(00)(60)(1)(0-n:24.2.1)(unit) and, on the next line, (value).
        if len(obj.values) < 7:
            raise TelegramFormatError(
                f"{obj.obis}: its value belongs on the next line (DSMR 2.2, 3.0); it is missing",
                line=line,
            )
        channel.ts = parse_timestamp(first, zone=zone, line=line, obis=obj.obis)
        channel.value, _ = parse_quantity(obj.values[6], line=line, obis=obj.obis)
        channel.unit = obj.values[5] or None


def _channel_readings(
    channels: dict[int, _Channel],
) -> tuple[tuple[MBusDevice, ...], list[Measurement]]:
    devices: list[MBusDevice] = []
    measurements: list[Measurement] = []
    used: set[str] = set()
    for number in sorted(channels):
        channel = channels[number]
        devices.append(MBusDevice(number, channel.device_type, channel.equipment_id))
        if channel.ts is None or channel.value is None:
            continue
        known = const.MBUS_KEYS.get(channel.device_type or -1) or const.MBUS_KEYS_BY_UNIT.get(
            channel.unit or ""
        )
        if known is None:
            continue  # a meter m2mhub has no key for: kept in objects only
        key = known[0]
        # The lowest channel of a kind gets the plain key; a second gas meter gets "_ch2".
        if key in used:
            key = f"{key}_ch{number}"
        used.add(known[0])
        measurements.append(Measurement(key, channel.ts, channel.value, number))
    return tuple(devices), measurements
