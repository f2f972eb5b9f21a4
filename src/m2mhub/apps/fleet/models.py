"""What the fleet app derives from a vehicle's readings: trips, stops, events, day summaries.

All are frozen msgspec Structs; times are UTC milliseconds, distances metres, speeds km/h.
Trips, stops and events carry a tag (``"type": "trip"``) so a list of them round-trips
through JSON or MessagePack as :data:`Output`.
"""

from __future__ import annotations

import enum
from datetime import date

import msgspec

from m2mhub.core.values import Value


class Trip(msgspec.Struct, frozen=True, tag="trip"):
    """A journey from a start place to an end place.

    ``driving_ms`` is the time at or above the motion speed, ``idle_ms`` the time standing
    inside the trip (traffic, engine running before setting off); they add up to
    ``duration_ms``. ``avg_speed_kmh`` is door to door: distance over duration.
    """

    start_ts: int
    end_ts: int
    start_lat: float | None
    start_lon: float | None
    end_lat: float | None
    end_lon: float | None
    distance_m: float
    duration_ms: int
    max_speed_kmh: float
    avg_speed_kmh: float
    driving_ms: int
    idle_ms: int
    start_odometer_m: float
    end_odometer_m: float


class Stop(msgspec.Struct, frozen=True, tag="stop"):
    """A vehicle standing at one place (parked, delivering) between two trips."""

    start_ts: int
    end_ts: int
    lat: float | None
    lon: float | None
    duration_ms: int


class Activity(enum.StrEnum):
    """What a vehicle is doing at a reading.

    ``idle`` needs the ignition: a device that does not report it is ``off`` when standing.
    """

    DRIVING = "driving"  # at or above the motion speed
    IDLE = "idle"  # ignition on, standing
    OFF = "off"


class EventKind(enum.StrEnum):
    """What a :class:`FleetEvent` says happened."""

    IGNITION_ON = "ignition_on"
    IGNITION_OFF = "ignition_off"
    OVERSPEED = "overspeed"
    IDLING = "idling"
    FUEL_DROP = "fuel_drop"
    OFFLINE = "offline"


class FleetEvent(msgspec.Struct, frozen=True, tag="event"):
    """Something that happened to a vehicle, at the instant it was established.

    ``values`` by kind: ``lat``/``lon`` where known; overspeed ``speed_kmh``, ``limit_kmh``,
    ``zone`` ("" for the global limit), ``start_ts``; idling ``start_ts``; fuel drop
    ``from``, ``to``, ``drop``; offline ``last_seen_ts``.
    """

    kind: EventKind
    ts: int
    values: dict[str, Value] = msgspec.field(default_factory=dict)


#: What a detector emits, in the order it decides it.
Output = Trip | Stop | FleetEvent


class RoutePoint(msgspec.Struct, frozen=True):
    """One position of a route, for maps and GPX/KML export."""

    ts: int
    lat: float
    lon: float
    altitude_m: float | None = None
    speed_kmh: float | None = None
    heading_deg: float | None = None


class DaySummary(msgspec.Struct, frozen=True):
    """One vehicle's local calendar day.

    ``driving_ms + idle_ms + off_ms + no_data_ms`` is the part of the day its readings
    cover (23 or 25 hours on a daylight-saving day); ``distance_m`` is the filtered
    odometer's increase over the day, from ``odometer_start_m`` to ``odometer_end_m``.
    """

    day: date
    distance_m: float
    max_speed_kmh: float
    driving_ms: int
    idle_ms: int
    off_ms: int
    no_data_ms: int
    engine_ms: int
    odometer_start_m: float
    odometer_end_m: float


class Utilization(msgspec.Struct, frozen=True):
    """Use of an asset, or of a group of assets summed, over a day or an ISO week.

    ``period`` is ``2026-03-29`` for a day, ``2026-W13`` for a week; ``assets`` counts the
    assets summed (1 for a single asset).
    """

    asset: str
    period: str
    driving_ms: int
    idle_ms: int
    off_ms: int
    no_data_ms: int
    distance_m: float
    assets: int = 1

    @property
    def used_ms(self) -> int:
        """Time in use: driving plus idling (engine on)."""
        return self.driving_ms + self.idle_ms

    @property
    def idle_share(self) -> float:
        """Idling as a share of the time in use, 0 when unused."""
        return self.idle_ms / self.used_ms if self.used_ms else 0.0


__all__ = [
    "Activity",
    "DaySummary",
    "EventKind",
    "FleetEvent",
    "Output",
    "RoutePoint",
    "Stop",
    "Trip",
    "Utilization",
]
