"""Commands and twins: operators send, devices answer (MQTT or these HTTP endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field

from m2mhub.api.deps import Operator, PlatformDep, Viewer, read_body
from m2mhub.api.ingest import device_caller, device_reader
from m2mhub.api.schemas import Strict
from m2mhub.commands.service import parse_command_result
from m2mhub.platform import Platform
from m2mhub.store.models import Command, Device, Twin

router = APIRouter(prefix="/api/v1", tags=["commands and twins"])


class CommandIn(Strict):
    method: str = Field(examples=["reboot"])
    params: dict[str, Any] = Field(default_factory=dict)
    oneway: bool = Field(
        False,
        description="No result expected: done once delivered (always so for a method "
        "its type declares one-way).",
    )
    ttl_s: int = Field(3600, description="How long the command may wait for an offline device.")
    timeout_s: int | None = Field(
        None,
        description="How long to wait for a result once sent; empty: the declared method's "
        "timeout, else 30.",
    )
    wait_s: float = Field(
        0, ge=0, le=60, description="Answer only when the command is done, or after this long."
    )


class CommandOut(BaseModel):
    id: str
    device: str
    method: str
    params: dict[str, Any]
    oneway: bool
    status: str
    created: int
    expires: int
    sent: int | None
    finished: int | None
    result: Any = None
    error: str | None = None
    created_by: str


class CommandResultIn(Strict):
    status: str = Field("succeeded", description="delivered, succeeded or failed")
    result: Any = None
    error: str | None = None


class DesiredIn(Strict):
    desired: dict[str, Any] = Field(description="Keys to set; null deletes a key.")
    version: int | None = Field(
        None, description="The desired version this change is based on; 409 if it moved on."
    )


class TwinOut(BaseModel):
    desired: dict[str, Any]
    desired_version: int
    desired_at: int | None
    reported: dict[str, Any]
    reported_version: int
    reported_at: int | None
    delta: dict[str, Any]


def command_out(command: Command, device_id: str) -> CommandOut:
    return CommandOut(
        id=command.id,
        device=device_id,
        method=command.method,
        params=command.params,
        oneway=command.oneway,
        status=command.status,
        created=command.created_ms,
        expires=command.expires_ms,
        sent=command.sent_ms,
        finished=command.finished_ms,
        result=command.result,
        error=command.error,
        created_by=command.created_by,
    )


def twin_out(twin: Twin) -> TwinOut:
    return TwinOut(
        desired=twin.desired,
        desired_version=twin.desired_version,
        desired_at=twin.desired_ms,
        reported=twin.reported,
        reported_version=twin.reported_version,
        reported_at=twin.reported_ms,
        delta=twin.delta,
    )


async def _send(
    platform: Platform, devices: list[Device], body: CommandIn, subject: str
) -> list[CommandOut]:
    commands = await platform.commands.send(
        devices,
        body.method,
        body.params,
        oneway=body.oneway,
        ttl_ms=body.ttl_s * 1000,
        timeout_ms=body.timeout_s * 1000 if body.timeout_s is not None else None,
        created_by=subject,
    )
    if body.wait_s:
        commands = await platform.commands.wait(commands, body.wait_s)
    ids = {d.pk: d.id for d in devices}
    return [command_out(c, ids[c.device_pk]) for c in commands]


@router.post("/devices/{device_id}/commands", status_code=201, response_model=CommandOut)
async def send_command(
    device_id: str, body: CommandIn, who: Operator, platform: PlatformDep
) -> CommandOut:
    """Send a command to a device. With ``wait_s``, answer once it is done (or then)."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="command.send",
        target=f"device:{device_id}",
        details={"method": body.method, "params": body.params},
    ) as audited:
        device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
        [command] = await _send(platform, [device], body, who.subject)
        audited.details.update(command=command.id, status=command.status)
    return command


