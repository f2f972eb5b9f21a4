"""Rules: create, replace, enable, pause per device (manual mode), and see why they fired."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from m2mhub.api.deps import Admin, Operator, PlatformDep, Viewer
from m2mhub.core.errors import ConflictError, NotFoundError, UnavailableError
from m2mhub.core.timeutil import now_ms, parse_time
from m2mhub.platform import Platform
from m2mhub.registry.service import Principal
from m2mhub.rules.conditions import decode_state
from m2mhub.rules.engine import ALL_RULES
from m2mhub.rules.model import Rule
from m2mhub.rules.replay import replay
from m2mhub.rules.service import rule_of, save_rule
from m2mhub.store.models import StoredRule

router = APIRouter(prefix="/api/v1", tags=["rules"])


class RuleOut(BaseModel):
    name: str
    enabled: bool
    source: str = Field(description="api or file (applied from a rules file)")
    created: int
    updated: int
    rule: dict[str, Any] = Field(
        description="The definition, as in a rules file, with webhook secrets and the "
        "passwords of notification URLs hidden."
    )


class RuleDeviceState(BaseModel):
    device: str
    active: bool
    since: int | None = Field(description="When it last turned on or off.")
    alarm: int | None
    paused: bool


class TraceOut(BaseModel):
    at: int
    device: str
    ts: int
    trigger: str = Field(description="reading, timer or presence")
    inputs: dict[str, Any]
    result: bool | None
    active: bool
    transition: str | None
    actions: list[str]
    note: str | None


def rule_out(stored: StoredRule) -> RuleOut:
    return RuleOut(
        name=stored.name,
        enabled=stored.enabled,
        source=stored.source,
        created=stored.created_ms,
        updated=stored.updated_ms,
        rule=rule_of(stored).to_data(redact=True),
    )


async def _changed(platform: Platform, who: Principal, action: str, target: str) -> None:
    """Reload this process's engine at once (others poll) and audit the change."""
    if "rules" in platform.settings.role_set():
        await platform.rules.reload()
    await platform.audit.record(
        tenant_id=who.tenant_id, actor=who.subject, action=action, target=target
    )


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(who: Viewer, platform: PlatformDep) -> list[RuleOut]:
    return [rule_out(r) for r in await platform.store.list_rules(who.tenant_id)]


@router.post("/rules", status_code=201, response_model=RuleOut)
async def create_rule(body: Rule, who: Admin, platform: PlatformDep) -> RuleOut:
    """Create a rule (409 if the name is taken; PUT replaces)."""
    try:
        await platform.store.get_rule(who.tenant_id, body.name)
    except NotFoundError:
        pass
    else:
        raise ConflictError(f"rule {body.name!r} exists; PUT /rules/{body.name} replaces it")
    await save_rule(platform.store, who.tenant_id, body, source="api")
    await _changed(platform, who, "rule.create", f"rule:{body.name}")
    return rule_out(await platform.store.get_rule(who.tenant_id, body.name))


class RuleTest(BaseModel):
    """Rules to try on stored data, and the time range to replay."""

    rules: list[Rule] = Field(min_length=1, max_length=100)
    from_: str | int = Field("-24h", alias="from", description="As in history queries.")
    to: str | int = "now"
    device: str | None = Field(None, description="Only this device of the rules' scopes.")


class WouldFireOut(BaseModel):
    ts: int
    event: str = Field(description="raised or cleared")
    trigger: str = Field(description="reading, timer or presence")
    values: dict[str, Any]
    actions: list[str] = Field(description="What would have run, in words.")


class DeviceReplayOut(BaseModel):
    rule: str
    device: str
    evaluated: int = Field(description="Readings (or presence changes) evaluated.")
    active: bool = Field(description="On at the end of the range.")
    fired: list[WouldFireOut]


class RuleTestOut(BaseModel):
    from_: int = Field(alias="from")
    to: int
    devices: list[DeviceReplayOut]
    notes: list[str]


@router.post("/rules/test", response_model=RuleTestOut, response_model_by_alias=True)
async def test_rules(body: RuleTest, who: Viewer, platform: PlatformDep) -> dict[str, Any]:
    """Replay stored data through rules (not saved) and report what they would have done.

    A dry run: nothing is written, no action runs. See docs/rules.md for its limits.
    """
    now = now_ms()
    start = parse_time(str(body.from_), field="from", now=now)
    end = parse_time(str(body.to), field="to", now=now + 1)
    report = await replay(
        platform.store, who.tenant_id, body.rules, start=start, end=end, device=body.device
    )
    data: dict[str, Any] = msgspec.to_builtins(report)
    data["from"], data["to"] = data.pop("start"), data.pop("end")
    return data


@router.get("/rules/{name}", response_model=RuleOut)
async def get_rule(name: str, who: Viewer, platform: PlatformDep) -> RuleOut:
    return rule_out(await platform.store.get_rule(who.tenant_id, name))


