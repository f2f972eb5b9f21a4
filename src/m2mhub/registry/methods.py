"""Command methods a device type declares, and commands checked against them.

A type may declare the methods its devices handle (``set_pump(on: boolean)``),
each with typed parameters. The declaration is checked when the type is created
or changed (:func:`parse_methods`, :func:`check_methods`); a command to a device
of such a type is checked against it and its defaults filled in
(:func:`check_command`). A type that declares no method takes any command as
given, as before methods could be declared. docs/commands.md describes the format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn, TypeVar

import msgspec

from m2mhub.core.errors import PayloadError
from m2mhub.core.values import Value
from m2mhub.registry.naming import TELEMETRY_KEY
from m2mhub.store.models import DeviceType, MethodSpec, ParamSpec, ParamType

T = TypeVar("T", MethodSpec, ParamSpec)

#: Most methods one type may declare, and parameters one method may take: a form per
#: method on the device page, not a protocol description.
MAX_METHODS: Final = 64
MAX_PARAMS: Final = 32
MAX_CHOICES: Final = 64

_NUMERIC: Final = (ParamType.NUMBER, ParamType.INTEGER)
_AT: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD: Final = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


# -- declarations ------------------------------------------------------------------------


def parse_methods(raw: object, *, field: str = "methods") -> tuple[MethodSpec, ...]:
    """Methods as written in JSON or YAML, checked; errors name the field.

    ``raw`` is a list of methods (``[{"name": "set_pump", "params": [...]}]``) or a
    mapping of name to method (``{"set_pump": {"params": {"on": {...}}}}``); so are
    the ``params`` of each. Field paths follow the form: ``methods[1].params[0].type``
    or ``methods.set_pump.params.on.type``.
    """
    methods: list[MethodSpec] = []
    fields: list[str] = []
    for method_field, item in _items(raw, field, "method"):
        body = dict(item)
        params_raw = body.pop("params", None)
        method = _convert(body, MethodSpec, method_field)
        params: list[ParamSpec] = []
        param_fields: list[str] = []
        for param_field, param in _items(params_raw, f"{method_field}.params", "parameter"):
            params.append(_convert(param, ParamSpec, param_field))
            param_fields.append(param_field)
        method = msgspec.structs.replace(method, params=tuple(params))
        _check_method(method, method_field, param_fields)
        methods.append(method)
        fields.append(method_field)
    _check_unique([m.name for m in methods], fields)
    if len(methods) > MAX_METHODS:
        _fail(field, f"at most {MAX_METHODS} methods per type")
    return tuple(methods)


def check_methods(methods: Sequence[MethodSpec], *, field: str = "methods") -> None:
    """Check methods made in code (the API and files go through :func:`parse_methods`)."""
    if len(methods) > MAX_METHODS:
        _fail(field, f"at most {MAX_METHODS} methods per type")
    fields = [f"{field}[{i}]" for i in range(len(methods))]
    for method, method_field in zip(methods, fields, strict=True):
        params = [f"{method_field}.params[{j}]" for j in range(len(method.params))]
        _check_method(method, method_field, params)
    _check_unique([m.name for m in methods], fields)


def methods_to_builtins(methods: Sequence[MethodSpec]) -> list[dict[str, Any]]:
    """Methods as JSON-ready lists and dicts, fields at their defaults left out."""
    return [msgspec.to_builtins(m) for m in methods]


def _items(raw: object, field: str, what: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(field path, declaration with its name) of each item of a list or a mapping."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        found: list[tuple[str, Mapping[str, Any]]] = []
        for name, value in raw.items():
            path = f"{field}.{name}"
            if not isinstance(name, str):
                # YAML 1.1 reads a bare on, off, yes or no as a boolean.
                _fail(path, f'the name {name!r} is not text; quote it, e.g. "on"')
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                _fail(path, f"give the {what}'s fields as a mapping")
            if "name" in value and value["name"] != name:
                _fail(f"{path}.name", f"{value['name']!r} differs from the key {name!r}")
            found.append((path, {**value, "name": name}))
        return found
    if isinstance(raw, list | tuple):
        for i, value in enumerate(raw):
            if not isinstance(value, Mapping):
                _fail(f"{field}[{i}]", f"give each {what} as an object with a name")
        return [(f"{field}[{i}]", value) for i, value in enumerate(raw)]
    _fail(field, f"give a list of {what}s, or a mapping of {what} name to its fields")


def _convert(raw: Mapping[str, Any], type_: type[T], field: str) -> T:
    """msgspec's conversion, its error rewritten with the field's path."""
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None  # the pattern matches any text
        message, path = match["message"], match["path"] or ""
        unknown = _UNKNOWN_FIELD.match(message)
        if unknown and not path:
            path = f".{unknown['name']}"
            message = f"unknown field; use {', '.join(type_.__struct_fields__)}"
        elif message.startswith("Invalid enum value"):
            message = f"{message}; use one of {', '.join(t.value for t in ParamType)}"
        elif message.startswith("Object missing required field"):
            message = "give a name"
            path = ".name"
        _fail(f"{field}{path}", message[:1].lower() + message[1:])


def _check_method(method: MethodSpec, field: str, param_fields: Sequence[str]) -> None:
    _check_name(method.name, f"{field}.name", "method")
    if method.timeout_s is not None and method.timeout_s < 1:
        _fail(f"{field}.timeout_s", "give at least 1 (seconds), or leave it out")
    if len(method.params) > MAX_PARAMS:
        _fail(f"{field}.params", f"at most {MAX_PARAMS} parameters per method")
    for param, param_field in zip(method.params, param_fields, strict=True):
        _check_param(param, param_field)
    _check_unique([p.name for p in method.params], param_fields)


def _check_param(param: ParamSpec, field: str) -> None:
    _check_name(param.name, f"{field}.name", "parameter")
    kind = param.type
    for bound in ("min", "max"):
        value = getattr(param, bound)
        if value is None:
            continue
        if kind not in _NUMERIC:
            _fail(f"{field}.{bound}", f"only number and integer parameters have a {bound}")
        if not math.isfinite(value) or (kind is ParamType.INTEGER and not value.is_integer()):
            _fail(f"{field}.{bound}", f"give a finite {_NOUN[kind]}")
    if param.min is not None and param.max is not None and param.min > param.max:
        _fail(f"{field}.max", f"{param.max:g} is below min {param.min:g}")
    if kind is ParamType.ENUM:
        if not param.choices:
            _fail(f"{field}.choices", "an enum parameter needs its choices, e.g. [auto, manual]")
        if len(param.choices) > MAX_CHOICES:
            _fail(f"{field}.choices", f"at most {MAX_CHOICES} choices")
        for i, choice in enumerate(param.choices):
            if not choice.strip():
                _fail(f"{field}.choices[{i}]", "a choice may not be empty")
            if choice in param.choices[:i]:
                _fail(f"{field}.choices[{i}]", f"{choice!r} is listed twice")
    elif param.choices:
        _fail(f"{field}.choices", "only enum parameters have choices; set type: enum")
    if param.default is not None:
        if param.required:
            _fail(f"{field}.default", "a required parameter has no default; drop one of them")
        if _typed(param, param.default) is None:
            _fail(f"{field}.default", f"give {_expected(param)}, or leave it out")


def _check_name(name: str, field: str, what: str) -> None:
    if not TELEMETRY_KEY.match(name):
        _fail(
            field,
            f"{name!r} is not a valid {what} name; use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or '_'",
        )


def _check_unique(names: Sequence[str], fields: Sequence[str]) -> None:
    seen: set[str] = set()
    for name, field in zip(names, fields, strict=True):
        if name in seen:
            _fail(f"{field}.name", f"{name!r} is declared twice")
        seen.add(name)


# -- commands ------------------------------------------------------------------------------


def check_command(
    device_type: DeviceType, method: str, params: Mapping[str, Any]
) -> tuple[MethodSpec | None, dict[str, Any]]:
    """The declaration of ``method`` and ``params`` checked against it, defaults filled in.

    A type that declares no method takes any method and parameters as given
    (``None`` and ``params`` unchanged). Otherwise an undeclared method, an
    unknown or missing parameter or a value of the wrong type or range is a
    :class:`PayloadError` naming ``method`` or ``params.<name>``.
    """
    if not device_type.methods:
        return None, dict(params)
    spec = device_type.method(method)
    if spec is None:
        names = ", ".join(m.name for m in device_type.methods)
        _fail(
            "method",
            f"device type {device_type.name!r} declares no method {method!r}; use one of {names}",
        )
    checked: dict[str, Any] = {}
    for name in params:
        if spec.param(name) is None:
            takes = ", ".join(p.name for p in spec.params) or "no parameters"
            _fail(
                f"params.{name}", f"method {method!r} has no parameter {name!r}; it takes {takes}"
            )
    for param in spec.params:
        value = params.get(param.name)
        if value is None:
            if param.required:
                _fail(f"params.{param.name}", f"required: give {_expected(param)}")
            if param.default is not None:
                checked[param.name] = _typed(param, param.default)  # 5.0 for an integer: 5
            continue
        typed = _typed(param, value)
        if typed is None:
            _fail(f"params.{param.name}", f"expected {_expected(param)}, got {_shown(value)}")
        checked[param.name] = typed
    return spec, checked


def _typed(param: ParamSpec, value: object) -> Value | None:
    """``value`` as the parameter's type (an integral float becomes an int), or None."""
    kind = param.type
    ok: Value | None = None
    if kind is ParamType.BOOLEAN:
        ok = value if isinstance(value, bool) else None
    elif kind in (ParamType.STRING, ParamType.ENUM):
        if isinstance(value, str) and (kind is ParamType.STRING or value in param.choices):
            ok = value
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        number: float | int | None = value
        if kind is ParamType.INTEGER:
            number = int(value) if isinstance(value, int) or value.is_integer() else None
        if number is not None and (param.min is None or number >= param.min):
            ok = number if param.max is None or number <= param.max else None
    return ok


_NOUN: Final = {
    ParamType.NUMBER: "number",
    ParamType.INTEGER: "integer",
    ParamType.BOOLEAN: "boolean",
    ParamType.STRING: "string",
    ParamType.ENUM: "choice",
}


def _expected(param: ParamSpec) -> str:
    """What a parameter takes, in words: ``a number from 0 to 100 (m³/h)``."""
    kind = param.type
    if kind is ParamType.BOOLEAN:
        text = "true or false"
    elif kind is ParamType.ENUM:
        text = "one of " + ", ".join(repr(c) for c in param.choices)
    elif kind is ParamType.STRING:
        text = "a string"
    else:
        text = "an integer" if kind is ParamType.INTEGER else "a number"
        low, high = param.min, param.max
        if low is not None and high is not None:
            text += f" from {low:g} to {high:g}"
        elif low is not None:
            text += f" of at least {low:g}"
        elif high is not None:
            text += f" of at most {high:g}"
    return f"{text} ({param.unit})" if param.unit else text


def _shown(value: object) -> str:
    text = msgspec.json.encode(value).decode() if _is_json(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_json(value: object) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return False
    return True


def _fail(field: str, message: str) -> NoReturn:
    raise PayloadError(f"{field}: {message}", field=field)
