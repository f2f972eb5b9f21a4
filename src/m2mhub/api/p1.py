"""Device-facing HTTP endpoint for smart-meter P1 dongles: raw DSMR telegrams in.

A dongle posts the telegrams it read from the meter's P1 port as they are
(``Content-Type: text/plain``), one or several (buffered while offline), with
the device token like any device (api/ingest.py). Decoding is
m2mhub.connect.dsmr's; the readings go through the same ingest pipeline as
JSON telemetry. See docs/devices.md, "Smart meters: DSMR P1".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from m2mhub.api.deps import get_platform, read_body
from m2mhub.api.errors import error_body
from m2mhub.api.ingest import device_caller
from m2mhub.connect.dsmr import DsmrError, Telegram, decode_telegram, split_telegrams
from m2mhub.connect.dsmr.const import POWER_FAILURE_EVENT
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.ingest.payload import Limits
from m2mhub.ingest.pipeline import IngestBatch

router = APIRouter(prefix="/api/v1", tags=["device API"])

#: Content types that mean the client changed the telegram's bytes (curl -d strips
#: line ends) or sent something else; the CRC would fail with a puzzling message.
_REFUSED_TYPES = ("application/x-www-form-urlencoded", "application/json", "multipart/")

_P1_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": "/ISk5\\2MT382-1000\r\n\r\n1-3:0.2.8(50)\r\n"
                "0-0:1.0.0(170102192002W)\r\n1-0:1.8.1(000004.426*kWh)\r\n...\r\n!6EEE\r\n",
            }
        },
    }
}


class P1Result(BaseModel):
    telegrams: int = Field(description="Telegrams decoded from the body.")
    accepted_readings: int = Field(description="Readings (distinct timestamps) they hold.")
    accepted_values: int = Field(description="Values accepted (those already stored are ignored).")
    events: int = Field(description="Power failure log entries new to m2mhub, recorded as events.")


@router.post(
    "/devices/{device_id}/p1",
    response_model=P1Result,
    openapi_extra=_P1_BODY,
    responses={
        400: {"description": "bad CRC or not a telegram; nothing stored"},
        401: {"description": "no or wrong token"},
        403: {"description": "another device's token"},
        413: {"description": "body too large"},
        415: {"description": "not sent as text/plain"},
    },
)
async def post_p1_telegrams(
    device_id: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Post one or more DSMR P1 telegrams exactly as read from the meter.

    Every telegram's CRC is checked; the body is accepted whole or refused
    whole (400, naming the telegram and line). Readings keep the meter's
    timestamps, so re-posting the same telegrams stores nothing twice.
    """
    platform = get_platform(request)
    device = await device_caller(platform, device_id, authorization, x_api_key)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(_REFUSED_TYPES):
        platform.rejected += 1
        message = (
            f"a P1 telegram is sent as text/plain, not {content_type.split(';')[0]}; "
            "with curl use -H 'Content-Type: text/plain' --data-binary @telegram.txt"
        )
        return JSONResponse(error_body("unsupported_media_type", message, "body"), 415)
    body = await read_body(request, platform.settings.max_body_bytes)
    arrival = now_ms()
    index = 0
    try:
        telegrams: list[Telegram] = []
        for raw in split_telegrams(body):
            index = len(telegrams) + 1  # named in the error when this one is refused
            telegrams.append(decode_telegram(raw))
        readings = _readings(telegrams, arrival, platform.limits)
        device_type = await platform.registry.device_type_of(device)
        batch = await platform.ingest(
            IngestBatch(device, device_type, readings, arrival_ms=arrival, source="p1")
        )
    except DsmrError as exc:
        platform.rejected += 1
        extra = {"line": exc.line, "telegram": index or None}
        message = f"telegram {index}, {exc.message}" if index > 1 else exc.message
        return JSONResponse(error_body(exc.code, message, "body", **extra), status_code=400)
    except PayloadError:
        platform.rejected += 1
        raise
    events = [
        (failure.end_ts, POWER_FAILURE_EVENT, {"duration_s": failure.duration_s})
        for telegram in telegrams
        for failure in telegram.power_failures
    ]
    recorded = await platform.record_events(device, events) if events else 0
    result = P1Result(
        telegrams=len(telegrams),
        accepted_readings=len(readings),
        accepted_values=batch.stored if batch else 0,
        events=recorded,
    )
    return JSONResponse(result.model_dump())


def _readings(
    telegrams: list[Telegram], arrival: int, limits: Limits
) -> list[tuple[int, dict[str, Value]]]:
    """All telegrams' readings, one per timestamp, bounded like JSON telemetry."""
    merged: dict[int, dict[str, Value]] = {}
    for telegram in telegrams:
        for ts, values in telegram.readings(arrival_ms=arrival):
            merged.setdefault(ts, {}).update(values)
    if len(merged) > limits.max_readings:
        raise PayloadError(
            f"body: {len(merged)} readings, more than {limits.max_readings}; "
            "post fewer telegrams at a time",
            field="body",
        )
    latest = max(merged, default=arrival)
    if latest > arrival + limits.future_tolerance_ms:
        raise PayloadError(
            f"body: the meter's clock is {(latest - arrival) // 1000} s ahead of m2mhub's; "
            "check the time zone of the dongle or the meter",
            field="body",
        )
    return sorted(merged.items())


__all__ = ["router"]
