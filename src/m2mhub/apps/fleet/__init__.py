"""Fleet telematics: trips and stops, odometer and engine hours, events, utilization, reports.

The pure core: it turns a vehicle's readings (``(ts_ms, values)`` with the keys of
:mod:`m2mhub.connect.trackers.positions`) into trips, stops and events, day summaries and
utilization, and writes them as CSV, GPX and KML. Storage, the bus and the API wire it up.

::

    detection = detect(readings, FleetSettings(overspeed_kmh=100))
    trips = [o for o in detection.outputs if isinstance(o, Trip)]
    days = summarize_days(readings, FleetSettings(), zone=ZoneInfo("Europe/Amsterdam"))
"""

from __future__ import annotations

from m2mhub.apps.fleet.errors import FleetError, LateReadingError
from m2mhub.apps.fleet.models import (
    Activity,
    DaySummary,
    EventKind,
    FleetEvent,
    Output,
    RoutePoint,
    Stop,
    Trip,
    Utilization,
)
from m2mhub.apps.fleet.settings import FleetSettings, SpeedZone
from m2mhub.apps.fleet.trips import (
    Detection,
    DetectorState,
    Reading,
    TripDetector,
    accepts,
    detect,
)
from m2mhub.apps.fleet.utilization import group_utilization, summarize_days, utilization

__all__ = [
    "Activity",
    "DaySummary",
    "Detection",
    "DetectorState",
    "EventKind",
    "FleetError",
    "FleetEvent",
    "FleetSettings",
    "LateReadingError",
    "Output",
    "Reading",
    "RoutePoint",
    "SpeedZone",
    "Stop",
    "Trip",
    "TripDetector",
    "Utilization",
    "accepts",
    "detect",
    "group_utilization",
    "summarize_days",
    "utilization",
]
