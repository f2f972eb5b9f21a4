"""Phones as trackers: the OsmAnd protocol of OsmAnd and Traccar Client, over HTTP.

The apps send each position as a request to a URL the user types in, with the device's id
in the ``id`` parameter. They cannot send headers, so the device token is part of that
URL (``/api/v1/osmand/{token}``); a client that can send headers may use
``Authorization: Bearer`` on ``/api/v1/osmand`` instead. Positions go through the position
filter and the ingest pipeline like those of the tracker servers. See docs/trackers.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from m2mhub.api.deps import bearer, get_platform, read_body
from m2mhub.api.errors import error_body
from m2mhub.connect.trackers.osmand import OsmAndError, decode_request, to_values
from m2mhub.core.errors import AuthError, PayloadError
from m2mhub.core.timeutil import now_ms

router = APIRouter(prefix="/api/v1", tags=["device API"])

_RESPONSES: dict[int | str, dict[str, str]] = {
    200: {"description": "stored (or refused by the position filter, which counts why)"},
    400: {"description": "not an OsmAnd position: the parameter at fault is named"},
    401: {"description": "no or wrong token"},
    403: {"description": "the token of another device than `id`"},
}


async def _position(request: Request, token: str | None) -> Response:
    platform = get_platform(request)
    if not token:
        raise AuthError("put the device token in the URL: /api/v1/osmand/<token>")
    body = await read_body(request, platform.settings.max_body_bytes)
    try:
        position = decode_request(
            query=request.url.query, body=body, content_type=request.headers.get("content-type")
        )
    except OsmAndError as exc:
        platform.rejected += 1
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=400)
    device = await platform.registry.device_for_token(token, position.device_id)
    ts = position.time_ms if position.time_ms is not None else now_ms()
    kept = await platform.positions.apply(device.pk, [(ts, to_values(position))], now_ms())
    if kept:
        try:
            await platform.store_positions(device, kept, "osmand")
        except PayloadError:
            platform.rejected += 1
            raise
    return Response(status_code=200)


@router.get("/osmand/{token}", responses=_RESPONSES)
async def osmand_get(token: str, request: Request) -> Response:
    """One position from OsmAnd or Traccar Client, in the query string; the token is in
    the path.

    Parameters as the apps send them: `id`, `lat`, `lon`, `timestamp`, `speed` (knots),
    `bearing`, `altitude`, `accuracy`, `batt`, ...
    """
    return await _position(request, token)


@router.post("/osmand/{token}", responses=_RESPONSES)
async def osmand_post(token: str, request: Request) -> Response:
    """One position as a form or Traccar Client's JSON body; the token is in the path."""
    return await _position(request, token)


@router.get("/osmand", responses=_RESPONSES)
async def osmand_get_with_header(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """One position in the query string, with the device token in `Authorization: Bearer`."""
    return await _position(request, bearer(authorization, x_api_key))


@router.post("/osmand", responses=_RESPONSES)
async def osmand_post_with_header(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """One position as a form or JSON body, with the device token in `Authorization`."""
    return await _position(request, bearer(authorization, x_api_key))


__all__ = ["router"]
