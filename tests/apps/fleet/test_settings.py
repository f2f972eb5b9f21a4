"""Settings refuse unusable limits, naming the field; speed zones know what is inside."""

from __future__ import annotations

import pytest

from m2mhub.apps.fleet import FleetError, FleetSettings, SpeedZone


def test_a_negative_limit_is_refused_with_its_field() -> None:
    with pytest.raises(FleetError) as caught:
        FleetSettings(min_parking_ms=-1)
    assert caught.value.field == "min_parking_ms"
    assert "min_parking_ms" in str(caught.value)


def test_a_zero_gap_is_refused() -> None:
    with pytest.raises(FleetError) as caught:
        FleetSettings(max_gap_ms=0)
    assert caught.value.field == "max_gap_ms"


def test_a_zone_is_a_circle_or_a_polygon() -> None:
    with pytest.raises(FleetError) as caught:
        SpeedZone(name="town", limit_kmh=50)
    assert caught.value.field == "speed_zones.town"
    with pytest.raises(FleetError):
        SpeedZone(name="line", limit_kmh=50, polygon=((52.0, 5.0), (52.1, 5.0)))


def test_the_lowest_limit_of_the_zones_around_a_point_applies() -> None:
    square = ((52.0, 5.0), (52.0, 5.1), (52.1, 5.1), (52.1, 5.0))
    town = SpeedZone(name="town", limit_kmh=50, polygon=square)
    school = SpeedZone(name="school", limit_kmh=30, center=(52.05, 5.05), radius_m=200)
    cfg = FleetSettings(overspeed_kmh=100, speed_zones=(town, school))
    assert cfg.speed_limit(52.05, 5.05) == (30.0, "school")
    assert cfg.speed_limit(52.02, 5.02) == (50.0, "town")
    assert cfg.speed_limit(52.2, 5.02) == (100.0, "")
    assert FleetSettings().speed_limit(52.2, 5.02) is None
