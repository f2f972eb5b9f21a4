"""Opaque cursors: clients pass back ``next_cursor`` unchanged to get the next page."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from m2mhub.core.errors import PayloadError


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def decode_cursor(cursor: str, type_: Any) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=type_)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise PayloadError(
            "cursor: not a cursor this API issued; pass next_cursor back unchanged",
            field="cursor",
        ) from None
