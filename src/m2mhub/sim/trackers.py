"""Asset trackers on construction equipment: location, engine hours, battery."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Final

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import SimModel
from m2mhub.sim.geo import LatLon, centroid, contains, haversine_m, interpolate, offset_m
from m2mhub.sim.keys import BATTERY_PCT, IGNITION, LAT, LON, RUNTIME_H

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]

#: A made-up construction site of about 400 m by 300 m, near the vehicles' depot.
DEFAULT_SITE: Final = (
    (45.7600, 4.9200),
    (45.7600, 4.9251),
    (45.7627, 4.9251),
    (45.7627, 4.9200),
)


class TrackerParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`AssetTracker` (see its docstring)."""

    site: tuple[tuple[float, float], ...] = DEFAULT_SITE
    work_radius_m: Positive = 80.0
    work_hours: tuple[float, float] = (7.0, 17.0)
    works_weekends: bool = False
    duty_pct: Percent = 65.0
    runtime_start_h: NonNegative | None = None
    battery_start_pct: Percent = 95.0
    battery_drain_pct_h: NonNegative = 0.1
    charges_from_engine: bool = True
    leaves_site_at_h: float | None = None
    leaves_to: tuple[float, float] | None = None
    transport_kmh: Positive = 45.0

    def __post_init__(self) -> None:
        if len(self.site) < 3:
            raise ValueError("site: give at least three [lat, lon] corners")
        if not contains(self.site, centroid(self.site)):
            raise ValueError("site: the middle of the polygon must be inside it")


class AssetTracker(SimModel[TrackerParams]):
    """A battery GPS tracker on a piece of construction equipment (an excavator, a loader).

    During ``work_hours`` (weekdays unless ``works_weekends``) the machine runs
    about ``duty_pct`` of the time in spells of 10-60 minutes, moving slowly
    around within ``work_radius_m`` of the middle of its ``site`` polygon;
    ``runtime_h`` counts engine hours. The battery drains by
    ``battery_drain_pct_h`` and charges from the engine while it runs (unless
    ``charges_from_engine`` is false, for a tracker on a trailer). Incident:

    - ``leaves_site_at_h``: at that time after the origin the equipment is
      loaded on a truck and driven at ``transport_kmh`` to ``leaves_to``
      (about 12 km north-east by default), where it stays, engine off, outside
      the site polygon.
    """

    keys: ClassVar[tuple[str, ...]] = (LAT, LON, RUNTIME_H, BATTERY_PCT, IGNITION)

    def _start(self, t_ms: int) -> None:
        p = self.params
        rng = self.process
        self.center = centroid(p.site)
        self.position: LatLon = offset_m(self.center, rng.uniform(-20, 20), rng.uniform(-20, 20))
        start = p.runtime_start_h
        self.runtime_h = start if start is not None else rng.uniform(300, 6000)
        self.battery_pct = p.battery_start_pct
        self.ignition = False
        self._spell_until_ms = t_ms
        self.left_site = False
        self._destination = p.leaves_to or offset_m(self.center, 8_500, 8_500)
        self._transport_from: LatLon | None = None
        self._transport_m = 0.0

    def _advance(self, t_ms: int, dt_s: float) -> None:
        p = self.params
        rng = self.process
        if self._is_due(p.leaves_site_at_h, t_ms):
            self._transport(dt_s)
        elif self._is_work_time(t_ms):
            if t_ms >= self._spell_until_ms:  # the operator starts or stops the engine
                self.ignition = rng.random() < p.duty_pct / 100
                self._spell_until_ms = t_ms + int(rng.uniform(10, 60) * 60_000)
            if self.ignition:
                self._wander(dt_s)
        else:
            self.ignition = False
        if self.ignition:
            self.runtime_h += dt_s / 3600
        charge = 10.0 if self.ignition and p.charges_from_engine else 0.0
        self.battery_pct += (charge - p.battery_drain_pct_h) * dt_s / 3600
        self.battery_pct = min(100.0, max(0.0, self.battery_pct))

    def _is_work_time(self, t_ms: int) -> bool:
        if self.local.is_weekend(t_ms) and not self.params.works_weekends:
            return False
        start, end = self.params.work_hours
        return start <= self.local.hour(t_ms) < end

    def _wander(self, dt_s: float) -> None:
        """Creep about the work area at walking pace, pulled back toward its middle."""
        rng = self.process
        step = rng.uniform(0, 1.0) * dt_s  # up to 1 m/s
        angle = rng.uniform(0, 2 * math.pi)
        moved = offset_m(self.position, step * math.cos(angle), step * math.sin(angle))
        if haversine_m(moved, self.center) <= self.params.work_radius_m:
            self.position = moved

    def _transport(self, dt_s: float) -> None:
        self.ignition = False
        if self._transport_from is None:
            self._transport_from = self.position
        total = haversine_m(self._transport_from, self._destination)
        self._transport_m = min(total, self._transport_m + self.params.transport_kmh / 3.6 * dt_s)
        fraction = self._transport_m / total if total > 0 else 1.0
        self.position = interpolate(self._transport_from, self._destination, fraction)
        self.left_site = not contains(self.params.site, self.position)

    def _read(self, ts_ms: int) -> dict[str, Value]:
        rng = self.noise
        lat, lon = offset_m(self.position, rng.gauss(0, 3), rng.gauss(0, 3))
        return {
            LAT: round(lat, 6),
            LON: round(lon, 6),
            RUNTIME_H: round(self.runtime_h, 2),
            BATTERY_PCT: round(self.battery_pct, 1),
            IGNITION: self.ignition,
        }
