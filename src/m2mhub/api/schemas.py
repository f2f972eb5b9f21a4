"""Request and response bodies of the REST API (pydantic, for validation and OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from m2mhub.core.values import Role, ValueType
from m2mhub.store.models import ParamType

Scalar = float | int | bool | str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeySpecIn(Strict):
    key: str = Field(examples=["energy_kwh"])
    type: ValueType = ValueType.NUMBER
    unit: str | None = Field(None, examples=["kWh"])
    description: str | None = None


class ParamIn(Strict):
    """A parameter of a command method (docs/commands.md#declaring-methods)."""

    name: str = Field(examples=["rate_m3_h"])
    # A plain string, checked by the registry, so that a wrong one is reported with its
    # path (methods[1].params[0].type) like every other declaration error.
    type: str = Field(
        "number",
        description="number, integer, boolean, string or enum.",
        json_schema_extra={"enum": [t.value for t in ParamType]},
    )
    required: bool = False
    default: Scalar | None = Field(None, description="Sent when the parameter is left out.")
    min: float | None = Field(None, description="Lowest value (number and integer).")
    max: float | None = Field(None, description="Highest value (number and integer).")
    choices: list[str] | None = Field(None, description="The allowed values (enum).")
    unit: str | None = Field(None, examples=["m³/h"])
    description: str | None = None


class MethodIn(Strict):
    """A command method the devices of a type handle."""

    name: str = Field(examples=["set_pump"])
    description: str | None = None
    two_way: bool = Field(True, description="The device answers; false: done once delivered.")
    timeout_s: int | None = Field(
        None, description="Seconds to wait for the answer; empty: the sender's (default 30)."
    )
    params: list[ParamIn] = []


class DeviceTypeIn(Strict):
    name: str = Field(examples=["meter"])
    keys: list[KeySpecIn] = []
    strict: bool = Field(False, description="Refuse keys that are not declared.")
    report_interval_s: int = Field(60, description="Expected seconds between reports.")
    retention_days: int | None = Field(None, description="Days of raw data kept; empty = tenant's.")
    methods: list[MethodIn] = Field(
        [], description="Commands its devices handle; empty: any command is sent as given."
    )


class DeviceTypePatch(Strict):
    keys: list[KeySpecIn] | None = None
    strict: bool | None = None
    report_interval_s: int | None = None
    retention_days: int | None = None
    methods: list[MethodIn] | None = Field(
        None, description="Replaces the declared methods; [] makes commands free-form again."
    )


class DeviceTypeOut(BaseModel):
    name: str
    keys: list[KeySpecIn]
    strict: bool
    report_interval_s: int
    retention_days: int | None
    methods: list[MethodIn] = []
    created: int


class DeviceIn(Strict):
    name: str = Field(examples=["m-001"])
    type: str = Field(examples=["meter"])
    id: str | None = Field(None, description="Device id; generated when empty.")
    labels: dict[str, str] = {}


class DeviceOut(BaseModel):
    id: str
    name: str
    type: str
    labels: dict[str, str]
    created: int
    last_seen: int | None
    status: str
    connected: bool | None = Field(
        None, description="MQTT connection state from birth/last will; null if never reported."
    )
    rejected: int = Field(0, description="Messages from this device refused as invalid.")
    last_error: str | None = None
    last_error_at: int | None = None


class DeviceCreated(DeviceOut):
    token: str = Field(description="The device's token. Shown once: store it now.")


class DeviceList(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None


class ImportResult(BaseModel):
    created: int
    devices: list[DeviceCreated]


class TokenOut(BaseModel):
    id: str
    token: str


class ApiKeyIn(Strict):
    name: str
    role: Role = Role.VIEWER


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: Role
    created: int
    revoked: int | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. Shown once: store it now.")


class UserIn(Strict):
    email: str = Field(examples=["ops@example.com"])
    role: Role = Role.VIEWER
    password: str | None = Field(None, description="At least 8 characters; empty = no sign-in.")


class UserOut(BaseModel):
    email: str
    role: Role
    created: int


class GroupIn(Strict):
    name: str


class GroupMembersIn(Strict):
    add: list[str] = []
    remove: list[str] = []


class GroupOut(BaseModel):
    name: str
    created: int


class AssetIn(Strict):
    name: str = Field(examples=["generator-7"])
    kind: str = Field("equipment", examples=["generator"])
    properties: dict[str, Scalar] = {}


class AssetOut(BaseModel):
    name: str
    kind: str
    properties: dict[str, Any]
    created: int


class AssetList(BaseModel):
    items: list[AssetOut]
    next_cursor: str | None


class AssignIn(Strict):
    device: str
    at: int | None = Field(None, description="From when (ms); now when empty.")
    replaces: str | None = Field(
        None, description="A device of this asset whose assignment ends at the same instant."
    )


class AssignmentOut(BaseModel):
    device: str
    from_ms: int
    to_ms: int | None


class RetentionIn(Strict):
    retention_days: int | None


class IngestResult(BaseModel):
    accepted_readings: int
    accepted_values: int


class EventOut(BaseModel):
    ts: int
    kind: str
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class LatestValue(BaseModel):
    ts: int
    value: Scalar


class PointOut(BaseModel):
    ts: int
    device: str
    key: str
    value: Scalar


class HistoryPage(BaseModel):
    items: list[PointOut]
    next_cursor: str | None


class BucketOut(BaseModel):
    ts: int
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    sum: float | None = None
    count: int | None = None
    first: float | None = None
    last: float | None = None


class AggregateOut(BaseModel):
    key: str
    bucket_ms: int
    buckets: list[BucketOut]


class DeviceLatest(BaseModel):
    device: str
    status: str
    last_seen: int | None
    values: dict[str, LatestValue]


class StatusSummary(BaseModel):
    online: int
    offline: int
    never_seen: int
