"""Typed values that cross the layers: connect -> ingest -> store."""

from __future__ import annotations

import enum

import msgspec

#: A telemetry value: numbers, booleans and short strings.
Value = float | int | bool | str


class Role(enum.StrEnum):
    """What a user or API key may do inside its tenant."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """True when this role is at least ``needed``."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class Reading(msgspec.Struct, frozen=True, gc=False):
    """Values one device reported at one instant.

    ``device_pk`` is the store's integer key of the device, filled in once the
    transport has authenticated it; ``ts`` is UTC milliseconds.
    """

    device_pk: int
    ts: int
    values: dict[str, Value]
    source: str = "http"
    message_id: str | None = None


class ValueType(enum.StrEnum):
    """The declared type of a telemetry key in a device type."""

    NUMBER = "number"
    BOOL = "bool"
    STRING = "string"