@router.post("/groups/{name}/commands", status_code=201, response_model=list[CommandOut])
async def send_group_command(
    name: str, body: CommandIn, who: Operator, platform: PlatformDep
) -> list[CommandOut]:
    """Send the same command to every device of a group."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="command.send",
        target=f"group:{name}",
        details={"method": body.method, "params": body.params},
    ) as audited:
        group = await platform.store.get_group(who.tenant_id, name)
        pks = await platform.store.device_pks(who.tenant_id, group_id=group.id)
        devices = list((await platform.store.devices_by_pk(pks)).values())
        commands = await _send(platform, devices, body, who.subject)
        audited.details["commands"] = {c.device: c.id for c in commands}
    return commands


@router.get("/devices/{device_id}/commands", response_model=list[CommandOut])
async def list_commands(
    device_id: str,
    who: Viewer,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="Only commands created before (ms).")] = None,
) -> list[CommandOut]:
    """A device's commands, newest first."""
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    commands = await platform.store.list_commands(device.pk, before=before, limit=limit)
    return [command_out(c, device.id) for c in commands]


@router.get("/commands/{command_id}", response_model=CommandOut)
async def get_command(command_id: str, who: Viewer, platform: PlatformDep) -> CommandOut:
    command = await platform.store.get_command(command_id, tenant_id=who.tenant_id)
    devices = await platform.store.devices_by_pk([command.device_pk])
    return command_out(command, devices[command.device_pk].id)


# -- the device's side over HTTP --------------------------------------------------------


@router.get("/devices/{device_id}/commands/next", response_model=list[CommandOut])
async def take_commands(
    device_id: str,
    platform: PlatformDep,
    wait: Annotated[float, Query(ge=0, le=60, description="Long-poll for up to this long.")] = 0,
    authorization: Annotated[str | None, Header()] = None,
) -> list[CommandOut]:
    """For HTTP devices: the commands waiting for this device (they become ``sent``)."""
    device = await device_caller(platform, device_id, authorization, None)
    return [command_out(c, device.id) for c in await platform.commands.take(device, wait_s=wait)]


@router.post("/devices/{device_id}/commands/{command_id}/result", response_model=CommandOut)
async def command_result(
    device_id: str,
    command_id: str,
    request: Request,
    platform: PlatformDep,
    authorization: Annotated[str | None, Header()] = None,
) -> CommandOut:
    """For HTTP devices: the answer to a command (same body as over MQTT)."""
    device = await device_caller(platform, device_id, authorization, None)
    body = await read_body(request, platform.settings.max_body_bytes)
    command = await platform.commands.answer(device, command_id, parse_command_result(body))
    return command_out(command, device.id)


# -- twins --------------------------------------------------------------------------------


@router.get("/devices/{device_id}/twin", response_model=TwinOut)
async def get_twin(
    device_id: str,
    platform: PlatformDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> TwinOut:
    """Desired and reported state, their versions, and the delta (desired, not yet reported).

    Readable with an API key of the tenant or the device's own token.
    """
    device = await device_reader(platform, device_id, authorization, x_api_key)
    return twin_out(await platform.store.twin(device.pk))


@router.patch("/devices/{device_id}/twin/desired", response_model=TwinOut)
async def set_desired(
    device_id: str, body: DesiredIn, who: Operator, platform: PlatformDep
) -> TwinOut:
    """Change desired state (merge; null deletes). Pass ``version`` to refuse lost updates."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="twin.desired",
        target=f"device:{device_id}",
        details={"desired": body.desired, "expected_version": body.version},
    ) as audited:
        device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
        twin = await platform.commands.set_desired(
            device, body.desired, expected_version=body.version
        )
        audited.details["version"] = twin.desired_version
    return twin_out(twin)


@router.post("/devices/{device_id}/twin/reported", response_model=TwinOut)
async def report_twin(
    device_id: str,
    request: Request,
    platform: PlatformDep,
    authorization: Annotated[str | None, Header()] = None,
) -> TwinOut:
    """For HTTP devices: report state, ``{"reported": {...}}`` (merge; null deletes)."""
    device = await device_caller(platform, device_id, authorization, None)
    body = await read_body(request, platform.settings.max_body_bytes)
    return twin_out(await platform.commands.report(device, body))