@router.put("/rules/{name}", response_model=RuleOut)
async def replace_rule(name: str, body: Rule, who: Admin, platform: PlatformDep) -> RuleOut:
    """Create or replace the rule ``name`` (the body's name must match)."""
    if body.name != name:
        raise ConflictError(f"the body names rule {body.name!r}, the URL {name!r}", field="name")
    await save_rule(platform.store, who.tenant_id, body, source="api")
    await _changed(platform, who, "rule.replace", f"rule:{name}")
    return rule_out(await platform.store.get_rule(who.tenant_id, name))


@router.delete("/rules/{name}", status_code=204)
async def delete_rule(name: str, who: Admin, platform: PlatformDep) -> Response:
    """Delete a rule and its state; its alarms stay (clear them if needed)."""
    await platform.store.delete_rule(who.tenant_id, name)
    await _changed(platform, who, "rule.delete", f"rule:{name}")
    return Response(status_code=204)


@router.post("/rules/{name}/enable", response_model=RuleOut)
async def enable_rule(name: str, who: Admin, platform: PlatformDep) -> RuleOut:
    stored = await platform.store.set_rule_enabled(who.tenant_id, name, True)
    await _changed(platform, who, "rule.enable", f"rule:{name}")
    return rule_out(stored)


@router.post("/rules/{name}/disable", response_model=RuleOut)
async def disable_rule(name: str, who: Admin, platform: PlatformDep) -> RuleOut:
    stored = await platform.store.set_rule_enabled(who.tenant_id, name, False)
    await _changed(platform, who, "rule.disable", f"rule:{name}")
    return rule_out(stored)


@router.get("/rules/{name}/devices", response_model=list[RuleDeviceState])
async def rule_devices(name: str, who: Viewer, platform: PlatformDep) -> list[RuleDeviceState]:
    """Where the rule stands for each device it has evaluated (read from the store)."""
    stored = await platform.store.get_rule(who.tenant_id, name)
    states = await platform.store.rule_states([stored.id])
    devices = await platform.store.devices_by_pk([pk for _, pk in states])
    paused = {(p.rule_id, p.device_pk) for p in await platform.store.rule_pauses(who.tenant_id)}
    out = []
    for (_, pk), text in sorted(states.items()):
        if pk not in devices:
            continue
        state = decode_state(text)
        out.append(
            RuleDeviceState(
                device=devices[pk].id,
                active=state.active,
                since=state.changed,
                alarm=state.alarm_id,
                paused=(stored.id, pk) in paused or (ALL_RULES, pk) in paused,
            )
        )
    return out


async def _pause(
    platform: Platform, who: Principal, rule: str | None, device_id: str, paused: bool
) -> None:
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    rule_id = ALL_RULES
    if rule is not None:
        rule_id = (await platform.store.get_rule(who.tenant_id, rule)).id
    await platform.store.set_rule_pause(
        who.tenant_id, rule_id, device.pk, paused=paused, by=who.subject
    )
    action = "rule.pause" if paused else "rule.resume"
    target = f"device:{device_id}" + (f" rule:{rule}" if rule else "")
    await _changed(platform, who, action, target)


@router.post("/rules/{name}/devices/{device_id}/pause", status_code=204)
async def pause_rule_for_device(
    name: str, device_id: str, who: Operator, platform: PlatformDep
) -> Response:
    """Manual mode for one rule on one device: it still evaluates and raises alarms, but
    sends no commands or desired state until resumed."""
    await _pause(platform, who, name, device_id, True)
    return Response(status_code=204)


@router.post("/rules/{name}/devices/{device_id}/resume", status_code=204)
async def resume_rule_for_device(
    name: str, device_id: str, who: Operator, platform: PlatformDep
) -> Response:
    await _pause(platform, who, name, device_id, False)
    return Response(status_code=204)


@router.post("/devices/{device_id}/automation/pause", status_code=204)
async def pause_device(device_id: str, who: Operator, platform: PlatformDep) -> Response:
    """Manual mode for a device: no rule sends it commands or desired state until resumed;
    people still can. Alarms are still raised."""
    await _pause(platform, who, None, device_id, True)
    return Response(status_code=204)


@router.post("/devices/{device_id}/automation/resume", status_code=204)
async def resume_device(device_id: str, who: Operator, platform: PlatformDep) -> Response:
    await _pause(platform, who, None, device_id, False)
    return Response(status_code=204)


@router.get("/rules/{name}/trace", response_model=list[TraceOut])
async def rule_trace(name: str, who: Viewer, platform: PlatformDep) -> list[TraceOut]:
    """The rule's recent evaluations in this process, newest first: inputs, result, actions."""
    stored = await platform.store.get_rule(who.tenant_id, name)
    if "rules" not in platform.settings.role_set():
        raise UnavailableError(
            "this process does not run the rules role; ask the one that does (M2MHUB_ROLES)"
        )
    return [
        TraceOut(
            at=t.at,
            device=t.device,
            ts=t.ts,
            trigger=t.trigger,
            inputs=t.inputs,
            result=t.result,
            active=t.active,
            transition=t.transition,
            actions=t.actions,
            note=t.note,
        )
        for t in platform.rules.trace(stored.id)
    ]
