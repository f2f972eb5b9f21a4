"""Rows the store hands back: plain frozen values, no database types."""

from __future__ import annotations

import enum
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


class ParamType(enum.StrEnum):
    """The value types a command parameter may declare (docs/commands.md)."""

    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"
    ENUM = "enum"  # a string out of ``choices``


class ParamSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One parameter of a declared command method."""

    name: str
    type: ParamType = ParamType.NUMBER
    required: bool = False
    default: Value | None = None
    min: float | None = None  # number and integer only
    max: float | None = None
    choices: tuple[str, ...] = ()  # enum only
    unit: str | None = None
    description: str | None = None


class MethodSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A command method a device type declares: what it is called and what it takes."""

    name: str
    description: str | None = None
    two_way: bool = True  # False: the device does not answer; done once delivered
    timeout_s: int | None = None  # how long to wait for the answer; None: the sender's default
    params: tuple[ParamSpec, ...] = ()

    def param(self, name: str) -> ParamSpec | None:
        """The declaration of parameter ``name``, if this method declares it."""
        for spec in self.params:
            if spec.name == name:
                return spec
        return None


class DeviceType(msgspec.Struct, frozen=True):
    id: int
    tenant_id: int
    name: str
    keys: tuple[KeySpec, ...]
    strict: bool
    report_interval_s: int
    retention_days: int | None
    created_ms: int
    #: Declared command methods; none: any method is sent as given (free-form).
    methods: tuple[MethodSpec, ...] = ()

    def key_spec(self, key: str) -> KeySpec | None:
        """The declaration of ``key``, if this type declares it."""
        for spec in self.keys:
            if spec.key == key:
                return spec
        return None

    def method(self, name: str) -> MethodSpec | None:
        """The declaration of command method ``name``, if this type declares it."""
        for spec in self.methods:
            if spec.name == name:
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


class PresenceChange(msgspec.Struct, frozen=True):
    """A device went online or offline, as the store decided it once for all processes."""

    device_pk: int
    tenant_id: int
    device_id: str
    online: bool
    previous: str | None  # "online", "offline", or None before the first announcement
    reason: str  # online: "connected" (birth), "reporting"; offline: "silent", "disconnected"


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


# -- outbox (webhooks, notifications) and audit log ---------------------------------------


class Delivery(msgspec.Struct, frozen=True):
    """One webhook call or notification in the outbox, and what became of it.

    ``status`` is ``pending`` (due at ``next_ms``), ``held`` (quiet hours, due at
    ``next_ms``), ``sending`` (claimed by a process), ``delivered`` or ``dead``
    (gave up; listed as a dead letter until retried or deleted).
    """

    id: str
    tenant_id: int
    kind: str  # "webhook" or "notify"
    source: str  # who asked: "rule:<id>", "user:<email>", "key:<id>", "system"
    target: str  # the URL: http(s) for a webhook, an Apprise URL for a notification
    body: str  # JSON text: the exact webhook body, or the notification's title/body/severity
    secret: str | None
    headers: dict[str, str]
    status: str
    attempts: int
    next_ms: int
    created_ms: int
    last_attempt_ms: int | None
    finished_ms: int | None
    last_error: str | None
    last_code: int | None


class Recipient(msgspec.Struct, frozen=True):
    """A named set of Apprise URLs of one tenant (a person, a team, a channel)."""

    tenant_id: int
    name: str
    urls: list[str]
    created_ms: int


class AuditEntry(msgspec.Struct, frozen=True):
    """Who or what did something, when, to what, and with which result."""

    id: int
    tenant_id: int
    ts: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    result: str


# -- rules and alarms ---------------------------------------------------------------


class StoredRule(msgspec.Struct, frozen=True):
    """A rule as stored: its definition (JSON text of the rule model) and bookkeeping."""

    id: int
    tenant_id: int
    name: str
    definition: str
    enabled: bool
    source: str  # "api" or "file"
    created_ms: int
    updated_ms: int


class RulePause(msgspec.Struct, frozen=True):
    """Manual mode: a rule (or every rule, ``rule_id`` 0) does not act on one device."""

    tenant_id: int
    rule_id: int
    device_pk: int
    paused_by: str
    paused_ms: int


class Alarm(msgspec.Struct, frozen=True):
    """An alarm raised by a rule for a device: active -> acknowledged -> cleared."""

    id: int
    tenant_id: int
    rule_id: int
    rule_name: str
    device_pk: int
    device_id: str
    type: str
    severity: str
    status: str
    message: str
    details: dict[str, Any]
    raised_ms: int
    updated_ms: int
    count: int
    acked_ms: int | None
    acked_by: str | None
    cleared_ms: int | None
    cleared_by: str | None


class AlarmEvent(msgspec.Struct, frozen=True):
    """One line of an alarm's history: raised, acknowledged, cleared, commented."""

    id: int
    alarm_id: int
    ts: int
    kind: str
    actor: str
    comment: str | None
