"""Device-facing HTTP endpoints: telemetry and attributes in.

A device authenticates with its own token (``Authorization: Bearer m2d_...``)
and may only post for itself; an operator's API key may post for any device
of its tenant (for gateways and back-fills). See docs/devices.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from m2mhub.api.deps import PlatformDep, bearer, get_platform, read_body
from m2mhub.api.schemas import IngestResult
from m2mhub.auth.secrets import API_KEY_PREFIX
from m2mhub.core.errors import AuthError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.ingest.payload import parse_attributes, parse_telemetry
from m2mhub.ingest.pipeline import IngestBatch
from m2mhub.platform import Platform
from m2mhub.store.models import Device

router = APIRouter(prefix="/api/v1", tags=["device API"])

_TIMED = {
    "type": "object",
    "required": ["values"],
    "properties": {
        "ts": {"type": "integer", "description": "UTC milliseconds; arrival time when absent"},
        "values": {
            "type": "object",
            "additionalProperties": {"type": ["number", "boolean", "string"]},
        },
    },
}
_TELEMETRY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _TIMED,
                        {
                            "type": "object",
                            "additionalProperties": {"type": ["number", "boolean", "string"]},
                        },
                        {
                            "type": "array",
                            "items": {
                                "oneOf": [
                                    _TIMED,
                                    {"type": "object"},
                                ]
                            },
                        },
                    ]
                },
                "examples": {
                    "timed": {
                        "value": {"ts": 1764000000000, "values": {"temp": 21.5, "door": False}}
                    },
                    "bare": {"value": {"temp": 21.5}},
                    "batch": {
                        "value": [
                            {"ts": 1764000000000, "values": {"temp": 21.5}},
                            {"ts": 1764000060000, "values": {"temp": 21.7}},
                        ]
                    },
                },
            }
        },
    }
}


async def device_caller(
    platform: Platform, device_id: str, authorization: str | None, x_api_key: str | None
) -> Device:
    """The device a request may write for, checked against its credential."""
    credential = bearer(authorization, x_api_key)
    if not credential:
        raise AuthError("send the device token: Authorization: Bearer m2d_...")
    if credential.startswith(API_KEY_PREFIX):
        principal = await platform.registry.authenticate_key(credential)
        principal.require(Role.OPERATOR)
        return await platform.store.get_device(device_id, tenant_id=principal.tenant_id)
    return await platform.registry.device_for_token(credential, device_id)


async def device_reader(
    platform: Platform, device_id: str, authorization: str | None, x_api_key: str | None
) -> Device:
    """The device a request may read about: with its own token, or any API key of its tenant."""
    credential = bearer(authorization, x_api_key)
    if not credential:
        raise AuthError("send an API key or the device token")
    if credential.startswith(API_KEY_PREFIX):
        principal = await platform.registry.authenticate_key(credential)
        return await platform.store.get_device(device_id, tenant_id=principal.tenant_id)
    return await platform.registry.device_for_token(credential, device_id)


@router.post(
    "/devices/{device_id}/telemetry",
    response_model=IngestResult,
    openapi_extra=_TELEMETRY_BODY,
    responses={
        401: {"description": "no or wrong token"},
        403: {"description": "another device's token"},
        413: {"description": "body too large"},
        422: {"description": "invalid payload; nothing stored"},
    },
)
async def post_telemetry(
    device_id: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Post one reading, a bare key/value object, or a batch with original timestamps.

    The whole body is accepted or the whole body is rejected. A 200 means the
    values are committed to the store. Re-sent values (same key and ts) are
    ignored, so a device may safely retry.
    """
    # Not PlatformDep: FastAPI runs a plain-function dependency in a worker
    # thread, a hop per request that the busiest endpoint does without.
    platform = get_platform(request)
    device = await device_caller(platform, device_id, authorization, x_api_key)
    body = await read_body(request, platform.settings.max_body_bytes)
    arrival = now_ms()
    try:
        readings = parse_telemetry(body, now=arrival, limits=platform.limits)
        device_type = await platform.registry.device_type_of(device)
        batch = await platform.ingest(
            IngestBatch(device, device_type, readings, arrival_ms=arrival, source="http")
        )
    except PayloadError:
        platform.rejected += 1
        raise
    values = batch.stored if batch else 0
    return JSONResponse({"accepted_readings": len(readings), "accepted_values": values})


@router.post("/devices/{device_id}/attributes", status_code=204)
async def post_attributes(
    device_id: str,
    request: Request,
    platform: PlatformDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Report the device's own state (firmware, configuration, ...): a JSON object."""
    device = await device_caller(platform, device_id, authorization, x_api_key)
    body = await read_body(request, platform.settings.max_body_bytes)
    attributes = parse_attributes(body, limits=platform.limits)
    await platform.report_attributes(device, attributes)
    return Response(status_code=204)


@router.get("/devices/{device_id}/attributes", response_model=dict[str, Any])
async def get_attributes(
    device_id: str,
    platform: PlatformDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """The device's reported attributes with the time each was last reported.

    Readable with the device's own token or any API key of its tenant.
    """
    device = await device_reader(platform, device_id, authorization, x_api_key)
    attributes = await platform.store.attributes(device.pk)
    return {key: {"ts": ts, "value": value} for key, (ts, value) in attributes.items()}


__all__ = ["router"]
