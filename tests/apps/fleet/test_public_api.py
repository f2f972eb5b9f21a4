"""The fleet package's public names."""

from __future__ import annotations

import m2mhub.apps.fleet as fleet


def test_public_names() -> None:
    assert set(fleet.__all__) == {
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
    }
    assert all(hasattr(fleet, name) for name in fleet.__all__)
