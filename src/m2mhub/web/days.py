"""Local days asked for in a console page's query string (``?from=2026-10-01&to=2026-10-07``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query

from m2mhub.core.errors import PayloadError

__all__ = ["FirstDay", "LastDay", "parse_day"]

#: ``from``: the first local day shown (YYYY-MM-DD); the page picks one when left out.
FirstDay = Annotated[str | None, Query(alias="from", description="First local day.")]
#: ``to``: the last local day shown, included.
LastDay = Annotated[str | None, Query(alias="to", description="Last local day.")]


def parse_day(
    text: str | None, field: str, *, error: type[PayloadError] = PayloadError
) -> date | None:
    """``text`` as a day, None when empty; ``error`` (an app's own) names ``field``."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise error(f"{field}: {text!r} is not a day; use YYYY-MM-DD", field=field) from None
