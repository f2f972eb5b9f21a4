"""The OsmAnd HTTP protocol of phone tracking apps (OsmAnd, Traccar Client).

Stateless: every request names its device. The server answers 200 to a decoded
position and 400 to an :class:`OsmAndError`.
"""

from m2mhub.connect.trackers.osmand.const import DEFAULT_PORT
from m2mhub.connect.trackers.osmand.decoder import (
    Position,
    decode_json,
    decode_params,
    decode_request,
)
from m2mhub.connect.trackers.osmand.errors import OsmAndError
from m2mhub.connect.trackers.osmand.readings import to_values

__all__ = [
    "DEFAULT_PORT",
    "OsmAndError",
    "Position",
    "decode_json",
    "decode_params",
    "decode_request",
    "to_values",
]
