"""The fleet description: device types, devices and their models, groups and assets, in YAML.

::

    fleet = load_fleet()  # the fleet shipped with m2mhub (fleet.yaml next to this module)
    models = build_models(fleet, seed=42)
    models["meter-001"].step(ts_ms)

``python -m m2mhub.sim`` prints the shipped fleet, to copy and edit.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import msgspec.inspect
import yaml

from m2mhub.core.errors import M2MHubError, PayloadError
from m2mhub.core.values import Value, ValueType
from m2mhub.registry.methods import parse_methods
from m2mhub.registry.naming import check_device_id, check_key
from m2mhub.sim.base import AnyModel, device_rng
from m2mhub.sim.keys import KEY_SPECS
from m2mhub.sim.machines import Machine, MachineParams
from m2mhub.sim.meters import ElectricityMeter, MeterParams
from m2mhub.sim.stock import StockBin, StockParams
from m2mhub.sim.tank import Pump, PumpParams, Tank, TankParams
from m2mhub.sim.trackers import AssetTracker, TrackerParams
from m2mhub.sim.vehicles import Vehicle, VehicleParams
from m2mhub.sim.wearables import Wearable, WearableParams
from m2mhub.store.models import KeySpec, MethodSpec

T = TypeVar("T")


class FleetError(M2MHubError):
    """A fleet description that cannot be used; the message names the field and the fix."""

    code = "invalid_fleet"


class ModelKind(NamedTuple):
    """A model class and the parameters it takes."""

    model: type[AnyModel]
    params: type[msgspec.Struct]


#: The models a device may name in ``model:``.
MODELS: Final[dict[str, ModelKind]] = {
    "electricity_meter": ModelKind(ElectricityMeter, MeterParams),
    "vehicle": ModelKind(Vehicle, VehicleParams),
    "asset_tracker": ModelKind(AssetTracker, TrackerParams),
    "machine": ModelKind(Machine, MachineParams),
    "wearable": ModelKind(Wearable, WearableParams),
    "stock_bin": ModelKind(StockBin, StockParams),
    "tank": ModelKind(Tank, TankParams),
    "pump": ModelKind(Pump, PumpParams),
}

_Interval = Annotated[int, msgspec.Meta(ge=1)]


class FleetType(msgspec.Struct, frozen=True):
    """A device type: the keys its devices report, how often, and the commands they handle."""

    name: str
    keys: tuple[KeySpec, ...]
    report_interval_s: int = 60
    strict: bool = False
    description: str | None = None
    methods: tuple[MethodSpec, ...] = ()


#: How a simulated device talks to m2mhub.
Transport = Literal["mqtt", "http", "teltonika"]


class FleetDevice(msgspec.Struct, frozen=True):
    """A device: its type, the model simulating it and the model's parameters."""

    id: str
    name: str
    type: str
    model: str
    params: Any  # the model's parameters Struct, e.g. MeterParams
    report_interval_s: int
    labels: dict[str, str] = {}
    # how it reports: MQTT through the SDK, the HTTP API, or as a Teltonika tracker (the id
    # is then its IMEI)
    transport: Transport = "mqtt"


class FleetAsset(msgspec.Struct, frozen=True):
    """An asset (a building, a truck, an excavator) and the devices on it."""

    name: str
    kind: str
    properties: dict[str, Value] = {}
    devices: tuple[str, ...] = ()


class Fleet(msgspec.Struct, frozen=True):
    """A validated fleet description."""

    name: str
    timezone: str
    types: dict[str, FleetType]
    devices: tuple[FleetDevice, ...]
    groups: dict[str, tuple[str, ...]] = {}
    assets: tuple[FleetAsset, ...] = ()
    description: str | None = None

    def device(self, device_id: str) -> FleetDevice:
        """The device with this id (KeyError when there is none)."""
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(device_id)


# The file as written: checked piece by piece so errors carry the path of the field.


class _KeyDecl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: ValueType = ValueType.NUMBER
    unit: str | None = None
    description: str | None = None


class _TypeDecl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: dict[str, Any]
    report_interval_s: _Interval = 60
    strict: bool = False
    description: str | None = None
    methods: Any = None  # checked by m2mhub.registry.methods.parse_methods


class _DeviceDecl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    type: str
    model: str
    name: str | None = None
    params: dict[str, Any] = {}
    labels: dict[str, str] = {}
    report_interval_s: _Interval | None = None
    transport: Transport = "mqtt"


