"""The device's side of its twin: the desired state it follows, what it reports back.

The platform publishes ``{"version": n, "desired": {...}}`` retained on
``m2m/{device}/twin/desired`` (the whole desired state, so a device that
connects later gets it at once) and merges ``{"reported": {...}}`` from
``m2m/{device}/twin/reported`` into the reported state, where null deletes a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

#: Applies the desired state; returns what to report, or None to report the desired state.
DesiredHandler = Callable[
    [dict[str, Any]], Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None
]


@dataclass(frozen=True)
class DesiredState:
    """The latest desired state the platform published, with its version (0: none yet)."""

    version: int = 0
    state: Mapping[str, Any] = field(default_factory=dict)


class _DesiredMessage(msgspec.Struct, frozen=True):
    version: int
    desired: dict[str, Any]


def parse_desired(payload: bytes) -> DesiredState:
    """The retained desired-state message -> DesiredState; ValueError when malformed."""
    try:
        message = msgspec.json.decode(payload, type=_DesiredMessage)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ValueError(f"malformed desired state: {exc}") from None
    return DesiredState(message.version, message.desired)


def report_for(applied: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """What to report once ``desired`` is applied over ``applied``.

    The desired values, and null for keys that the desired state no longer has:
    the platform merges reports, so a key is removed only by reporting it null.
    """
    gone = {key: None for key in applied if key not in desired}
    return {**gone, **desired}
