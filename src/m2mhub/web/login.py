"""Signing in and out of the console."""

from __future__ import annotations

import hmac
import secrets
from typing import Final
from urllib.parse import parse_qs

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from m2mhub.api.deps import get_platform, read_body
from m2mhub.auth.sessions import COOKIE, Sessions, session_principal
from m2mhub.core.errors import AuthError, ForbiddenError
from m2mhub.web.routing import LOGIN, PREFIX, console_router
from m2mhub.web.templating import render

router = console_router()

# The sign-in form's own CSRF token (no session exists yet): a cookie that must match the
# form's hidden field, so another site cannot sign a browser in to an account of its choice.
LOGIN_COOKIE: Final = "m2mhub_login"
FORM_LIMIT: Final = 8192


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _next(target: str | None) -> str:
    """Where to go after signing in: only a path of the console (no open redirect)."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//"):
        return target
    return f"{PREFIX}/"


async def read_form(request: Request) -> dict[str, str]:
    body = await read_body(request, FORM_LIMIT)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def _login_page(
    request: Request,
    *,
    email: str = "",
    tenant: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        None,
        {
            "login_token": token,
            "email": email,
            "tenant": tenant,
            "error": error,
            "next": _next(request.query_params.get("next")),
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=LOGIN,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    if await session_principal(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get("login_token", ""), expected):
        return _login_page(
            request,
            email=form.get("email", ""),
            error="The sign-in form expired or came from elsewhere: please try again.",
            status=403,
        )
    sessions: Sessions = request.app.state.sessions
    email, tenant = form.get("email", ""), form.get("tenant", "")
    try:
        user = await sessions.sign_in(email, form.get("password", ""), tenant or None)
    except AuthError as exc:
        return _login_page(request, email=email, tenant=tenant, error=exc.message, status=401)
    cookie, _ = sessions.issue(user)
    platform = get_platform(request)
    await platform.audit.record(
        tenant_id=user.tenant_id, actor=f"user:{user.email}", action="user.login", target=""
    )
    response = RedirectResponse(_next(form.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=sessions.max_age_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: the form carries the session's CSRF token (another site cannot sign you out)."""
    form = await read_form(request)
    sessions: Sessions = request.app.state.sessions
    session = sessions.read(request.cookies.get(COOKIE))
    if session is not None and not hmac.compare_digest(
        form.get("csrf_token", "").encode(), session.csrf.encode()
    ):
        raise ForbiddenError("the sign-out form is out of date: reload the page and try again")
    response = RedirectResponse(LOGIN, status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response