class _FleetDecl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    types: dict[str, Any]
    devices: list[Any]
    version: Literal[1] = 1
    name: str = "fleet"
    description: str | None = None
    timezone: str = "UTC"
    groups: dict[str, list[str]] = {}
    assets: list[FleetAsset] = []


def default_fleet_text() -> str:
    """The YAML of the fleet shipped with m2mhub."""
    return resources.files("m2mhub.sim").joinpath("fleet.yaml").read_text(encoding="utf-8")


def load_fleet(path: str | Path | None = None) -> Fleet:
    """Read and check a fleet file; None reads the fleet shipped with m2mhub."""
    if path is None:
        return parse_fleet(default_fleet_text(), source="fleet.yaml")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError(f"{path}: cannot read the fleet file: {exc.strerror}") from None
    return parse_fleet(text, source=str(path))


def parse_fleet(text: str, *, source: str = "fleet") -> Fleet:
    """Check a fleet description given as YAML text; errors name ``source`` and the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FleetError(f"{source}: {where}not valid YAML: {problem}") from None
    try:
        return _check(raw)
    except FleetError as exc:
        raise FleetError(f"{source}: {exc.message}", field=exc.field) from None


def build_models(
    fleet: Fleet, seed: int | str, *, origin_ms: int | None = None
) -> dict[str, AnyModel]:
    """One model per device, each with its own generator drawn from ``seed`` and its id.

    ``origin_ms`` is the instant incidents count from (``spike_at_h`` and the
    like); by default each model's first step. Tanks are attached to the pump
    their ``pump`` parameter names.
    """
    models: dict[str, AnyModel] = {}
    for device in fleet.devices:
        kind = MODELS[device.model]
        models[device.id] = kind.model(
            device.params,
            rng=device_rng(seed, device.id),
            origin_ms=origin_ms,
            tz=fleet.timezone,
        )
    for model in models.values():
        if isinstance(model, Tank) and model.params.pump is not None:
            pump = models[model.params.pump]
            assert isinstance(pump, Pump)  # checked when the fleet was loaded
            model.attach(pump)
    return models


def _check(raw: object) -> Fleet:
    if not isinstance(raw, dict):
        raise FleetError("the fleet must be a mapping with 'types' and 'devices'")
    decl = _convert(raw, _FleetDecl, "")
    try:
        ZoneInfo(decl.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FleetError(
            f"timezone: unknown time zone {decl.timezone!r}; use an IANA name such as "
            "'UTC' or 'Europe/Paris'",
            field="timezone",
        ) from None
    types = {name: _check_type(name, value) for name, value in decl.types.items()}
    devices: list[FleetDevice] = []
    seen: set[str] = set()
    for i, value in enumerate(decl.devices):
        device = _check_device(f"devices[{i}]", value, types)
        if device.id in seen:
            _fail(f"devices[{i}].id", f"device {device.id!r} is listed twice; ids must be unique")
        seen.add(device.id)
        devices.append(device)
    by_id = {device.id: device for device in devices}
    for i, device in enumerate(devices):
        if isinstance(device.params, TankParams) and device.params.pump is not None:
            pump = by_id.get(device.params.pump)
            if pump is None or pump.model != "pump":
                _fail(
                    f"devices[{i}].params.pump",
                    f"{device.params.pump!r} is not a device of model 'pump'; "
                    "name one, or leave pump out",
                )
    groups = {
        name: _check_members(f"groups.{name}", members, by_id)
        for name, members in decl.groups.items()
    }
    assets: list[FleetAsset] = []
    for i, asset in enumerate(decl.assets):
        if any(asset.name == other.name for other in assets):
            _fail(f"assets[{i}].name", f"asset {asset.name!r} is listed twice")
        _check_members(f"assets[{i}].devices", list(asset.devices), by_id)
        assets.append(asset)
    return Fleet(
        name=decl.name,
        description=decl.description,
        timezone=decl.timezone,
        types=types,
        devices=tuple(devices),
        groups=groups,
        assets=tuple(assets),
    )


def _check_type(name: str, raw: object) -> FleetType:
    field = f"types.{name}"
    decl = _convert(raw, _TypeDecl, field)
    if not decl.keys:
        _fail(f"{field}.keys", "declare at least one key")
    keys = []
    for key, raw_spec in decl.keys.items():
        _translate(check_key, key, f"{field}.keys.{key}")
        spec = _convert(raw_spec or {}, _KeyDecl, f"{field}.keys.{key}")
        keys.append(KeySpec(key, spec.type, spec.unit, spec.description))
    try:
        methods = parse_methods(decl.methods, field=f"{field}.methods")
    except PayloadError as exc:
        raise FleetError(exc.message, field=exc.field) from None
    return FleetType(
        name, tuple(keys), decl.report_interval_s, decl.strict, decl.description, methods
    )


def _check_device(field: str, raw: object, types: dict[str, FleetType]) -> FleetDevice:
    decl = _convert(raw, _DeviceDecl, field)
    _translate(check_device_id, decl.id, f"{field}.id")
    if decl.transport == "teltonika" and not (decl.id.isdigit() and len(decl.id) == 15):
        _fail(f"{field}.id", f"{decl.id!r}: a Teltonika tracker is known by its IMEI, 15 digits")
    kind = MODELS.get(decl.model)
    if kind is None:
        _fail(f"{field}.model", f"unknown model {decl.model!r}; use one of {', '.join(MODELS)}")
    device_type = types.get(decl.type)
    if device_type is None:
        known = ", ".join(types) or "none declared"
        _fail(f"{field}.type", f"unknown type {decl.type!r}; declare it under types ({known})")
    params = _convert(decl.params, kind.params, f"{field}.params")
    declared = {spec.key: spec.type for spec in device_type.keys}
    for key in kind.model.keys:
        wanted = KEY_SPECS[key].type
        if key not in declared:
            _fail(
                f"{field}.type",
                f"type {decl.type!r} does not declare {key!r}, which model {decl.model!r} "
                f"reports; add it under types.{decl.type}.keys",
            )
        if declared[key] is not wanted:
            _fail(
                f"types.{decl.type}.keys.{key}.type",
                f"model {decl.model!r} reports {key!r} as {wanted.value}, "
                f"not {declared[key].value}",
            )
    return FleetDevice(
        id=decl.id,
        name=decl.name or decl.id,
        type=decl.type,
        model=decl.model,
        params=params,
        report_interval_s=decl.report_interval_s or device_type.report_interval_s,
        labels=decl.labels,
        transport=decl.transport,
    )


def _check_members(
    field: str, members: list[str], devices: dict[str, FleetDevice]
) -> tuple[str, ...]:
    for i, member in enumerate(members):
        if member not in devices:
            _fail(f"{field}[{i}]", f"unknown device {member!r}; list it under devices first")
    return tuple(members)


_AT: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD: Final = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_NAMED: Final = re.compile(r"^(?P<name>[a-z_]+): (?P<message>.*)$", re.DOTALL)


def _convert(raw: object, type_: type[T], field: str) -> T:
    """msgspec's conversion, its errors rewritten with the path from the top of the file."""
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None  # the pattern matches any text
        message, path = match["message"], match["path"] or ""
        fields: tuple[str, ...] = getattr(type_, "__struct_fields__", ())
        unknown = _UNKNOWN_FIELD.match(message)
        named = _NAMED.match(message)
        choices = _choices(type_, path) if message.startswith("Invalid enum value") else None
        if unknown and not path:
            message = f"unknown field {unknown['name']!r}; use one of {', '.join(fields)}"
        elif choices:
            message = f"{message}; use one of {', '.join(choices)}"
        elif named and not path and named["name"] in fields:  # from a __post_init__ check
            path, message = f".{named['name']}", named["message"]
        _fail(f"{field}{path}".lstrip("."), message[:1].lower() + message[1:])


def _choices(type_: Any, path: str) -> list[str] | None:
    """The allowed values of the enum or literal field at ``path`` (``.a.b``) of ``type_``."""
    info: Any = msgspec.inspect.type_info(type_)
    for name in path.split(".")[1:]:
        while isinstance(info, msgspec.inspect.UnionType):
            info = next((t for t in info.types if isinstance(t, msgspec.inspect.StructType)), None)
        fields = {f.name: f.type for f in getattr(info, "fields", ())}
        if name not in fields:
            return None
        info = fields[name]
    options = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    for option in options:
        if isinstance(option, msgspec.inspect.LiteralType):
            return [str(value) for value in option.values]
        if isinstance(option, msgspec.inspect.EnumType):
            return [str(member.value) for member in option.cls]
    return None


def _translate(check: Any, value: str, field: str) -> None:
    try:
        check(value, field=field)
    except PayloadError as exc:
        raise FleetError(exc.message, field=field) from None


def _fail(field: str, message: str) -> NoReturn:
    raise FleetError(f"{field}: {message}" if field else message, field=field or None)
