"""One error body for every failure: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from m2mhub.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    M2MHubError,
    NotFoundError,
    PayloadError,
    StoreError,
    UnavailableError,
)
from m2mhub.registry.service import ImportRejected

STATUS: Final[dict[type[M2MHubError], int]] = {
    PayloadError: 422,
    AuthError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    StoreError: 503,
    UnavailableError: 503,
}


class BodyTooLarge(PayloadError):
    """The request body is larger than the configured limit."""

    code = "body_too_large"


def error_body(
    code: str, message: str, field: str | None = None, **extra: object
) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _status(exc: M2MHubError) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into the common body."""

    @app.exception_handler(M2MHubError)
    async def on_m2mhub_error(request: Request, exc: M2MHubError) -> JSONResponse:
        extra: dict[str, object] = {}
        if isinstance(exc, ImportRejected):
            extra["rows"] = [
                {"row": e.row, "field": e.field, "message": e.message} for e in exc.errors
            ]
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field, **extra),
            status_code=_status(exc),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return JSONResponse(error_body("invalid_request", message, field), status_code=422)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("http_error", str(exc.detail)),
            status_code=exc.status_code,
            headers=exc.headers,
        )
