"""Decoding OsmAnd requests: query or form parameters, and Traccar Client's JSON body.

The form used by the OsmAnd app and Traccar Client up to version 8 is a GET (or a POST
with a form body) like ``/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0``;
Traccar Client 9 and later POST a JSON ``{"location": {...}, "device_id": "..."}``.
As in Traccar, query parameters win and the body is read only when there are none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec

from m2mhub.connect.trackers.osmand.const import (
    KMH_PER_KNOT,
    KMH_PER_MS,
    MAX_ATTRIBUTE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_SECONDS_TIMESTAMP,
)
from m2mhub.connect.trackers.osmand.errors import OsmAndError
from m2mhub.core.values import Value

_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class Position(msgspec.Struct, frozen=True):
    """One reported position; absent measurements are ``None``.

    ``time_ms`` is UTC milliseconds, ``None`` when the request carried no time (use the
    arrival time then). ``lat``/``lon`` are ``None`` for a report without a location.
    """

    device_id: str
    time_ms: int | None = None
    lat: float | None = None
    lon: float | None = None
    is_valid: bool = True
    speed_kmh: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    hdop: float | None = None
    battery_pct: float | None = None
    is_charging: bool | None = None
    driver_id: str | None = None
    is_moving: bool | None = None
    event: str | None = None
    activity: str | None = None
    odometer_m: float | None = None
    attributes: dict[str, Value] = msgspec.field(default_factory=dict)


def decode_request(
    *, query: str = "", body: bytes = b"", content_type: str | None = None
) -> Position:
    """The position in one HTTP request, whatever the method and form."""
    if query.strip("?&"):
        return decode_params(parse_qs(query.lstrip("?"), keep_blank_values=True))
    text = body.strip()
    is_json = (content_type or "").split(";")[0].strip().lower() == "application/json"
    if is_json or text.startswith(b"{"):
        return decode_json(text)
    try:
        form = text.decode("utf-8")
    except UnicodeDecodeError:
        raise OsmAndError("the form body is not UTF-8 text", field="body") from None
    if not form:
        raise OsmAndError(
            "no parameters: send at least id, lat and lon as query or form parameters",
            field="id",
        )
    return decode_params(parse_qs(form, keep_blank_values=True))


# -- Query and form parameters ---------------------------------------------------------


def decode_params(params: Mapping[str, Sequence[str]]) -> Position:
    """The position in already parsed query or form parameters (name -> values)."""
    first = {name: values[0].strip() for name, values in params.items() if values}
    device_id = first.get("id") or first.get("deviceid")
    if not device_id:
        raise OsmAndError(
            "missing id: send the device identifier as id=... (or deviceid=...)", field="id"
        )
    lat = _float(first, "lat")
    lon = _float(first, "lon")
    if "location" in first:
        lat, lon = _location(first["location"])
    speed = _float(first, "speed")
    heading = _float(first, "bearing")
    if heading is None:
        heading = _float(first, "heading")
    attributes = _attributes(params)
    return _checked(
        Position(
            device_id=device_id,
            time_ms=_timestamp(first["timestamp"]) if first.get("timestamp") else None,
            lat=lat,
            lon=lon,
            is_valid=_bool(first, "valid", default=True),
            speed_kmh=None if speed is None else round(speed * KMH_PER_KNOT, 3),
            heading_deg=heading,
            altitude_m=_float(first, "altitude"),
            accuracy_m=_float(first, "accuracy"),
            hdop=_float(first, "hdop"),
            battery_pct=_float(first, "batt"),
            is_charging=_bool(first, "charge", default=None),
            driver_id=first.get("driverUniqueId") or None,
            attributes=attributes,
        )
    )


#: Parameters read into the Position's fields, not kept as attributes.
_KNOWN = frozenset(
    {
        "id",
        "deviceid",
        "timestamp",
        "lat",
        "lon",
        "location",
        "valid",
        "speed",
        "bearing",
        "heading",
        "altitude",
        "accuracy",
        "hdop",
        "batt",
        "charge",
        "driverUniqueId",
    }
)


def _float(params: Mapping[str, str], name: str) -> float | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise OsmAndError(f"{name}: {text!r} is not a number", field=name) from None
    if not math.isfinite(value):
        raise OsmAndError(f"{name}: {text!r} is not a finite number", field=name)
    return value


def _bool(params: Mapping[str, str], name: str, *, default: bool | None) -> Any:
    text = params.get(name)
    if text is None or text == "":
        return default
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise OsmAndError(f"{name}: {text!r} is not true, false, 1 or 0", field=name)


def _location(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise OsmAndError(
            f"location: {text!r} is not 'lat,lon' (e.g. location=60.0,30.0)", field="location"
        )
    lat = _float({"location": parts[0].strip()}, "location")
    lon = _float({"location": parts[1].strip()}, "location")
    assert lat is not None and lon is not None  # split parts are never missing here
    return lat, lon


def _timestamp(text: str) -> int:
    """Unix seconds, Unix milliseconds, ISO 8601 or ``yyyy-MM-dd HH:mm:ss`` (UTC) -> ms."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or number < 0:
            raise OsmAndError(f"timestamp: {text!r} is not a time", field="timestamp")
        return round(number * 1000) if number < MAX_SECONDS_TIMESTAMP else round(number)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OsmAndError(
            f"timestamp: {text!r} is not a time; send Unix seconds or milliseconds, or "
            "ISO 8601 such as 2016-01-27T18:55:47Z",
            field="timestamp",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def _attributes(params: Mapping[str, Sequence[str]]) -> dict[str, Value]:
    extra = {name: values for name, values in params.items() if name not in _KNOWN and values}
    if len(extra) > MAX_ATTRIBUTES:
        raise OsmAndError(
            f"{len(extra)} extra parameters; at most {MAX_ATTRIBUTES} are kept, send fewer",
            field="attributes",
        )
    attributes: dict[str, Value] = {}
    for name, values in extra.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise OsmAndError(
                f"parameter name {name!r}: use letters, digits, '_', '.' or '-' (up to 64)",
                field=name,
            )
        # Repeated parameters (cell=..., wifi=...) are kept together, in order.
        attributes[name] = _scalar(";".join(v.strip() for v in values), name)
    return attributes


def _scalar(text: str, name: str) -> Value:
    if len(text) > MAX_ATTRIBUTE_LENGTH:
        raise OsmAndError(
            f"{name}: value of {len(text)} characters; at most {MAX_ATTRIBUTE_LENGTH}",
            field=name,
        )
    if text in ("true", "false"):
        return text == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


# -- JSON body (Traccar Client 9 and later) ----------------------------------------------


class _Coords(msgspec.Struct, frozen=True):
    latitude: float | None = None
    longitude: float | None = None
    accuracy: float | None = None
    speed: float | None = None  # m/s, negative when unknown
    heading: float | None = None  # degrees, negative when unknown
    altitude: float | None = None


class _Battery(msgspec.Struct, frozen=True):
    level: float | None = None  # 0..1, negative when unknown
    is_charging: bool | None = None


class _Activity(msgspec.Struct, frozen=True):
    type: str | None = None


class _Location(msgspec.Struct, frozen=True):
    timestamp: str | None = None
    coords: _Coords = _Coords()
    is_moving: bool | None = None
    odometer: float | None = None
    event: str | None = None
    battery: _Battery = _Battery()
    activity: _Activity = _Activity()
    mock: bool | None = None
    extras: dict[str, Any] = msgspec.field(default_factory=dict)


class _Body(msgspec.Struct, frozen=True):
    location: _Location | None = None
    device_id: str | None = None


def decode_json(body: bytes | str) -> Position:
    """The position in a Traccar Client JSON body."""
    try:
        message = msgspec.json.decode(body, type=_Body)
    except msgspec.ValidationError as error:
        path = str(error).rpartition(" - at `$.")[2].rstrip("`") or "body"
        raise OsmAndError(f"JSON body: {error}", field=path) from None
    except msgspec.DecodeError as error:
        raise OsmAndError(f"JSON body is not valid JSON: {error}", field="body") from None
    if not message.device_id:
        raise OsmAndError(
            'missing device_id: the JSON body needs "device_id" next to "location"',
            field="device_id",
        )
    if message.location is None:
        raise OsmAndError('missing "location" object in the JSON body', field="location")
    location = message.location
    coords = location.coords
    level = location.battery.level
    extras = {
        name: value
        for name, value in location.extras.items()
        if isinstance(value, bool | int | float | str)
    }
    if location.mock is not None:
        extras["mock"] = location.mock
    return _checked(
        Position(
            device_id=message.device_id,
            time_ms=_timestamp(location.timestamp) if location.timestamp else None,
            lat=coords.latitude,
            lon=coords.longitude,
            speed_kmh=_known(coords.speed, KMH_PER_MS),
            heading_deg=_known(coords.heading, 1),
            altitude_m=coords.altitude,
            accuracy_m=_known(coords.accuracy, 1),
            battery_pct=_known(level, 100),
            is_charging=location.battery.is_charging,
            is_moving=location.is_moving,
            event=location.event,
            activity=location.activity.type,
            odometer_m=location.odometer,
            attributes=_attributes(
                {k: [str(v).lower() if isinstance(v, bool) else str(v)] for k, v in extras.items()}
            ),
        )
    )


def _known(value: float | None, scale: float) -> float | None:
    """Scaled, or ``None`` for the SDK's -1 meaning "not available"."""
    if value is None or value < 0:
        return None
    return round(value * scale, 3)


def _checked(position: Position) -> Position:
    if (position.lat is None) != (position.lon is None):
        missing = "lon" if position.lon is None else "lat"
        raise OsmAndError(f"missing {missing}: send lat and lon together", field=missing)
    if position.lat is not None and not -90 <= position.lat <= 90:
        raise OsmAndError(f"lat: {position.lat} is outside -90..90", field="lat")
    if position.lon is not None and not -180 <= position.lon <= 180:
        raise OsmAndError(f"lon: {position.lon} is outside -180..180", field="lon")
    return position
