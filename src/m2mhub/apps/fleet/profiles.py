"""Which devices are vehicles: a device type opts in with a *fleet profile*.

A profile names a device type, the :class:`~m2mhub.apps.fleet.settings.FleetSettings`
that differ from the defaults (``{"overspeed_kmh": 110}``) and the time zone its days
are counted in. Every device of the type is then processed as it reports; deleting the
profile stops processing and keeps what was computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from m2mhub.apps.fleet.errors import FleetError
from m2mhub.apps.fleet.settings import FleetSettings

#: The names a profile's settings may override.
SETTING_NAMES = frozenset(item.name for item in fields(FleetSettings))


class FleetProfile(msgspec.Struct, frozen=True):
    """A device type whose devices are vehicles or assets, with its detection settings."""

    type_id: int
    tenant_id: int
    type_name: str
    #: Only the settings that differ from :class:`FleetSettings`' defaults.
    overrides: dict[str, Any]
    timezone: str
    updated_ms: int

    @property
    def settings(self) -> FleetSettings:
        """The full settings: defaults with the overrides applied."""
        return fleet_settings(self.overrides)

    @property
    def zone(self) -> ZoneInfo:
        """The zone local days are counted in."""
        return time_zone(self.timezone)


def fleet_settings(overrides: Mapping[str, Any]) -> FleetSettings:
    """:class:`FleetSettings` from a mapping of overrides; errors name the setting."""
    unknown = sorted(set(overrides) - SETTING_NAMES)
    if unknown:
        raise FleetError(
            f"settings.{unknown[0]}: not a fleet setting; use one of "
            f"{', '.join(sorted(SETTING_NAMES))} (docs/fleet.md)",
            field=f"settings.{unknown[0]}",
        )
    try:
        return msgspec.convert(dict(overrides), FleetSettings)
    except msgspec.ValidationError as exc:
        # "Expected `float | null`, got `str` - at `$.overspeed_kmh`": name the field first.
        text = str(exc)
        where = text.rpartition("at `$.")[2].rstrip("`") if "at `$." in text else ""
        field = f"settings.{where}" if where else "settings"
        raise FleetError(f"{field}: {text.partition(' - at ')[0]}", field=field) from None


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Amsterdam``); an error names the field."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FleetError(
            f"timezone: {name!r} is not a time zone; use an IANA name like Europe/Amsterdam or UTC",
            field="timezone",
        ) from None


__all__ = ["SETTING_NAMES", "FleetProfile", "fleet_settings", "time_zone"]
