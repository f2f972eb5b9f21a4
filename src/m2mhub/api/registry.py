"""Registry endpoints: device types, devices, groups, assets, API keys, retention."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from m2mhub.api.deps import Admin, Operator, PlatformDep, Viewer, read_body
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.api.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    AssetIn,
    AssetList,
    AssetOut,
    AssignIn,
    AssignmentOut,
    DeviceCreated,
    DeviceIn,
    DeviceList,
    DeviceOut,
    DeviceTypeIn,
    DeviceTypeOut,
    DeviceTypePatch,
    GroupIn,
    GroupMembersIn,
    GroupOut,
    ImportResult,
    KeySpecIn,
    MethodIn,
    RetentionIn,
    TokenOut,
    UserIn,
    UserOut,
)
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.platform import Platform
from m2mhub.registry.assets_csv import decode_csv, import_assets_csv
from m2mhub.registry.assets_xlsx import XLSX_MEDIA_TYPE, import_assets_xlsx, is_zip
from m2mhub.registry.methods import methods_to_builtins, parse_methods
from m2mhub.registry.naming import check_name, check_path_name
from m2mhub.store.models import ApiKey, Asset, Device, DeviceType, KeySpec, MethodSpec

router = APIRouter(prefix="/api/v1")


def type_out(t: DeviceType) -> DeviceTypeOut:
    return DeviceTypeOut(
        name=t.name,
        keys=[
            KeySpecIn(key=k.key, type=k.type, unit=k.unit, description=k.description)
            for k in t.keys
        ],
        strict=t.strict,
        report_interval_s=t.report_interval_s,
        retention_days=t.retention_days,
        methods=[MethodIn.model_validate(m) for m in methods_to_builtins(t.methods)],
        created=t.created_ms,
    )


async def types_by_id(platform: Platform, tenant_id: int) -> dict[int, DeviceType]:
    return {t.id: t for t in await platform.store.list_device_types(tenant_id)}


def device_out(
    platform: Platform, device: Device, types: dict[int, DeviceType], now: int
) -> DeviceOut:
    device_type = types[device.type_id]
    return DeviceOut(
        id=device.id,
        name=device.name,
        type=device_type.name,
        labels=device.labels,
        created=device.created_ms,
        last_seen=device.last_seen_ms,
        status=platform.registry.status(device, device_type, now=now).value,
        connected=device.connected,
        rejected=device.rejected,
        last_error=device.last_error,
        last_error_at=device.last_error_ms,
    )


def _specs(keys: list[KeySpecIn]) -> list[KeySpec]:
    return [KeySpec(k.key, k.type, k.unit, k.description) for k in keys]


def _methods(methods: list[MethodIn]) -> tuple[MethodSpec, ...]:
    return parse_methods([m.model_dump(exclude_none=True) for m in methods])


# -- device types ------------------------------------------------------------------


@router.post("/device-types", status_code=201, response_model=DeviceTypeOut, tags=["device types"])
async def create_device_type(
    body: DeviceTypeIn, who: Admin, platform: PlatformDep
) -> DeviceTypeOut:
    """Declare a device type: its keys, units, value types, report interval and the
    command methods its devices handle."""
    created = await platform.registry.create_device_type(
        who.tenant_id,
        body.name,
        _specs(body.keys),
        strict=body.strict,
        report_interval_s=body.report_interval_s,
        retention_days=body.retention_days,
        methods=_methods(body.methods),
    )
    return type_out(created)


@router.get("/device-types", response_model=list[DeviceTypeOut], tags=["device types"])
async def list_device_types(who: Viewer, platform: PlatformDep) -> list[DeviceTypeOut]:
    return [type_out(t) for t in await platform.store.list_device_types(who.tenant_id)]


@router.get("/device-types/{name}", response_model=DeviceTypeOut, tags=["device types"])
async def get_device_type(name: str, who: Viewer, platform: PlatformDep) -> DeviceTypeOut:
    return type_out(await platform.store.get_device_type(who.tenant_id, name=name))


@router.patch("/device-types/{name}", response_model=DeviceTypeOut, tags=["device types"])
async def update_device_type(
    name: str, body: DeviceTypePatch, who: Admin, platform: PlatformDep
) -> DeviceTypeOut:
    """Change a type's keys, strictness, report interval, retention or command methods."""
    fields = body.model_fields_set
    updated = await platform.registry.update_device_type(
        who.tenant_id,
        name,
        keys=_specs(body.keys) if body.keys is not None else None,
        strict=body.strict,
        report_interval_s=body.report_interval_s,
        retention_days=body.retention_days if "retention_days" in fields else "keep",
        methods=_methods(body.methods) if body.methods is not None else None,
    )
    return type_out(updated)


