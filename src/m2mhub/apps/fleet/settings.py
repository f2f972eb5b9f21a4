"""How trips, stops and events are told apart: one frozen settings object.

The defaults follow Traccar's report settings where it has one (``report.trip.*``:
minimal trip distance 500 m, minimal parking 300 s, no-data split 3600 s) with two
deliberate differences:

* a trip must reach *both* its minimal duration and its minimal distance (Traccar accepts
  either), so an engine running in the yard (long, no distance) and a burst of GPS drift
  (distance, seconds) are not trips; the minimal duration is 60 s instead of 300 s so a
  short hop between two deliveries still counts;
* motion starts at 5 km/h instead of Traccar's 0.01 knots: a parked tracker's fixes wander
  at 1-3 km/h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from m2mhub.apps.fleet.errors import FleetError
from m2mhub.connect.trackers.positions import FUEL_PCT, IGNITION
from m2mhub.core.geo import haversine_m


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedZone:
    """An area with its own speed limit: a circle (``center`` and ``radius_m``) or a polygon.

    Where zones overlap, the lowest limit applies; outside every zone the global
    :attr:`FleetSettings.overspeed_kmh` does.
    """

    name: str
    limit_kmh: float
    center: tuple[float, float] | None = None
    radius_m: float | None = None
    polygon: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        is_circle = self.center is not None and self.radius_m is not None
        if is_circle == bool(self.polygon):
            raise FleetError(
                f"speed_zones.{self.name}: give either center and radius_m, or a polygon "
                "of at least 3 [lat, lon] points",
                field=f"speed_zones.{self.name}",
            )
        if self.polygon and len(self.polygon) < 3:
            raise FleetError(
                f"speed_zones.{self.name}.polygon: give at least 3 [lat, lon] points",
                field=f"speed_zones.{self.name}.polygon",
            )
        if not self.limit_kmh > 0:
            raise FleetError(
                f"speed_zones.{self.name}.limit_kmh: give a limit above 0 km/h",
                field=f"speed_zones.{self.name}.limit_kmh",
            )

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point is inside the zone (on its edge counts for circles)."""
        if self.center is not None and self.radius_m is not None:
            return haversine_m(self.center[0], self.center[1], lat, lon) <= self.radius_m
        # Ray casting in the lat/lon plane: exact enough for zones of a few km.
        inside = False
        points = self.polygon
        for (lat1, lon1), (lat2, lon2) in zip(points, points[1:] + points[:1], strict=True):
            if (lat1 > lat) != (lat2 > lat):
                crossing = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
                if lon < crossing:
                    inside = not inside
        return inside


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    """Limits of trip, stop and event detection; times in milliseconds.

    Attributes:
        min_trip_duration_ms: a trip moves for at least this long, from its first to its
            last moving reading.
        min_trip_distance_m: and covers at least this distance.
        min_parking_ms: standing still at least this long ends a trip; shorter halts (a
            traffic light, a queue) stay inside the trip as idle time.
        motion_speed_kmh: a reading at or above this speed is moving.
        use_ignition: once a device has reported ``ignition``, motion is ignition on (so a
            trip runs from key on to key off); devices without it use speed alone.
        max_gap_ms: no data for longer than this splits a trip (the trip ends at the last
            reading before the gap) and counts as ``no data`` in utilization.
        gap_stop_radius_m: a stop goes on across such a gap when the vehicle is found
            within this distance of where it stood.
        idling_limit_ms: ignition on without moving for this long raises ``idling``.
        overspeed_kmh: the global speed limit; None raises no overspeed outside zones.
        speed_zones: areas with their own limits.
        min_overspeed_ms: the speed stays above the limit at least this long before
            ``overspeed`` is raised (a single fast fix is often GPS noise).
        fuel_key: the reading key of the fuel level.
        fuel_drop: a fall of the fuel level by at least this much (in the unit of
            ``fuel_key``) while standing raises ``fuel_drop``; None disables it.
        offline_after_ms: no data for longer than this raises ``offline``. Two hours by
            default because trackers in park mode report once an hour.
        jitter_m: while standing, positions within this distance of the last counted one
            add no distance (GPS wander of a parked vehicle).
        max_speed_kmh: a step faster than this between two fixes (or two device odometer
            values) is an impossible jump and adds no distance.
        engine_key: the boolean that says the engine (or a machine's runtime input) runs;
            engine hours count its on-time when the device has no ``runtime_h`` counter.
    """

    min_trip_duration_ms: int = 60_000
    min_trip_distance_m: float = 500.0
    min_parking_ms: int = 300_000
    motion_speed_kmh: float = 5.0
    use_ignition: bool = True
    max_gap_ms: int = 3_600_000
    gap_stop_radius_m: float = 200.0
    idling_limit_ms: int = 300_000
    overspeed_kmh: float | None = None
    speed_zones: tuple[SpeedZone, ...] = ()
    min_overspeed_ms: int = 10_000
    fuel_key: str = FUEL_PCT
    fuel_drop: float | None = 10.0
    offline_after_ms: int = 7_200_000
    jitter_m: float = 30.0
    max_speed_kmh: float = 300.0
    engine_key: str = IGNITION

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                raise FleetError(
                    f"{item.name}: {value!r} is not a usable limit; give a number >= 0",
                    field=item.name,
                )
        for name in ("max_gap_ms", "offline_after_ms", "max_speed_kmh"):
            if getattr(self, name) <= 0:
                raise FleetError(f"{name}: give a value above 0", field=name)

    def speed_limit(self, lat: float, lon: float) -> tuple[float, str] | None:
        """The limit at a point and the zone it comes from ("" for the global limit)."""
        limits = [(float(z.limit_kmh), z.name) for z in self.speed_zones if z.contains(lat, lon)]
        if limits:
            return min(limits)
        if self.overspeed_kmh is None:
            return None
        return float(self.overspeed_kmh), ""


__all__ = ["FleetSettings", "SpeedZone"]
