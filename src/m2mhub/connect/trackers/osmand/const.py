"""Constants of the OsmAnd protocol as Traccar serves it (https://www.traccar.org/osmand/)."""

from __future__ import annotations

from typing import Final

#: Traccar's port for the protocol; m2mhub's HTTP route may serve it anywhere.
DEFAULT_PORT: Final = 5055

#: Query and form ``speed`` is in knots (Traccar's decoder converts from "kn"; Traccar
#: Client computes it as m/s x 1.943844). The JSON body's ``coords.speed`` is in m/s.
KMH_PER_KNOT: Final = 1.852
KMH_PER_MS: Final = 3.6

#: A numeric timestamp below this is seconds, above it milliseconds (Traccar's rule:
#: Integer.MAX_VALUE, i.e. seconds up to 2038).
MAX_SECONDS_TIMESTAMP: Final = 2**31 - 1

#: Parameters beyond the known ones are kept as attributes, within these limits.
MAX_ATTRIBUTES: Final = 32
MAX_ATTRIBUTE_LENGTH: Final = 256
