"""What the device sends, checked before it is buffered and packed into messages.

The platform takes a message whole or refuses it whole (docs/devices.md#all-or-nothing),
and over MQTT a refused message is acknowledged and dropped. One bad reading in a
replayed batch would take the good ones with it, so the SDK refuses it at
``send()``, with the same rules and messages as the platform.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from m2mhub.core.errors import PayloadError
from m2mhub.device._buffer import Item
from m2mhub.device._topics import Outbound

#: Keys of values, attributes and event kinds (docs/devices.md#value-types).
KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
#: Timestamps before 2000-01-01 are refused by the platform: seconds sent as ms.
MIN_TS_MS: Final = 946_684_800_000
#: The platform's defaults (docs/devices.md#limits): values per reading, string length.
MAX_VALUES: Final = 1000
MAX_STRING: Final = 1024
#: Half the platform's default MQTT payload limit (256 KiB, docs/devices.md#mqtt-limits).
MAX_MESSAGE_BYTES: Final = 131_072
#: Readings (or events) per replayed message: "a few hundred" (docs/devices.md#store-and-forward).
MAX_BATCH: Final = 500

Value = float | int | bool | str

_encoder = msgspec.json.Encoder()


def to_ms(ts: int | datetime, *, field: str = "ts") -> int:
    """UTC milliseconds from an integer (ms) or an aware datetime."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise PayloadError(
                f"{field}: a naive datetime has no time zone; pass an aware one "
                "(datetime.now(UTC)) or UTC milliseconds",
                field=field,
            )
        ts = round(ts.timestamp() * 1000)
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise PayloadError(f"{field}: must be UTC milliseconds (int) or a datetime", field=field)
    if ts < MIN_TS_MS:
        raise PayloadError(
            f"{field}: {ts} is before the year 2000; send milliseconds, not seconds", field=field
        )
    return ts


def check_key(key: object, field: str) -> str:
    if not isinstance(key, str) or not KEY.match(key):
        raise PayloadError(
            f"{field}: {key!r} is not a valid name; use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or '_'",
            field=field,
        )
    return key


def check_values(values: Mapping[str, Any]) -> dict[str, Value]:
    """Telemetry values: 1 to 1000 keys, each a finite number, a bool or a short string."""
    if not isinstance(values, Mapping) or not values:
        raise PayloadError("values: give a non-empty mapping of key: value", field="values")
    if len(values) > MAX_VALUES:
        raise PayloadError(f"values: more than {MAX_VALUES} values", field="values")
    checked: dict[str, Value] = {}
    for key, value in values.items():
        field = f"values.{key}"
        check_key(key, field)
        if isinstance(value, str):
            if len(value) > MAX_STRING or "\x00" in value:
                raise PayloadError(
                    f"{field}: strings hold at most {MAX_STRING} characters and no NUL",
                    field=field,
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise PayloadError(f"{field}: {value} is not a finite number", field=field)
        elif not isinstance(value, int):  # bool is an int
            raise PayloadError(
                f"{field}: must be a number, true/false or a string, not {type(value).__name__}; "
                "send one key per scalar (gps.lat, gps.lon)",
                field=field,
            )
        checked[key] = value
    return checked


def encode(item: object, *, what: str) -> bytes:
    """JSON of one buffered item, refused when it could never fit in a message."""
    try:
        body = _encoder.encode(item)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(f"{what}: cannot be sent as JSON: {exc}", field=what) from None
    if len(body) > MAX_MESSAGE_BYTES:
        raise PayloadError(
            f"{what}: {len(body)} bytes is over the message limit of {MAX_MESSAGE_BYTES}",
            field=what,
        )
    return body


def reading(values: Mapping[str, Any], ts: int) -> bytes:
    """``{"ts": ms, "values": {...}}``: the timed shape, kept through the buffer."""
    return encode({"ts": ts, "values": check_values(values)}, what="values")


def event(kind: str, data: Mapping[str, Any] | None, ts: int) -> bytes:
    """``{"kind": ..., "ts": ms, "data": {...}}`` (docs/devices.md#events)."""
    check_key(kind, "kind")
    if data is not None and not isinstance(data, Mapping):
        raise PayloadError("data: give a mapping (a JSON object) or nothing", field="data")
    return encode({"kind": kind, "ts": ts, "data": dict(data or {})}, what="data")


def attributes(values: Mapping[str, Any]) -> bytes:
    """A non-empty object of attributes; values may be any JSON (docs/devices.md#attributes)."""
    if not isinstance(values, Mapping) or not values:
        raise PayloadError("attributes: give a non-empty mapping", field="attributes")
    if len(values) > MAX_VALUES:
        raise PayloadError(f"attributes: more than {MAX_VALUES}", field="attributes")
    for key in values:
        check_key(key, f"attributes.{key}")
    return encode(dict(values), what="attributes")


def pack(kind: Outbound, bodies: Iterable[bytes]) -> bytes:
    """One message from buffered items of one kind, in order.

    Telemetry and events go as a JSON array, each item with its own ``ts``;
    attribute reports merge into one object, later values winning, as the
    platform would apply them one after the other.
    """
    if kind is Outbound.ATTRIBUTES:
        merged: dict[str, Any] = {}
        for body in bodies:
            merged.update(msgspec.json.decode(body))
        return _encoder.encode(merged)
    return b"[" + b",".join(bodies) + b"]"


def next_batch(items: Sequence[Item]) -> list[Item]:
    """The leading items of one kind that fit in one message (at least one)."""
    kind = items[0].kind
    batch: list[Item] = []
    size = 2  # the brackets of the array
    for item in items[:MAX_BATCH]:
        size += len(item.body) + 1
        if item.kind is not kind or (batch and size > MAX_MESSAGE_BYTES):
            break
        batch.append(item)
    return batch
