"""Jinja2 templates of the console and the filters they use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from m2mhub.auth.sessions import Session
from m2mhub.core.values import Role
from m2mhub.registry.service import Principal

HERE: Final = Path(__file__).parent
templates: Final = Jinja2Templates(directory=HERE / "templates")

SEVERITY_ORDER: Final = ("critical", "major", "minor", "warning", "info")


def _time(ts: int | None) -> Markup:
    """An instant as ``<time>`` in UTC; console.js shows it in the reader's time zone."""
    if ts is None:
        return Markup('<span class="muted">never</span>')
    moment = datetime.fromtimestamp(ts / 1000, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), text
    )


def _clock(ts: int | None, zone: str) -> Markup:
    """An instant as the local time of day in ``zone`` (pages about a local day, such as a
    vehicle's day); marked ``data-local`` so console.js leaves it as it is."""
    if ts is None:
        return Markup("")
    moment = datetime.fromtimestamp(ts / 1000, ZoneInfo(zone))
    return Markup('<time datetime="{}" data-local title="{}">{}</time>').format(
        moment.isoformat(timespec="milliseconds"), zone, moment.strftime("%H:%M")
    )


def _value(value: Any) -> str:
    """A telemetry value for reading: short floats, true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


templates.env.filters["time"] = _time
templates.env.filters["clock"] = _clock
templates.env.filters["value"] = _value
templates.env.filters["json"] = _json


def render(
    request: Request,
    name: str,
    who: Principal | None,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    """A page or fragment, with what every template needs about the caller."""
    session: Session | None = getattr(request.state, "session", None)
    base = {
        "who": who,
        "csrf": session.csrf if session else "",
        "can_operate": who is not None and who.role.allows(Role.OPERATOR),
        "is_admin": who is not None and who.role.allows(Role.ADMIN),
        "user": who.subject.removeprefix("user:") if who else None,
        "fragment": request.headers.get("HX-Request") == "true",
    }
    return templates.TemplateResponse(
        request, name, {**base, **(context or {})}, status_code=status
    )
