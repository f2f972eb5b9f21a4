"""Device events and connection-status payloads.

An event is ``{"kind": "door_forced", "ts": 1764000000000, "data": {...}}``
(``ts`` and ``data`` optional), or a JSON array of them. A status message is
``online`` or ``offline``, bare or as a JSON string, or ``{"online": true}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from m2mhub.core.errors import PayloadError
from m2mhub.ingest.payload import MIN_TS_MS, Limits
from m2mhub.registry.naming import TELEMETRY_KEY


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: str
    ts: int | None = None
    data: dict[str, Any] = {}


def parse_events(
    body: bytes, *, now: int, limits: Limits = Limits()
) -> list[tuple[int, str, dict[str, Any]]]:
    """Decode one event or an array of events -> [(ts, kind, data)]."""
    try:
        raw = msgspec.json.decode(body, type=EventIn | list[EventIn])
    except msgspec.ValidationError as exc:
        raise PayloadError(f"event: {exc}", field=_path(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc}", field="body") from None
    events = raw if isinstance(raw, list) else [raw]
    if not events or len(events) > limits.max_readings:
        raise PayloadError(f"send 1 to {limits.max_readings} events", field="body")
    parsed = []
    for index, event in enumerate(events):
        prefix = f"[{index}]." if isinstance(raw, list) else ""
        if not TELEMETRY_KEY.match(event.kind):
            raise PayloadError(
                f"{prefix}kind: {event.kind!r} is not a valid event kind; use letters, digits, "
                "'_', '.', '-'",
                field=f"{prefix}kind",
            )
        ts = now if event.ts is None else event.ts
        if ts < MIN_TS_MS or ts > now + limits.future_tolerance_ms:
            raise PayloadError(
                f"{prefix}ts: {ts} is before 2000 or too far in the future", field=f"{prefix}ts"
            )
        parsed.append((ts, event.kind, event.data))
    return parsed


def parse_status(body: bytes) -> bool:
    """``online`` -> True, ``offline`` -> False (bare, JSON string or {"online": bool})."""
    text = body.strip()
    if text in (b"online", b'"online"'):
        return True
    if text in (b"offline", b'"offline"'):
        return False
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("online"), bool):
        return bool(data["online"])
    raise PayloadError('status must be "online", "offline" or {"online": true|false}', field="body")


def _path(message: str) -> str:
    # msgspec ends its messages with "- at `$[0].kind`"
    marker = "at `$"
    if marker not in message:
        return "body"
    return message.split(marker, 1)[1].rstrip("`").lstrip(".") or "body"
