"""Vehicles driving a route of waypoints: position, speed, heading, ignition, fuel, odometer."""

from __future__ import annotations

import enum
import math
from typing import Annotated, ClassVar, Final, NamedTuple

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import SimModel
from m2mhub.sim.geo import LatLon, bearing_deg, haversine_m, interpolate, offset_m
from m2mhub.sim.keys import FUEL_PCT, HEADING_DEG, IGNITION, LAT, LON, ODOMETER_M, SPEED_KMH
from m2mhub.sim.routes import ROUTES, Waypoint

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]

# Comfortable acceleration and braking of a loaded van, m/s².
_ACCEL: Final = 1.2
_BRAKE: Final = 2.0
# Siphoning a tank, litres per second (a hand pump moves about 5 l/min).
_THEFT_L_S: Final = 5 / 60
# Above this speed drag dominates: each 10 km/h more costs about 4 % more fuel.
_AERO_FROM_KMH: Final = 90.0


class VehicleParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`Vehicle` (see its docstring)."""

    route: str | tuple[Waypoint, ...] = "east-loop"
    shift_hours: tuple[float, float] = (7.5, 16.5)
    works_weekends: bool = False
    tank_l: Positive = 80.0
    fuel_start_pct: Percent | None = None
    consumption_l_100km: Positive = 9.5
    idle_l_h: NonNegative = 0.8
    refuel_below_pct: Percent = 30.0
    odometer_start_km: NonNegative | None = None
    driver_factor: tuple[float, float] = (0.85, 1.0)
    speeding_at_h: float | None = None
    speeding_minutes: Positive = 10.0
    speeding_factor: Positive = 1.45
    fuel_theft_at_h: float | None = None
    fuel_theft_l: Positive = 35.0

    def __post_init__(self) -> None:
        if isinstance(self.route, str):
            if self.route not in ROUTES:
                raise ValueError(
                    f"route: unknown route {self.route!r}; use one of {', '.join(ROUTES)} "
                    "or a list of waypoints"
                )
        elif len(self.route) < 2:
            raise ValueError("route: give at least two waypoints")
        low, high = self.driver_factor
        if not 0 < low <= high <= 1:
            raise ValueError("driver_factor: give [low, high] with 0 < low <= high <= 1")

    @property
    def waypoints(self) -> tuple[Waypoint, ...]:
        return ROUTES[self.route] if isinstance(self.route, str) else self.route


class _Leg(NamedTuple):
    start: LatLon
    end: LatLon
    length_m: float
    heading_deg: float
    limit_ms: float  # m/s


class Mode(enum.Enum):
    PARKED = "parked"
    DRIVING = "driving"
    STOPPED = "stopped"


class _Stop(enum.Enum):
    PARK = "park"  # back at the depot after the shift
    DELIVERY = "delivery"  # engine off for a few minutes
    LIGHT = "light"  # traffic light or junction, engine on


class Vehicle(SimModel[VehicleParams]):
    """A delivery van driving laps of a route during its shift, parked at the depot otherwise.

    On working days (weekdays unless ``works_weekends``) it leaves the depot
    (the first waypoint) a few minutes after the start of ``shift_hours``,
    drives laps keeping a random fraction (``driver_factor``) of each leg's
    speed limit, accelerating and braking plausibly, stops at delivery
    waypoints and sometimes at junctions, and parks at the depot when it gets
    there after the shift; it refuels there below ``refuel_below_pct``. The
    driver takes a lunch break at the first delivery stop after noon. Fuel
    burns per kilometre (more above 90 km/h) and while idling; the odometer
    counts the distance driven. Incidents:

    - ``speeding_at_h``: from that many hours after the origin, the next time
      the vehicle is on the fastest legs of its route it drives at
      ``speeding_factor`` times the limit (110 -> about 160 km/h) for
      ``speeding_minutes`` of driving;
    - ``fuel_theft_at_h``: ``fuel_theft_l`` litres are siphoned off from that
      time, a few litres a minute, whatever the vehicle is doing.
    """

    tick_ms: ClassVar[int] = 10_000
    keys: ClassVar[tuple[str, ...]] = (
        LAT,
        LON,
        SPEED_KMH,
        HEADING_DEG,
        IGNITION,
        FUEL_PCT,
        ODOMETER_M,
    )

    def _start(self, t_ms: int) -> None:
        p = self.params
        points = p.waypoints
        self.legs: list[_Leg] = []
        for i, a in enumerate(points):
            b = points[(i + 1) % len(points)]
            start, end = (a.lat, a.lon), (b.lat, b.lon)
            length = max(1.0, haversine_m(start, end))
            self.legs.append(_Leg(start, end, length, bearing_deg(start, end), a.limit_kmh / 3.6))
        self._fastest_ms = max(leg.limit_ms for leg in self.legs)
        rng = self.process
        fuel_pct = p.fuel_start_pct if p.fuel_start_pct is not None else rng.uniform(40, 95)
        self.fuel_l = p.tank_l * fuel_pct / 100
        start_km = p.odometer_start_km
        self.odometer_m = 1000 * (start_km if start_km is not None else rng.uniform(20e3, 150e3))
        self.mode = Mode.PARKED
        self.ignition = False
        self.speed_ms = 0.0
        self.leg = 0
        self.along_m = 0.0
        self.heading_deg = self.legs[0].heading_deg
        self._factor = 1.0
        self._stop: _Stop | None = None
        self._stop_until_ms = 0
        self._shift_day = -1
        self._jitter_day = -1
        self._jitter_h = 0.0
        self._lunch_day = -1
        self.speeding = False
        self._speeding_left_s: float | None = None  # None: episode not started yet
        self._theft_left_l = p.fuel_theft_l if p.fuel_theft_at_h is not None else 0.0

    @property
    def limit_kmh(self) -> float:
        """The speed limit of the leg the vehicle is on."""
        return self.legs[self.leg].limit_ms * 3.6

    @property
    def position(self) -> LatLon:
        leg = self.legs[self.leg]
        return interpolate(leg.start, leg.end, min(1.0, self.along_m / leg.length_m))

    def _is_shift(self, t_ms: int) -> bool:
        if self.local.is_weekend(t_ms) and not self.params.works_weekends:
            return False
        start, end = self.params.shift_hours
        hour = self.local.hour(t_ms)
        day = self.local.day(t_ms)
        if day != self._jitter_day:  # leave a few minutes late, differently every day
            self._jitter_day = day
            self._jitter_h = self.process.uniform(0, 0.33)
        return start + self._jitter_h <= hour < end

    def _advance(self, t_ms: int, dt_s: float) -> None:
        p = self.params
        if self.mode is Mode.PARKED:
            if self._is_shift(t_ms) and self.local.day(t_ms) != self._shift_day:
                self._shift_day = self.local.day(t_ms)
                self.mode, self.ignition = Mode.DRIVING, True
                self._begin_leg(0, t_ms)
        elif self.mode is Mode.STOPPED:
            if t_ms >= self._stop_until_ms:
                self.mode, self.ignition = Mode.DRIVING, True
        else:
            self._drive(t_ms, dt_s)
        if self.ignition and self.speed_ms < 1:
            self.fuel_l -= p.idle_l_h * dt_s / 3600
        if self._theft_left_l > 0 and self._is_due(p.fuel_theft_at_h, t_ms):
            taken = min(self._theft_left_l, _THEFT_L_S * dt_s, self.fuel_l)
            self.fuel_l -= taken
            self._theft_left_l -= taken
        self.fuel_l = max(0.0, self.fuel_l)

    def _begin_leg(self, index: int, t_ms: int) -> None:
        self.leg = index
        self.along_m = 0.0
        self._factor = self.process.uniform(*self.params.driver_factor)
        end = (index + 1) % len(self.legs)
        waypoint = self.params.waypoints[end]
        if end == 0 and not self._is_shift(t_ms):
            self._stop = _Stop.PARK
        elif waypoint.stop_min > 0:
            self._stop = _Stop.DELIVERY
        elif self.legs[index].limit_ms <= 50 / 3.6 and self.process.random() < 0.25:
            self._stop = _Stop.LIGHT
        else:
            self._stop = None

    def _target_ms(self, t_ms: int, dt_s: float) -> float:
        p = self.params
        limit = self.legs[self.leg].limit_ms
        if self._speeding_left_s is None:
            if self._is_due(p.speeding_at_h, t_ms) and limit >= self._fastest_ms:
                self._speeding_left_s = p.speeding_minutes * 60
                self.speeding = True
        elif self.speeding:
            self._speeding_left_s -= dt_s
            if self._speeding_left_s <= 0:
                self.speeding = False
                self.speed_ms = min(self.speed_ms, limit)
        return limit * (p.speeding_factor if self.speeding else self._factor)

    def _drive(self, t_ms: int, dt_s: float) -> None:
        leg = self.legs[self.leg]
        target = self._target_ms(t_ms, dt_s)
        remaining = leg.length_m - self.along_m
        if self._stop is not None:  # brake in time for the stop
            target = min(target, max(2.0, math.sqrt(2 * _BRAKE * remaining)))
        v0 = self.speed_ms
        v1 = max(0.0, v0 + max(-_BRAKE * dt_s, min(_ACCEL * dt_s, target - v0)))
        distance = (v0 + v1) / 2 * dt_s
        if self._stop is not None and distance >= remaining:
            distance, v1 = remaining, 0.0
        self.speed_ms = v1
        self.heading_deg = leg.heading_deg
        self._travel(distance)
        self.along_m += distance
        while self.along_m >= self.legs[self.leg].length_m:
            overflow = self.along_m - self.legs[self.leg].length_m
            stop = self._stop
            self._arrive(t_ms)
            self._begin_leg((self.leg + 1) % len(self.legs), t_ms)
            if stop is not None:
                break
            self.along_m = overflow
            self.speed_ms = min(self.speed_ms, self.legs[self.leg].limit_ms)

    def _travel(self, distance_m: float) -> None:
        p = self.params
        speed_kmh = self.speed_ms * 3.6
        drag = 1 + max(0.0, speed_kmh - _AERO_FROM_KMH) * 0.004
        self.fuel_l -= distance_m / 100_000 * p.consumption_l_100km * drag
        self.odometer_m += distance_m

    def _arrive(self, t_ms: int) -> None:
        """Reached the end of the current leg: stop there if planned."""
        p = self.params
        end = (self.leg + 1) % len(self.legs)
        if end == 0 and self.fuel_l < p.tank_l * p.refuel_below_pct / 100:
            self.fuel_l = p.tank_l
        if self._stop is None:
            return
        self.speed_ms = 0.0
        if self._stop is _Stop.PARK:
            self.mode, self.ignition = Mode.PARKED, False
        elif self._stop is _Stop.DELIVERY:
            minutes = p.waypoints[end].stop_min * self.process.uniform(0.6, 1.6)
            day = self.local.day(t_ms)
            if day != self._lunch_day and self.local.hour(t_ms) >= 12:  # the driver's lunch
                self._lunch_day = day
                minutes += self.process.uniform(30, 50)
            self.mode, self.ignition = Mode.STOPPED, False
            self._stop_until_ms = t_ms + int(minutes * 60_000)
        else:
            self.mode = Mode.STOPPED
            self._stop_until_ms = t_ms + int(self.process.uniform(15, 75) * 1000)

    def _read(self, ts_ms: int) -> dict[str, Value]:
        rng = self.noise
        lat, lon = self.position
        moving = self.speed_ms > 0
        speed, heading = 0.0, self.heading_deg
        if moving:  # trackers hold the last fix while stationary
            lat, lon = offset_m((lat, lon), rng.gauss(0, 2), rng.gauss(0, 2))
            speed = max(0.0, self.speed_ms * 3.6 + rng.gauss(0, 0.8))
            heading = (heading + rng.gauss(0, 1.5)) % 360
        fuel_pct = 100 * self.fuel_l / self.params.tank_l + rng.gauss(0, 0.4)
        return {
            LAT: round(lat, 6),
            LON: round(lon, 6),
            SPEED_KMH: round(speed, 1),
            HEADING_DEG: round(heading, 1),
            IGNITION: self.ignition,
            FUEL_PCT: round(min(100.0, max(0.0, fuel_pct)), 1),
            ODOMETER_M: round(self.odometer_m),
        }
