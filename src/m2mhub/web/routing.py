"""Console routes: HTML errors instead of JSON, sign-in redirects, and security headers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from m2mhub.api.errors import _status
from m2mhub.core.errors import AuthError, M2MHubError
from m2mhub.web.templating import render

PREFIX: Final = "/console"
LOGIN: Final = f"{PREFIX}/login"

# Pages load nothing from elsewhere: scripts, styles and fetches come from this server only.
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

TITLES: Final = {403: "Not allowed", 404: "Not found", 409: "Conflict", 503: "Unavailable"}


def login_redirect(request: Request) -> Response:
    """To the sign-in page, coming back here afterwards (htmx follows ``HX-Redirect``)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{LOGIN}?next={quote(here)}"
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


class ConsoleRoute(APIRoute):
    """A route whose errors become pages: sign in again, not allowed, not found."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except AuthError:
                response = login_redirect(request)
            except M2MHubError as exc:
                status = _status(exc)
                response = render(
                    request,
                    "error.html",
                    None,
                    {
                        "status": status,
                        "title": TITLES.get(status, "Error"),
                        "message": exc.message,
                    },
                    status=status,
                )
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route


def console_router() -> APIRouter:
    return APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
