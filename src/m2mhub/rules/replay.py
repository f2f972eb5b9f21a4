"""``rules test``: replay stored history through rules, in a dry run that never acts.

For each rule and each device of its scope, the raw telemetry of a time range
(and the device's ``presence`` events, for online/offline conditions) goes in
time order through the same pure condition functions the engine uses
(:mod:`m2mhub.rules.conditions`). The result says when each device's state
would have turned on (raised) and off (cleared), with the values and the
actions that would have run. Nothing is written: no state, alarms, commands,
webhooks or notifications; only the store is read.

Where it differs from the live engine (docs/rules.md, "Trying rules on past data"):

- every stored reading counts as if it arrived on time (arrival times are not
  stored, so the late-data policy cannot be replayed);
- time-only changes (``for``, ``count`` windows, ``no_data``) happen at the exact
  instant they are due, where the engine notices them at its next tick;
- scopes, groups and aliases are resolved as they are now;
- expressions see the values of the range only: a key last reported before
  ``start`` has no value until it is reported again;
- ``no_data`` counts silence from the last reading before ``start`` (or from
  ``start``), then across the gaps between readings.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, Literal

import msgspec

from m2mhub.actions.notify import is_url, mask_url
from m2mhub.core.errors import NotFoundError, PayloadError
from m2mhub.core.values import Value
from m2mhub.rules.conditions import CompiledCondition, RuleState, Step
from m2mhub.rules.expr import SELF
from m2mhub.rules.firing import Firing
from m2mhub.rules.model import Action, Rule
from m2mhub.rules.service import alias_devices, scope_devices
from m2mhub.store.base import Segment, Store
from m2mhub.store.models import Device

#: Raw points one replay may read; past this, narrow the range or name a device.
MAX_POINTS: Final = 2_000_000
_PAGE: Final = 10_000


class WouldFire(msgspec.Struct, frozen=True):
    """One change of a rule's state for a device, as it would have happened."""

    ts: int
    event: Literal["raised", "cleared"]
    trigger: str  # reading, timer, presence
    values: dict[str, Any]
    actions: list[str]


class DeviceReplay(msgspec.Struct):
    """What one rule would have done for one device over the range."""

    rule: str
    device: str
    evaluated: int = 0  # readings or presence events that went through the condition
    active: bool = False  # on at the end of the range
    fired: list[WouldFire] = []


class ReplayReport(msgspec.Struct):
    """The outcome of a replay, per rule and device, in the order of the rules."""

    start: int
    end: int
    devices: list[DeviceReplay] = []
    notes: list[str] = []


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise PayloadError(
                f"the range holds more than {MAX_POINTS} values for these rules; "
                "narrow from/to or name one device",
                field="from",
            )


async def replay(
    store: Store,
    tenant_id: int,
    rules: Sequence[Rule],
    *,
    start: int,
    end: int,
    device: str | None = None,
    max_points: int = MAX_POINTS,
) -> ReplayReport:
    """What ``rules`` would have done on the tenant's stored data in [start, end)."""
    if end <= start:
        raise PayloadError("to: must be after from", field="to")
    report = ReplayReport(start, end)
    budget = _Budget(max_points)
    for rule in rules:
        if rule.condition is None:
            report.notes.append(f"{rule.name}: compute rules are not replayed")
            continue
        try:
            targets = await scope_devices(store, tenant_id, rule.scope)
            aliases = await alias_devices(store, tenant_id, rule)
        except NotFoundError as exc:
            report.notes.append(f"{rule.name}: {exc.message}; it watches no device")
            continue
        chosen = [d for d in targets.values() if device is None or d.id == device]
        if device is not None and not chosen:
            report.notes.append(f"{rule.name}: device {device!r} is not in its scope")
        for target in sorted(chosen, key=lambda d: d.id):
            outcome = DeviceReplay(rule.name, target.id)
            await _replay_device(store, rule, target, aliases, start, end, outcome, budget)
            report.devices.append(outcome)
    return report


