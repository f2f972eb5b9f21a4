"""Rules as data: what a rule file or an API body holds, validated with the field named.

A rule watches the devices of its ``scope``; its ``condition`` turns each
device's data into a yes/no state, and its ``actions`` run when that state turns
on (``clear_actions`` when it turns off). docs/rules.md describes every field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from m2mhub.actions.notify import is_url, mask_url
from m2mhub.actions.quiet_hours import QuietHours
from m2mhub.actions.webhook import check_headers, check_url
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import parse_duration
from m2mhub.rules.expr import ExpressionError, parse
from m2mhub.rules.template import check_template

RULE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SEVERITIES: Final = ("critical", "major", "minor", "warning", "info")
DEFAULT_TENANT: Final = "default"
#: What a secret looks like when a rule is shown (API, CLI).
HIDDEN: Final = "********"


class RuleError(PayloadError):
    """A rule (or a rule file) that cannot be accepted; ``field`` is the path of the culprit."""

    code = "invalid_rule"


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except PayloadError:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit (ms, s, m, h, d, w), e.g. 5m"
        ) from None
    return text


def _expression(text: str) -> str:
    try:
        parse(text)
    except ExpressionError as exc:
        raise ValueError(exc.message) from None
    return text


def _webhook_url(url: str) -> str:
    try:
        return check_url(url)
    except PayloadError as exc:
        raise ValueError(exc.message.removeprefix("url: ")) from None


def _webhook_headers(headers: dict[str, str]) -> dict[str, str]:
    try:
        return check_headers(headers)
    except PayloadError as exc:
        raise ValueError(exc.message.removeprefix("headers: ")) from None


Duration = Annotated[str, AfterValidator(_duration)]
ExpressionText = Annotated[str, AfterValidator(_expression)]
Template = Annotated[str, AfterValidator(check_template)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _only_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        listed = ", ".join(names)
        raise ValueError(f"{what} needs exactly one of {listed}; got {', '.join(given) or 'none'}")


class Scope(_Data):
    """Which devices a rule watches: one device, a device type, a group or an asset."""

    device: str | None = None
    type: str | None = None
    group: str | None = None
    asset: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Scope:
        _only_one(self, ("device", "type", "group", "asset"), "scope")
        return self


class Threshold(_Data):
    """``above`` (raise when over) or ``below``; the clear level adds hysteresis."""

    key: str
    above: float | None = None
    below: float | None = None
    clear_below: float | None = Field(None, description="With above: clear only under this.")
    clear_above: float | None = Field(None, description="With below: clear only over this.")

    @model_validator(mode="after")
    def _levels(self) -> Threshold:
        _only_one(self, ("above", "below"), "threshold")
        if self.above is not None:
            if self.clear_above is not None:
                raise ValueError("clear_above goes with below; with above use clear_below")
            if self.clear_below is not None and self.clear_below > self.above:
                raise ValueError(f"clear_below ({self.clear_below}) must be <= above")
        if self.below is not None:
            if self.clear_below is not None:
                raise ValueError("clear_below goes with above; with below use clear_above")
            if self.clear_above is not None and self.clear_above < self.below:
                raise ValueError(f"clear_above ({self.clear_above}) must be >= below")
        return self


class Rate(_Data):
    """Change of ``key`` per ``per``: true when it rises more than ``above`` (or falls past
    ``below``, a negative number) between two readings."""

    key: str
    above: float | None = None
    below: float | None = None
    per: Duration = "1m"

    @model_validator(mode="after")
    def _one(self) -> Rate:
        if self.above is None and self.below is None:
            raise ValueError("rate needs above (rises more than) or below (falls more than)")
        return self


class NoData(_Data):
    """True when the device (or one ``key``) sent nothing for ``for``."""

    for_: Duration = Field(alias="for")
    key: str | None = None


class Circle(_Data):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0)


class Geofence(_Data):
    """A circle or a polygon of [lat, lon] points; ``inside`` is true inside (enter raises,
    exit clears), ``outside`` the other way round; add ``for`` for dwell time."""

    circle: Circle | None = None
    polygon: list[tuple[float, float]] | None = None
    trigger: Literal["inside", "outside"] = "inside"
    lat_key: str = "lat"
    lon_key: str = "lon"

    @model_validator(mode="after")
    def _shape(self) -> Geofence:
        _only_one(self, ("circle", "polygon"), "geofence")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError("a polygon needs at least 3 [lat, lon] points")
        return self


class Count(_Data):
    """True when the condition became true at least ``times`` times within ``within``."""

    times: int = Field(ge=1)
    within: Duration


class Condition(_Data):
    """One kind of test, optionally held ``for`` a time or counted ``count`` times."""

    threshold: Threshold | None = None
    rate: Rate | None = None
    no_data: NoData | None = None
    connection: Literal["online", "offline"] | None = None
    geofence: Geofence | None = None
    expression: ExpressionText | None = None
    for_: Duration | None = Field(None, alias="for")
    count: Count | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        _only_one(
            self,
            ("threshold", "rate", "no_data", "connection", "geofence", "expression"),
            "condition",
        )
        if self.for_ is not None and self.count is not None:
            raise ValueError("use either for or count, not both")
        if self.no_data is not None and (self.for_ is not None or self.count is not None):
            raise ValueError("no_data has its own for; drop the condition's for/count")
        return self


class AlarmAction(_Data):
    """Raise an alarm when the condition turns on; clear it when it turns off."""

    severity: Literal["critical", "major", "minor", "warning", "info"] = "major"
    type: str | None = Field(None, description="The alarm's type; the rule's name by default.")
    message: str | None = None
    clear: bool = Field(True, description="Clear the alarm when the condition turns off.")


class _Target(_Data):
    device: str | None = Field(
        None, description="Device id; without device and group: the device that triggered."
    )
    group: str | None = None

    @model_validator(mode="after")
    def _target(self) -> _Target:
        if self.device is not None and self.group is not None:
            raise ValueError("name a device or a group, not both")
        return self


class CommandAction(_Target):
    """Send a command (through the same path as an operator's)."""

    method: str
    params: dict[str, Any] = {}
    oneway: bool = False
    ttl: Duration = "1h"


class DesiredAction(_Target):
    """Merge ``set`` into the desired state of the target's twin."""

    set: dict[str, Any]


class WebhookAction(_Data):
    """POST the transition as JSON to ``url`` (through the outbox), signed with ``secret``."""

    url: Annotated[str, AfterValidator(_webhook_url)]
    secret: str | None = Field(None, min_length=1, description="HMAC-SHA256 key for the signature.")
    headers: Annotated[dict[str, str], AfterValidator(_webhook_headers)] = {}


class RuleQuietHours(_Data):
    """A rule's own quiet hours (instead of the tenant's); see docs/automation.md."""

    start: str
    end: str
    timezone: str = "UTC"
    min_severity: Literal["critical", "major", "minor", "warning", "info"] = "critical"

    @model_validator(mode="after")
    def _valid(self) -> RuleQuietHours:
        try:
            self.to_quiet_hours()
        except PayloadError as exc:
            raise ValueError(exc.message) from None
        return self

    def to_quiet_hours(self) -> QuietHours:
        return QuietHours(self.start, self.end, self.timezone, self.min_severity)


class NotifyAction(_Data):
    """Send a notification (Apprise URLs or named recipients) with templated title and body."""

    recipients: list[str] = Field(min_length=1, max_length=50)
    title: Template = Field("{rule} {event} on {device}", max_length=250)
    body: Template = Field("{values} at {time}", min_length=1, max_length=32_768)
    severity: Literal["critical", "major", "minor", "warning", "info"] | None = Field(
        None, description="The rule's alarm severity by default, else info."
    )
    quiet_hours: RuleQuietHours | None = Field(
        None, description="This rule's quiet hours instead of the tenant's."
    )


ACTION_KINDS: Final = ("alarm", "command", "desired", "webhook", "notify")


class Action(_Data):
    """One of: alarm, command, desired, webhook, notify."""

    alarm: AlarmAction | None = None
    command: CommandAction | None = None
    desired: DesiredAction | None = None
    webhook: WebhookAction | None = None
    notify: NotifyAction | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        _only_one(self, ACTION_KINDS, "action")
        return self

    @property
    def kind(self) -> str:
        """Which of :data:`ACTION_KINDS` this action is."""
        return next(k for k in ACTION_KINDS if getattr(self, k) is not None)


class Rule(_Data):
    """A rule: scope, condition, actions. ``compute`` rules write derived keys instead."""

    name: str = Field(pattern=RULE_NAME.pattern)
    description: str = ""
    enabled: bool = True
    scope: Scope
    devices: dict[str, str] = Field(
        default_factory=dict, description="Aliases for other devices in expressions: tank: t-1"
    )
    condition: Condition | None = None
    actions: list[Action] = []
    clear_actions: list[Action] = []
    compute: dict[str, ExpressionText] = Field(
        default_factory=dict, description="Derived keys written as telemetry: power: v * i"
    )
    max_delay: Duration = Field(
        "15m", description="Readings older than this when they arrive do not drive the rule."
    )

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if self.condition is None and not self.compute:
            raise ValueError("a rule needs a condition (and actions) or compute")
        if self.condition is not None and not (self.actions or self.clear_actions):
            raise ValueError("a rule with a condition needs actions")
        for key in self.compute:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$", key):
                raise ValueError(f"compute: {key!r} is not a telemetry key name")
        if self.condition is not None and self.condition.expression is not None:
            unknown = parse(self.condition.expression).aliases - set(self.devices)
            if unknown:
                raise ValueError(
                    f"expression uses {', '.join(sorted(unknown))}: name each under devices"
                )
        return self

    @property
    def alarm(self) -> AlarmAction | None:
        """The rule's alarm action, if it has one."""
        return next((a.alarm for a in self.actions if a.alarm is not None), None)

    def to_data(self, *, redact: bool = False) -> dict[str, Any]:
        """The rule as plain data (what a rule file holds).

        ``redact`` hides webhook secrets and header values, and the passwords and
        tokens in notification URLs, for showing the rule to people.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {
            "name": self.name,
            "scope": self.scope.model_dump(exclude_none=True),
        }
        if redact:
            for action in data.get("actions", []) + data.get("clear_actions", []):
                _redact(action)
        return data


def _redact(action: dict[str, Any]) -> None:
    if "webhook" in action:
        webhook = action["webhook"]
        if "secret" in webhook:
            webhook["secret"] = HIDDEN
        webhook["headers"] = {k: HIDDEN for k in webhook.get("headers", {})}
        if not webhook["headers"]:
            del webhook["headers"]
    if "notify" in action:
        notify = action["notify"]
        notify["recipients"] = [mask_url(r) if is_url(r) else r for r in notify["recipients"]]


class RuleFile(_Data):
    tenant: str = DEFAULT_TENANT
    rules: list[Rule]


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in ("tagged-union",):
            continue
        else:
            path += f".{part}" if path else part
    return path.replace("for_", "for")


def _translate(exc: ValidationError) -> RuleError:
    first = exc.errors()[0]
    field = _path(tuple(first["loc"]))
    message = str(first["msg"]).removeprefix("Value error, ")
    return RuleError(f"{field}: {message}" if field else message, field=field or None)


def parse_rule(data: Any) -> Rule:
    """A rule from plain data (an API body); :class:`RuleError` names the field."""
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc) from None


_PATH_PART: Final = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(text: str, field: str | None) -> int | None:
    """The line (1-based) of ``field`` (a path like ``rules[1].condition.for``) in the YAML
    ``text``: the deepest part of the path the file holds, so a missing key points at its
    parent. None when the text is not YAML."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    parts = [int(i) if i else name for name, i in _PATH_PART.findall(field or "")]
    if isinstance(node, yaml.SequenceNode) and parts[:1] == ["rules"]:
        parts = parts[1:]  # a bare list of rules stands for {rules: [...]}
    line = node.start_mark.line
    for part in parts:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        elif isinstance(node, yaml.MappingNode) and isinstance(part, str):
            names = (part, "for") if part == "for_" else (part,)
            entry = next((kv for kv in node.value if kv[0].value in names), None)
            if entry is None:
                break
            line = entry[0].start_mark.line
            node = entry[1]
        else:
            break
    return line + 1


def _at(source: str, text: str, field: str | None) -> str:
    """``source:line`` for an error message, like a compiler names a file and line."""
    line = line_of(text, field)
    return f"{source}:{line}" if line is not None else source


def parse_rule_file(text: str, *, source: str = "rules file") -> RuleFile:
    """Rules from YAML (or JSON): ``{tenant: ..., rules: [...]}`` or a bare list of rules.

    A :class:`RuleError` names the file, the line and the field: ``rules.yaml:12:
    rules[1].condition.for: ...``.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not valid YAML: {exc}") from None
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise RuleError(f"{source}: expected a mapping with a 'rules' list")
    try:
        parsed = RuleFile.model_validate(data)
    except ValidationError as exc:
        error = _translate(exc)
        where = _at(source, text, error.field)
        raise RuleError(f"{where}: {error.message}", field=error.field) from None
    names = [r.name for r in parsed.rules]
    for index, name in enumerate(names):
        if name in names[:index]:
            field = f"rules[{index}].name"
            raise RuleError(
                f"{_at(source, text, field)}: {field}: {name!r} is used twice",
                field=f"rules[{index}]",
            )
    return parsed


def duration_ms(text: str) -> int:
    """A validated duration -> milliseconds."""
    return parse_duration(text)


__all__ = [
    "ACTION_KINDS",
    "SEVERITIES",
    "Action",
    "AlarmAction",
    "CommandAction",
    "Condition",
    "DesiredAction",
    "Geofence",
    "NotifyAction",
    "Rule",
    "RuleError",
    "RuleFile",
    "Scope",
    "WebhookAction",
    "duration_ms",
    "line_of",
    "parse_rule",
    "parse_rule_file",
]
