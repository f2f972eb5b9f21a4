"""A delivery van's day as its tracker reports it, built step by step on the WGS 84 ellipsoid.

Positions move along a bearing with the ellipsoid's local radii of curvature, so the
distance driven (``Van.driven_m``) is the true one to well under a metre per kilometre;
the code under test measures it with a sphere and must stay within its documented 0.5 %.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from zoneinfo import ZoneInfo

from m2mhub.connect.trackers.positions import FUEL_PCT, IGNITION, LAT, LON, SPEED_KMH
from m2mhub.core.values import Value

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# WGS 84 semi-major axis and flattening.
_A = 6_378_137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)


def local_ms(text: str, zone: ZoneInfo = AMSTERDAM) -> int:
    """``2026-06-10T07:00`` in ``zone`` -> UTC milliseconds."""
    return round(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of latitude and of longitude at ``lat`` on WGS 84."""
    phi = math.radians(lat)
    w = 1 - _E2 * math.sin(phi) ** 2
    meridian = _A * (1 - _E2) / w**1.5
    normal = _A / math.sqrt(w)
    return meridian * math.pi / 180, normal * math.cos(phi) * math.pi / 180


class Van:
    """A van whose tracker reports ``(ts, values)``; each method moves time forward."""

    def __init__(self, ts: int, lat: float, lon: float, *, seed: int = 7) -> None:
        self.ts, self.lat, self.lon = ts, lat, lon
        self.ignition = False
        self.fuel = 62.0
        self.driven_m = 0.0
        self.readings: list[tuple[int, dict[str, Value]]] = []
        self._rng = random.Random(seed)
        self.report(speed=0.0)

    def _move(self, metres: float, bearing_deg: float) -> None:
        per_lat, per_lon = metres_per_degree(self.lat)
        b = math.radians(bearing_deg)
        self.lat += metres * math.cos(b) / per_lat
        self.lon += metres * math.sin(b) / per_lon
        self.driven_m += metres

    def report(self, *, speed: float, jitter_m: float = 0.0) -> None:
        """A reading now; standing fixes wander up to ``jitter_m`` around the true place."""
        per_lat, per_lon = metres_per_degree(self.lat)
        dy = self._rng.uniform(-jitter_m, jitter_m)
        dx = self._rng.uniform(-jitter_m, jitter_m)
        self.readings.append(
            (
                self.ts,
                {
                    LAT: round(self.lat + dy / per_lat, 7),
                    LON: round(self.lon + dx / per_lon, 7),
                    SPEED_KMH: speed,
                    IGNITION: self.ignition,
                    FUEL_PCT: round(self.fuel, 1),
                },
            )
        )

    def switch(self, ignition: bool) -> None:
        """The driver turns the key a second later."""
        self.ts += SECOND
        self.ignition = ignition
        self.report(speed=0.0, jitter_m=3.0)

    def stand(self, minutes: float, *, every_s: int, jitter_m: float = 10.0) -> None:
        """Standing (parked, delivering, idling or in traffic) with wandering fixes."""
        for _ in range(round(minutes * 60 / every_s)):
            self.ts += every_s * SECOND
            self.report(speed=0.0, jitter_m=jitter_m)

    def drive(self, minutes: float, kmh: float, bearing_deg: float, *, every_s: int = 10) -> None:
        """Driving straight at a steady speed, a fix every ``every_s`` seconds."""
        for _ in range(round(minutes * 60 / every_s)):
            self.ts += every_s * SECOND
            self._move(kmh / 3.6 * every_s, bearing_deg)
            self.fuel -= 0.004 * every_s * kmh / 50
            self.report(speed=kmh)

    def drive_unseen(self, minutes: float, kmh: float, bearing_deg: float) -> None:
        """Driving while the tracker is unpowered: no readings."""
        self.ts += round(minutes * MINUTE)
        self._move(kmh / 3.6 * minutes * 60, bearing_deg)

    def wait_unseen(self, minutes: float) -> None:
        self.ts += round(minutes * MINUTE)


class VanDay:
    """The reference day, with what happened noted as it is built (times UTC ms)."""

    def __init__(self) -> None:
        van = Van(local_ms("2026-06-10T00:00"), 52.3702, 4.8952)
        self.van = van
        van.stand(7 * 60, every_s=1800)  # parked overnight at the depot, park-mode reports
        self.depot_leave = van.ts + SECOND
        van.switch(True)
        van.stand(2, every_s=30, jitter_m=3)  # warming up
        start = van.driven_m
        van.drive(10, 50, 90)
        self.traffic_stop = van.ts
        van.stand(1.5, every_s=10, jitter_m=3)  # red light, engine running
        van.drive(10, 50, 90)
        self.trip1_m = van.driven_m - start
        self.arrive_a = van.ts + SECOND
        self.place_a = (van.lat, van.lon)
        van.switch(False)
        van.stand(15, every_s=60)  # delivery
        self.leave_a = van.ts + SECOND
        van.switch(True)
        van.stand(8, every_s=30, jitter_m=3)  # idling too long
        self.idle_a_start = self.leave_a
        start = van.driven_m
        van.drive(10, 60, 0)
        self.overspeed_start = van.ts + 10 * SECOND
        van.drive(2, 120, 0)
        van.drive(5, 60, 0)
        self.trip2_m = van.driven_m - start
        self.gap_start = van.ts
        van.drive_unseen(20, 60, 0)  # the tracker lost power
        van.ignition = False
        van.wait_unseen(55)
        self.gap_m = 20_000.0
        self.gap_end = van.ts
        van.report(speed=0.0, jitter_m=10)
        van.stand(10, every_s=60)
        self.leave_b = van.ts + SECOND
        van.switch(True)
        start = van.driven_m
        van.drive(25, 50, 270)
        self.trip3_m = van.driven_m - start
        self.arrive_yard = van.ts + SECOND
        van.switch(False)
        van.stand(20, every_s=60)
        # Parked overnight; 25 % of the tank is siphoned off around 22:00 (theft).
        midnight = local_ms("2026-06-11T00:00")
        self.theft = 0
        while van.ts + 1800 * SECOND < midnight:
            van.ts += 1800 * SECOND
            if van.ts >= local_ms("2026-06-10T22:00") and not self.theft:
                van.fuel -= 25
                self.theft = van.ts
            van.report(speed=0.0, jitter_m=10)
        van.ts = midnight
        van.report(speed=0.0, jitter_m=10)
        self.readings = van.readings