# -- devices -------------------------------------------------------------------------


@router.post("/devices", status_code=201, response_model=DeviceCreated, tags=["devices"])
async def create_device(body: DeviceIn, who: Operator, platform: PlatformDep) -> DeviceCreated:
    """Create a device. The response holds its token, shown this once."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="device.create",
        target=f"device:{body.id}" if body.id else "device:",
        details={"name": body.name, "type": body.type},
    ) as audited:
        device, token = await platform.registry.create_device(
            who.tenant_id,
            type_name=body.type,
            name=body.name,
            device_id=body.id,
            labels=body.labels,
        )
        audited.target = f"device:{device.id}"
    types = await types_by_id(platform, who.tenant_id)
    out = device_out(platform, device, types, now_ms())
    return DeviceCreated(**out.model_dump(), token=token)


@router.post(
    "/devices/import",
    status_code=201,
    response_model=ImportResult,
    tags=["devices"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "name,type,id,labels\nm-001,meter,,site=north\n",
                }
            },
        }
    },
)
async def import_devices(request: Request, who: Operator, platform: PlatformDep) -> ImportResult:
    """Create many devices from CSV (columns name, type, and optional id, labels).

    All or nothing: if any row has an error, nothing is created and the 422
    response lists every error with its row number.
    """
    body = await read_body(request, platform.settings.max_body_bytes * 16)
    async with platform.audit.track(
        tenant_id=who.tenant_id, actor=who.subject, action="device.import", target="devices"
    ) as audited:
        created = await platform.registry.import_devices_csv(
            who.tenant_id, body.decode("utf-8-sig")
        )
        audited.details["ids"] = [d.id for d, _ in created]
    types = await types_by_id(platform, who.tenant_id)
    now = now_ms()
    devices = [
        DeviceCreated(**device_out(platform, d, types, now).model_dump(), token=token)
        for d, token in created
    ]
    return ImportResult(created=len(devices), devices=devices)


@router.get("/devices", response_model=DeviceList, tags=["devices"])
async def list_devices(
    who: Viewer,
    platform: PlatformDep,
    type: Annotated[str | None, Query(description="Only devices of this type.")] = None,
    group: Annotated[str | None, Query(description="Only devices in this group.")] = None,
    name_prefix: Annotated[str | None, Query(description="Only names starting with this.")] = None,
    status: Annotated[str | None, Query(pattern="^(online|offline|never_seen)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> DeviceList:
    """Devices by name, a page at a time; pass ``next_cursor`` back for the next page."""
    types = await types_by_id(platform, who.tenant_id)
    type_id = (await platform.store.get_device_type(who.tenant_id, name=type)).id if type else None
    group_id = (await platform.store.get_group(who.tenant_id, group)).id if group else None
    after = decode_cursor(cursor, str) if cursor else None
    now = now_ms()
    items: list[DeviceOut] = []
    page: list[Device] = []
    exhausted = False
    # A status filter is computed, not stored: read pages until this one is full.
    while len(items) < limit and not exhausted:
        page = await platform.store.list_devices(
            who.tenant_id,
            type_id=type_id,
            group_id=group_id,
            name_prefix=name_prefix,
            after_name=after,
            limit=limit,
        )
        exhausted = len(page) < limit
        for device in page:
            after = device.name
            out = device_out(platform, device, types, now)
            if status is None or out.status == status:
                items.append(out)
                if len(items) == limit:
                    break
    at_end = exhausted and (not page or after == page[-1].name)
    return DeviceList(
        items=items, next_cursor=None if at_end or after is None else encode_cursor(after)
    )


@router.get("/devices/{device_id}", response_model=DeviceOut, tags=["devices"])
async def get_device(device_id: str, who: Viewer, platform: PlatformDep) -> DeviceOut:
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    return device_out(platform, device, await types_by_id(platform, who.tenant_id), now_ms())


@router.delete("/devices/{device_id}", status_code=204, tags=["devices"])
async def delete_device(device_id: str, who: Admin, platform: PlatformDep) -> Response:
    """Delete a device and all its data."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="device.delete",
        target=f"device:{device_id}",
    ):
        await platform.registry.delete_device(who.tenant_id, device_id)
    return Response(status_code=204)


