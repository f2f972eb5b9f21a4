"""Telemetry and attribute payloads, shared by every transport.

Three shapes are accepted (docs/devices.md):

- ``{"ts": 1732400000000, "values": {"temp": 21.5}}``: one reading;
- ``{"temp": 21.5, "on": true}``: a bare object, timestamped on arrival
  (a ``"ts"`` member, if present, is taken as the timestamp);
- a JSON array of either, for store-and-forward batches.

A payload is accepted whole or rejected whole: the first problem is reported
with the path of the field at fault, e.g. ``[3].values.temp``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Final

import msgspec

from m2mhub.core.errors import PayloadError
from m2mhub.core.values import Value
from m2mhub.registry.naming import TELEMETRY_KEY

#: Timestamps before 2000-01-01 are refused: almost always seconds sent as ms.
MIN_TS_MS: Final = 946_684_800_000

_decoder = msgspec.json.Decoder()

#: Key names already found valid (bounded: only valid names enter, and at most this many).
_VALID_KEYS_MAX: Final = 100_000
_valid_keys: set[str] = set()


class Limits(msgspec.Struct, frozen=True):
    """Bounds on what a single payload may hold."""

    max_readings: int = 10_000
    max_string: int = 1024
    max_values: int = 1000
    future_tolerance_ms: int = 300_000


def _decode(body: bytes) -> Any:
    if not body.strip():
        raise PayloadError("the body is empty; send a JSON object or array", field="body")
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:  # e.g. numbers out of float range
        raise PayloadError(f"invalid JSON value: {exc}", field="body") from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc}", field="body") from None


def _check_ts(ts: Any, path: str, now: int, limits: Limits) -> int:
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise PayloadError(f"{path}: must be an integer (UTC milliseconds since 1970)", field=path)
    if ts < MIN_TS_MS:
        raise PayloadError(
            f"{path}: {ts} is before the year 2000; send milliseconds, not seconds", field=path
        )
    if ts > now + limits.future_tolerance_ms:
        raise PayloadError(
            f"{path}: {ts} is more than {limits.future_tolerance_ms // 1000} s in the future; "
            "check the device clock",
            field=path,
        )
    return ts


def _check_values(values: Any, path: str, limits: Limits) -> dict[str, Value]:
    if not isinstance(values, dict):
        raise PayloadError(f"{path}: must be an object of key: value", field=path)
    if not values:
        raise PayloadError(f"{path}: holds no values", field=path)
    if len(values) > limits.max_values:
        raise PayloadError(f"{path}: more than {limits.max_values} values", field=path)
    for key, value in values.items():
        if not TELEMETRY_KEY.match(key):
            raise PayloadError(
                f"{path}.{key}: invalid key; use letters, digits, '_', '.', '-' (max 64)",
                field=f"{path}.{key}",
            )
        if isinstance(value, str):
            if len(value) > limits.max_string:
                raise PayloadError(
                    f"{path}.{key}: string longer than {limits.max_string} characters",
                    field=f"{path}.{key}",
                )
            if "\x00" in value:
                raise PayloadError(
                    f"{path}.{key}: strings may not contain NUL characters", field=f"{path}.{key}"
                )
        elif not isinstance(value, int | float):  # bool is an int
            raise PayloadError(
                f"{path}.{key}: must be a number, true/false or a string, not {_json_type(value)}",
                field=f"{path}.{key}",
            )
    return values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _one_reading(item: Any, path: str, now: int, limits: Limits) -> tuple[int, dict[str, Value]]:
    if not isinstance(item, dict):
        raise PayloadError(f"{path or 'body'}: must be a JSON object", field=path or "body")
    prefix = f"{path}." if path else ""
    if "values" in item:
        extra = set(item) - {"ts", "values"}
        if extra:
            name = sorted(extra)[0]
            raise PayloadError(
                f"{prefix}{name}: unexpected member beside ts and values", field=f"{prefix}{name}"
            )
        ts = _check_ts(item["ts"], f"{prefix}ts", now, limits) if "ts" in item else now
        return ts, _check_values(item["values"], f"{prefix}values", limits)
    if "ts" in item:
        ts = _check_ts(item["ts"], f"{prefix}ts", now, limits)
        values = {k: v for k, v in item.items() if k != "ts"}
    else:
        ts, values = now, item
    # Bare values are reported under "values" too, as the device type checks name them.
    return ts, _check_values(values, f"{prefix}values", limits)


@lru_cache(maxsize=8)
def _typed_decoder(max_string: int, max_values: int) -> msgspec.json.Decoder[Any]:
    """A decoder for the common shapes (``{"ts", "values"}`` and arrays of it) under limits.

    msgspec checks types, string lengths and value counts while it parses, in C.
    """
    text = Annotated[str, msgspec.Meta(max_length=max_string)]
    values = Annotated[
        dict[str, bool | int | float | text], msgspec.Meta(min_length=1, max_length=max_values)
    ]
    timed = msgspec.defstruct(
        "TimedReading",
        [("values", values), ("ts", int | msgspec.UnsetType, msgspec.UNSET)],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(timed | list[timed])  # type: ignore[valid-type]


def _parse_timed(
    body: bytes, now: int, limits: Limits
) -> list[tuple[int, dict[str, Value]]] | None:
    """The fast path: readings in the timed shape that pass every check, else None.

    It accepts exactly what the general path accepts, nothing more; anything
    else (bare objects, any problem) goes to the general path, which reports
    the problem with its field.
    """
    try:
        data = _typed_decoder(limits.max_string, limits.max_values).decode(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > limits.max_readings:
        return None
    latest = now + limits.future_tolerance_ms
    readings: list[tuple[int, dict[str, Value]]] = []
    for item in items:
        ts = now if item.ts is msgspec.UNSET else item.ts
        if ts < MIN_TS_MS or ts > latest:
            return None
        values = item.values
        # Keys repeat from reading to reading and message to message: check each new key once.
        if not values.keys() <= _valid_keys:
            if not all(TELEMETRY_KEY.match(key) for key in values):
                return None
            if len(_valid_keys) < _VALID_KEYS_MAX:
                _valid_keys.update(values)
        readings.append((ts, values))
    # NUL in a string: let the general path name the field. (find, not ``in``: bytes.__contains__
    # first tries its argument as an integer, which raises and catches a TypeError each time.)
    if body.find(b"\\u0000") >= 0:
        return None
    return readings


def parse_telemetry(
    body: bytes, *, now: int, limits: Limits = Limits()
) -> list[tuple[int, dict[str, Value]]]:
    """Decode and check a telemetry payload -> [(ts, values)], or :class:`PayloadError`."""
    readings = _parse_timed(body, now, limits)
    if readings is not None:
        return readings
    data = _decode(body)
    if isinstance(data, list):
        if not data:
            raise PayloadError("the batch is empty", field="body")
        if len(data) > limits.max_readings:
            raise PayloadError(
                f"the batch has {len(data)} readings; "
                f"send at most {limits.max_readings} per request",
                field="body",
            )
        return [_one_reading(item, f"[{i}]", now, limits) for i, item in enumerate(data)]
    return [_one_reading(data, "", now, limits)]


def parse_attributes(body: bytes, *, limits: Limits = Limits()) -> dict[str, Any]:
    """Decode a reported-attributes object: keys as for telemetry, values any JSON."""
    data = _decode(body)
    if not isinstance(data, dict) or not data:
        raise PayloadError("attributes must be a non-empty JSON object", field="body")
    if len(data) > limits.max_values:
        raise PayloadError(f"more than {limits.max_values} attributes", field="body")
    for key in data:
        if not TELEMETRY_KEY.match(key):
            raise PayloadError(f"{key}: invalid attribute name", field=key)
    return data
