"""Built-in vehicle routes: made-up road loops, stored as waypoints (no map data needed)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class Waypoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A point of a route; ``limit_kmh`` applies to the leg that starts here.

    ``stop_min`` > 0 makes vehicles stop there (a delivery) for about that long.
    """

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    limit_kmh: Positive = 50.0
    stop_min: NonNegative = 0.0


def _route(*points: tuple[float, float, float, float]) -> tuple[Waypoint, ...]:
    return tuple(Waypoint(lat, lon, limit, stop) for lat, lon, limit, stop in points)


#: A loop of about 33 km on the east side of a city: a depot (the first point, where
#: vehicles park and refuel), urban streets at 50 km/h, arterials at 70, a 110 km/h
#: expressway stretch and three delivery stops. The coordinates are invented.
EAST_LOOP: Final = _route(
    (45.74000, 4.95000, 30, 0),  # depot yard
    (45.74270, 4.95515, 50, 0),
    (45.74809, 4.96546, 50, 0),
    (45.74899, 4.97577, 50, 6),  # customer A
    (45.75619, 4.98350, 70, 0),
    (45.77148, 4.98866, 70, 0),
    (45.78497, 4.98350, 110, 0),  # expressway on-ramp
    (45.81644, 4.95644, 110, 0),
    (45.82993, 4.91134, 110, 0),
    (45.82094, 4.86624, 70, 0),  # exit
    (45.80745, 4.84691, 50, 0),
    (45.79846, 4.84047, 50, 8),  # customer B
    (45.78497, 4.84434, 50, 0),
    (45.77148, 4.85980, 70, 0),
    (45.76248, 4.88557, 70, 0),
    (45.75349, 4.91134, 50, 5),  # customer C
    (45.74719, 4.93067, 50, 0),
    (45.74270, 4.94356, 30, 0),
)

#: A short loop of about 6 km through town streets, with two stops.
TOWN_LOOP: Final = _route(
    (45.74000, 4.95000, 30, 0),  # depot yard
    (45.74360, 4.94100, 50, 0),
    (45.75050, 4.93600, 50, 4),
    (45.75700, 4.94300, 50, 0),
    (45.75900, 4.95400, 50, 0),
    (45.75400, 4.96300, 50, 6),
    (45.74700, 4.96200, 50, 0),
    (45.74250, 4.95600, 30, 0),
)

ROUTES: Final[dict[str, tuple[Waypoint, ...]]] = {
    "east-loop": EAST_LOOP,
    "town-loop": TOWN_LOOP,
}