@router.post("/devices/{device_id}/token", response_model=TokenOut, tags=["devices"])
async def rotate_token(device_id: str, who: Operator, platform: PlatformDep) -> TokenOut:
    """Issue a new token for the device; the old one stops working."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="device.rotate_token",
        target=f"device:{device_id}",
    ):
        token = await platform.registry.rotate_token(who.tenant_id, device_id)
    return TokenOut(id=device_id, token=token)


# -- groups --------------------------------------------------------------------------


@router.post("/groups", status_code=201, response_model=GroupOut, tags=["groups"])
async def create_group(body: GroupIn, who: Operator, platform: PlatformDep) -> GroupOut:
    group = await platform.store.create_group(who.tenant_id, check_path_name(body.name))
    return GroupOut(name=group.name, created=group.created_ms)


@router.delete("/groups/{name}", status_code=204, tags=["groups"])
async def delete_group(name: str, who: Operator, platform: PlatformDep) -> Response:
    """Delete a group; its devices stay."""
    group = await platform.store.get_group(who.tenant_id, name)
    await platform.store.delete_group(group.id)
    return Response(status_code=204)


@router.get("/groups", response_model=list[GroupOut], tags=["groups"])
async def list_groups(who: Viewer, platform: PlatformDep) -> list[GroupOut]:
    return [
        GroupOut(name=g.name, created=g.created_ms)
        for g in await platform.store.list_groups(who.tenant_id)
    ]


@router.post("/groups/{name}/members", status_code=204, tags=["groups"])
async def change_members(
    name: str, body: GroupMembersIn, who: Operator, platform: PlatformDep
) -> Response:
    """Add devices to and remove devices from a group (by device id)."""
    group = await platform.store.get_group(who.tenant_id, name)
    add = [(await platform.store.get_device(d, tenant_id=who.tenant_id)).pk for d in body.add]
    remove = [(await platform.store.get_device(d, tenant_id=who.tenant_id)).pk for d in body.remove]
    await platform.store.set_group_members(group.id, add=add, remove=remove)
    return Response(status_code=204)


# -- assets --------------------------------------------------------------------------


def asset_out(asset: Asset) -> AssetOut:
    return AssetOut(
        name=asset.name, kind=asset.kind, properties=asset.properties, created=asset.created_ms
    )


@router.post("/assets", status_code=201, response_model=AssetOut, tags=["assets"])
async def create_asset(body: AssetIn, who: Operator, platform: PlatformDep) -> AssetOut:
    """Register equipment (a generator, a truck, a pump) that devices are attached to."""
    asset = await platform.store.create_asset(
        who.tenant_id,
        check_path_name(body.name),
        check_name(body.kind, field="kind"),
        body.properties,
    )
    return asset_out(asset)


@router.post(
    "/assets/import",
    status_code=201,
    response_model=list[AssetOut],
    tags=["assets"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "name,kind,devices,site\ngenerator-7,generator,meter-001,north\n",
                },
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def import_assets(request: Request, who: Operator, platform: PlatformDep) -> list[AssetOut]:
    """Create many assets from a CSV file or an Excel workbook (.xlsx).

    Columns name, and optional kind, devices, properties. The body is read as a workbook
    when it is one (a zip archive) or is sent with the .xlsx media type, else as UTF-8
    CSV. A workbook is read from its sheet named ``assets``, or its first sheet; formulas
    count with the result saved in the file. All or nothing: if any row has an error,
    nothing is created and the 422 response lists every error with its row number (as
    Excel numbers it for a workbook).
    """
    body = await read_body(request, platform.settings.max_body_bytes * 16)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    async with platform.audit.track(
        tenant_id=who.tenant_id, actor=who.subject, action="asset.import", target="assets"
    ) as audited:
        if is_zip(body) or media_type == XLSX_MEDIA_TYPE:
            created = await import_assets_xlsx(platform.store, who.tenant_id, body)
        else:
            created = await import_assets_csv(platform.store, who.tenant_id, decode_csv(body))
        audited.details["names"] = [a.name for a in created]
    return [asset_out(a) for a in created]


@router.get("/assets", response_model=AssetList, tags=["assets"])
async def list_assets(
    who: Viewer,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> AssetList:
    after = decode_cursor(cursor, str) if cursor else None
    page = await platform.store.list_assets(who.tenant_id, after_name=after, limit=limit)
    next_cursor = encode_cursor(page[-1].name) if len(page) == limit else None
    return AssetList(items=[asset_out(a) for a in page], next_cursor=next_cursor)


@router.get("/assets/{name}", response_model=AssetOut, tags=["assets"])
async def get_asset(name: str, who: Viewer, platform: PlatformDep) -> AssetOut:
    return asset_out(await platform.store.get_asset(who.tenant_id, name))


@router.post(
    "/assets/{name}/assignments", status_code=201, response_model=AssignmentOut, tags=["assets"]
)
async def assign(name: str, body: AssignIn, who: Operator, platform: PlatformDep) -> AssignmentOut:
    """Attach a device to the asset from ``at`` (default now).

    The device's previous assignment, to any asset, ends at that instant. An
    asset may carry several devices at once; to swap one, name the device it
    ``replaces``.
    """
    asset = await platform.store.get_asset(who.tenant_id, name)
    device = await platform.store.get_device(body.device, tenant_id=who.tenant_id)
    at = body.at or now_ms()
    if body.replaces:
        replaced = await platform.store.get_device(body.replaces, tenant_id=who.tenant_id)
        await platform.store.unassign_device(asset.id, replaced.pk, at)
    made = await platform.store.assign_device(asset.id, device.pk, at)
    return AssignmentOut(device=device.id, from_ms=made.from_ms, to_ms=made.to_ms)


@router.delete("/assets/{name}/assignments/{device_id}", status_code=204, tags=["assets"])
async def unassign(
    name: str, device_id: str, who: Operator, platform: PlatformDep, at: int | None = None
) -> Response:
    """Detach a device from the asset at ``at`` (default now); its history stays with the asset."""
    asset = await platform.store.get_asset(who.tenant_id, name)
    device = await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    await platform.store.unassign_device(asset.id, device.pk, at or now_ms())
    return Response(status_code=204)


@router.get("/assets/{name}/assignments", response_model=list[AssignmentOut], tags=["assets"])
async def list_assignments(name: str, who: Viewer, platform: PlatformDep) -> list[AssignmentOut]:
    asset = await platform.store.get_asset(who.tenant_id, name)
    rows = await platform.store.assignments(asset.id)
    devices = await platform.store.devices_by_pk([r.device_pk for r in rows])
    return [
        AssignmentOut(device=devices[r.device_pk].id, from_ms=r.from_ms, to_ms=r.to_ms)
        for r in rows
    ]


# -- users, API keys and tenant settings -----------------------------------------------------


@router.post("/users", status_code=201, response_model=UserOut, tags=["users"])
async def create_user(body: UserIn, who: Admin, platform: PlatformDep) -> UserOut:
    """Add a person to this tenant with a role (and a password to sign in with)."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="user.create",
        target=f"user:{body.email}",
        details={"role": body.role.value},
    ):
        user = await platform.registry.create_user(
            who.tenant_id, body.email, body.role, body.password
        )
    return UserOut(email=user.email, role=user.role, created=user.created_ms)