async def _replay_device(
    store: Store,
    rule: Rule,
    target: Device,
    aliases: dict[str, Device],
    start: int,
    end: int,
    outcome: DeviceReplay,
    budget: _Budget,
) -> None:
    condition = CompiledCondition(rule)
    state = RuleState()
    if condition.no_data_ms is not None:
        key = condition.condition.no_data.key if condition.condition.no_data else None
        state.seen = await _last_before(store, target.pk, start, key) or start
    inputs: dict[str, Any] = {}

    def record(step: Step, ts: int, trigger: str) -> None:
        nonlocal inputs
        if step.inputs and trigger != "timer":
            inputs = step.inputs
        if step.transition is None:
            return
        values = step.inputs if trigger != "timer" else inputs
        firing = Firing(
            rule,
            target.id,
            target.name,
            "raised" if step.transition == "raise" else "cleared",
            ts,
            trigger,
            values,
        )
        outcome.fired.append(
            WouldFire(ts, firing.event, trigger, values, describe_actions(firing, target))
        )

    def let_time_pass(until: int) -> None:
        nonlocal state
        while (due := condition.due(state)) is not None and due < until:
            step = condition.on_tick(state, due)
            if step.state == state:
                return
            state = step.state
            record(step, due, "timer")

    if not condition.on_readings:
        async for ts, online in _presence(store, target.pk, start, end, budget):
            let_time_pass(ts)
            step = condition.on_connection(state, ts, online)
            state = step.state
            outcome.evaluated += 1
            record(step, ts, "presence")
    else:
        by_pk = {target.pk: SELF}
        if condition.expression is not None:
            by_pk |= {d.pk: alias for alias, d in aliases.items() if d.pk != target.pk}
        latest: dict[str, dict[str, Value]] = {name: {} for name in by_pk.values()}
        async for ts, pk, values in _readings(store, list(by_pk), start, end, budget):
            let_time_pass(ts)
            name = by_pk[pk]
            latest[name].update(values)
            own = name == SELF
            # The engine's own filters: a reading without the keys of the test does not
            # count, and one not newer than the last one evaluated is out of order.
            if own and condition.keys and not condition.keys & values.keys():
                continue
            if own and state.last_ts is not None and ts <= state.last_ts:
                continue
            view: dict[str, dict[str, Any]] = {SELF: dict(values)}
            if condition.expression is not None:
                view = {n: dict(v) for n, v in latest.items()}
            step = condition.on_reading(state, ts, view)
            state = step.state
            outcome.evaluated += 1
            record(step, ts, "reading")
    let_time_pass(end)
    outcome.active = state.active


async def _readings(
    store: Store, pks: list[int], start: int, end: int, budget: _Budget
) -> AsyncIterator[tuple[int, int, dict[str, Value]]]:
    """(ts, device_pk, values) in time order, one per device and instant."""
    segments = [Segment(pk, start, end) for pk in pks]
    after: tuple[int, int, int] | None = None
    current: tuple[int, int] | None = None
    values: dict[str, Value] = {}
    while True:
        points = await store.history(segments, after=after, limit=_PAGE)
        budget.spend(len(points))
        for point in points:
            if (point.ts, point.device_pk) != current:
                if current is not None:
                    yield current[0], current[1], values
                current, values = (point.ts, point.device_pk), {}
            values[point.key] = point.value
        if len(points) < _PAGE:
            break
        after = await store.cursor_of(points[-1])
    if current is not None:
        yield current[0], current[1], values


async def _presence(
    store: Store, device_pk: int, start: int, end: int, budget: _Budget
) -> AsyncIterator[tuple[int, bool]]:
    """The device's stored presence changes (online or not) in time order."""
    after: tuple[int, str] | None = None
    while True:
        events = await store.events(
            device_pk, start, end, kind="presence", after=after, limit=_PAGE, descending=False
        )
        budget.spend(len(events))
        for event in events:
            yield event.ts, bool(event.data.get("online"))
        if len(events) < _PAGE:
            return
        after = (events[-1].ts, events[-1].kind)


async def _last_before(store: Store, device_pk: int, start: int, key: str | None) -> int | None:
    """When the device last sent data (``key``, if given) before ``start``."""
    points = await store.history(
        [Segment(device_pk, 0, start)],
        keys=[key] if key is not None else None,
        limit=1,
        descending=True,
    )
    return points[0].ts if points else None


def describe_actions(firing: Firing, device: Device) -> list[str]:
    """The actions a raise or clear would run, in words, alarm first."""
    rule = firing.rule
    alarm = rule.alarm
    done: list[str] = []
    if firing.event == "raised":
        if alarm is not None:
            message = alarm.message or rule.description or rule.name
            done.append(f"alarm {alarm.severity}: {message}")
        actions = rule.actions
    else:
        if alarm is not None and alarm.clear:
            done.append("clear alarm")
        actions = rule.clear_actions
    done += [_describe(a, firing, device) for a in actions if a.alarm is None]
    return done


def _describe(action: Action, firing: Firing, device: Device) -> str:
    if action.command is not None:
        c = action.command
        target = c.device or (f"group {c.group}" if c.group else device.id)
        return f"command {c.method} {json.dumps(c.params)} to {target}"
    if action.desired is not None:
        d = action.desired
        target = d.device or (f"group {d.group}" if d.group else device.id)
        return f"desired {json.dumps(d.set)} on {target}"
    if action.webhook is not None:
        return f"webhook POST {action.webhook.url}"
    assert action.notify is not None
    n = action.notify
    recipients = ", ".join(mask_url(r) if is_url(r) else r for r in n.recipients)
    return f"notify {recipients} ({firing.severity(n)}): {firing.title(n)}"


__all__ = ["MAX_POINTS", "DeviceReplay", "ReplayReport", "WouldFire", "describe_actions", "replay"]
