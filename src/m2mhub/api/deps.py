"""Request dependencies: the platform, the caller, the body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from m2mhub.api.errors import BodyTooLarge
from m2mhub.auth.secrets import API_KEY_PREFIX
from m2mhub.auth.sessions import session_principal
from m2mhub.core.errors import AuthError
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.registry.service import Principal


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def bearer(authorization: str | None, x_api_key: str | None) -> str | None:
    """The credential from ``Authorization: Bearer ...`` or ``X-API-Key``."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates an API key (or a console session) and checks its role."""

    async def dependency(
        request: Request,
        platform: PlatformDep,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Principal:
        key = bearer(authorization, x_api_key)
        if not key:
            principal = await session_principal(request)
            if principal is None:
                raise AuthError("send an API key: Authorization: Bearer m2k_... or X-API-Key")
            principal.require(role)
            return principal
        if not key.startswith(API_KEY_PREFIX):
            raise AuthError("this endpoint needs an API key (m2k_...), not a device token")
        principal = await platform.registry.authenticate_key(key)
        principal.require(role)
        return principal

    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes; the limit is {limit}", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)