@router.get("/users", response_model=list[UserOut], tags=["users"])
async def list_users(who: Admin, platform: PlatformDep) -> list[UserOut]:
    users = await platform.store.list_users(who.tenant_id)
    return [UserOut(email=u.email, role=u.role, created=u.created_ms) for u in users]


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id, name=key.name, role=key.role, created=key.created_ms, revoked=key.revoked_ms
    )


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["api keys"])
async def create_api_key(body: ApiKeyIn, who: Admin, platform: PlatformDep) -> ApiKeyCreated:
    """A new API key for this tenant; the key is in the response, once."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="apikey.create",
        target="apikey:",
        details={"name": body.name, "role": body.role.value},
    ) as audited:
        record, key = await platform.registry.create_api_key(who.tenant_id, body.name, body.role)
        audited.target = f"apikey:{record.id}"
    return ApiKeyCreated(**key_out(record).model_dump(), key=key)


@router.get("/api-keys", response_model=list[ApiKeyOut], tags=["api keys"])
async def list_api_keys(who: Admin, platform: PlatformDep) -> list[ApiKeyOut]:
    return [key_out(k) for k in await platform.store.list_api_keys(who.tenant_id)]


@router.delete("/api-keys/{key_id}", status_code=204, tags=["api keys"])
async def revoke_api_key(key_id: str, who: Admin, platform: PlatformDep) -> Response:
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="apikey.revoke",
        target=f"apikey:{key_id}",
    ):
        await platform.registry.revoke_api_key(who.tenant_id, key_id)
    return Response(status_code=204)


@router.get("/tenant/retention", response_model=RetentionIn, tags=["tenant"])
async def get_retention(who: Viewer, platform: PlatformDep) -> RetentionIn:
    """Days of raw telemetry kept for this tenant (null: all)."""
    tenants = {t.id: t for t in await platform.store.list_tenants()}
    return RetentionIn(retention_days=tenants[who.tenant_id].retention_days)


@router.put("/tenant/retention", response_model=RetentionIn, tags=["tenant"])
async def set_retention(body: RetentionIn, who: Admin, platform: PlatformDep) -> RetentionIn:
    """Days of raw telemetry kept for this tenant (a device type's own setting wins)."""
    if body.retention_days is not None and body.retention_days < 1:
        raise PayloadError(
            "retention_days must be at least 1, or null to keep all", field="retention_days"
        )
    await platform.store.set_tenant_retention(who.tenant_id, body.retention_days)
    return body
