"""Errors of the OsmAnd package."""

from __future__ import annotations

from m2mhub.core.errors import PayloadError


class OsmAndError(PayloadError):
    """A request that is not an OsmAnd position; ``field`` names the parameter at fault."""

    code = "invalid_osmand"
