"""Rows the store hands back: plain frozen values, no database types."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import msgspec

from m2mhub.core.values import Role, Value, ValueType


class Tenant(msgspec.Struct, frozen=True):
    id: int
    slug: str
    name: str
    retention_days: int | None
    created_ms: int


class User(msgspec.Struct, frozen=True):
    id: int
    tenant_id: int
    email: str
    role: Role
    password_hash: str | None
    created_ms: int


class ApiKey(msgspec.Struct, frozen=True):
    id: str
    tenant_id: int
    name: str
    role: Role
    secret_hash: str
    created_ms: int
    revoked_ms: int | None


class KeySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One telemetry key a device type reports."""

    key: str
    type: ValueType = ValueType.NUMBER
    unit: str | None = None
    description: str | None = None


class DeviceType(msgspec.Struct, frozen=True):
    id: int
    tenant_id: int
    name: str
    keys: tuple[KeySpec, ...]
    strict: bool
    report_interval_s: int
    retention_days: int | None
    created_ms: int

    def key_spec(self, key: str) -> KeySpec | None:
        """The declaration of ``key``, if this type declares it."""
        for spec in self.keys:
            if spec.key == key:
                return spec
        return None


class Device(msgspec.Struct, frozen=True):
    pk: int
    id: str
    tenant_id: int
    type_id: int
    name: str
    token_hash: str
    created_ms: int
    last_seen_ms: int | None
    labels: dict[str, str] = {}
    connected: bool | None = None  # None: never reported a connection state (e.g. HTTP)
    rejected: int = 0  # messages refused as invalid, all transports
    last_error: str | None = None
    last_error_ms: int | None = None


class DeviceEvent(msgspec.Struct, frozen=True):
    """Something a device reported as having happened."""

    device_pk: int
    ts: int
    kind: str
    data: dict[str, Any]


class Command(msgspec.Struct, frozen=True):
    """A method call sent down to a device, and what became of it."""

    id: str
    tenant_id: int
    device_pk: int
    method: str
    params: dict[str, Any]
    oneway: bool
    status: str  # queued, sent, delivered, succeeded, failed, expired
    created_ms: int
    expires_ms: int
    timeout_ms: int
    sent_ms: int | None
    finished_ms: int | None
    result: Any
    error: str | None
    created_by: str


class Twin(msgspec.Struct, frozen=True):
    """Desired state (set by people and rules) and reported state (sent by the device)."""

    desired: dict[str, Any]
    desired_version: int
    desired_ms: int | None
    reported: dict[str, Any]
    reported_version: int
    reported_ms: int | None

    @property
    def delta(self) -> dict[str, Any]:
        """What is desired but not (yet) reported as such."""
        return {k: v for k, v in self.desired.items() if self.reported.get(k) != v}


class Group(msgspec.Struct, frozen=True):
    id: int
    tenant_id: int
    name: str
    created_ms: int


class Asset(msgspec.Struct, frozen=True):
    id: int
    tenant_id: int
    name: str
    kind: str
    properties: dict[str, Value]
    created_ms: int


class Assignment(msgspec.Struct, frozen=True):
    """A device assigned to an asset from ``from_ms`` until ``to_ms`` (open if None)."""

    id: int
    asset_id: int
    device_pk: int
    from_ms: int
    to_ms: int | None


class Point(msgspec.Struct, frozen=True, gc=False):
    """One stored value of one key at one instant."""

    device_pk: int
    ts: int
    key: str
    value: Value


class Bucket(msgspec.Struct, gc=False):
    """Aggregates of one key over one time bucket; ``avg`` is derived."""

    ts: int
    min: float | None
    max: float | None
    sum: float | None
    count: int
    first_ts: int
    first: float | None
    last_ts: int
    last: float | None

    def merge(self, other: Bucket) -> None:
        """Fold ``other`` (same bucket, disjoint points) into this one."""
        if other.count == 0:
            return
        if self.count == 0:
            self.min, self.max, self.sum = other.min, other.max, other.sum
            self.first_ts, self.first = other.first_ts, other.first
            self.last_ts, self.last = other.last_ts, other.last
            self.count = other.count
            return
        self.min = _opt(min, self.min, other.min)
        self.max = _opt(max, self.max, other.max)
        self.sum = _opt(operator.add, self.sum, other.sum)
        self.count += other.count
        if other.first_ts < self.first_ts:
            self.first_ts, self.first = other.first_ts, other.first
        if other.last_ts > self.last_ts:
            self.last_ts, self.last = other.last_ts, other.last

    @property
    def avg(self) -> float | None:
        return None if self.sum is None or self.count == 0 else self.sum / self.count


def _opt(fn: Callable[[float, float], float], a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)
