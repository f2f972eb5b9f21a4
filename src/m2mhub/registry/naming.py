"""What names and ids may look like, checked in one place."""

from __future__ import annotations

import re
from typing import Final

from m2mhub.core.errors import PayloadError

# Device ids appear in MQTT topics and URLs: no '/', '+', '#', spaces.
DEVICE_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# Telemetry keys: letters, digits and _ . - (e.g. "gps.lat", "energy_kwh").
TELEMETRY_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
SLUG: Final = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
MAX_NAME: Final = 128


def check_device_id(value: str, *, field: str = "id") -> str:
    if not DEVICE_ID.match(value):
        raise PayloadError(
            f"{field}: {value!r} is not a valid device id; use 1-64 letters, digits, "
            "'_', '.', '-', starting with a letter or digit",
            field=field,
        )
    return value


def check_key(value: str, *, field: str = "key") -> str:
    if not TELEMETRY_KEY.match(value):
        raise PayloadError(
            f"{field}: {value!r} is not a valid key; use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or '_'",
            field=field,
        )
    return value


def check_name(value: str, *, field: str = "name") -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise PayloadError(f"{field}: give 1-{MAX_NAME} printable characters", field=field)
    return value


def check_path_name(value: str, *, field: str = "name") -> str:
    """A name that appears in URLs (groups, assets): printable, no '/'."""
    value = check_name(value, field=field)
    if "/" in value:
        raise PayloadError(f"{field}: {value!r} may not contain '/'", field=field)
    return value


def check_slug(value: str, *, field: str = "slug") -> str:
    if not SLUG.match(value):
        raise PayloadError(
            f"{field}: {value!r} is not a valid slug; use lower-case letters, digits and '-'",
            field=field,
        )
    return value
