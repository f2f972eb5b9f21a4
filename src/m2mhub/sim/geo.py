"""Distances, bearings and polygons on the WGS 84 sphere, good to a few metres over a city."""

from __future__ import annotations

import math
from collections.abc import Sequence

from m2mhub.core import geo as core_geo
from m2mhub.core.geo import EARTH_RADIUS_M

LatLon = tuple[float, float]


def haversine_m(a: LatLon, b: LatLon) -> float:
    """Great-circle distance between two (lat, lon) points in metres."""
    return core_geo.haversine_m(a[0], a[1], b[0], b[1])


def bearing_deg(a: LatLon, b: LatLon) -> float:
    """Initial bearing from ``a`` to ``b``, degrees clockwise from north in [0, 360)."""
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360


def interpolate(a: LatLon, b: LatLon, fraction: float) -> LatLon:
    """The point ``fraction`` of the way from ``a`` to ``b`` (linear: legs are short)."""
    return a[0] + (b[0] - a[0]) * fraction, a[1] + (b[1] - a[1]) * fraction


def offset_m(origin: LatLon, north_m: float, east_m: float) -> LatLon:
    """The point ``north_m`` and ``east_m`` metres away from ``origin``."""
    lat = origin[0] + math.degrees(north_m / EARTH_RADIUS_M)
    lon = origin[1] + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(origin[0]))))
    return lat, lon


def contains(polygon: Sequence[LatLon], point: LatLon) -> bool:
    """True when ``point`` is inside ``polygon`` (ray casting; vertices in order)."""
    lat, lon = point
    inside = False
    n = len(polygon)
    for i in range(n):
        lat1, lon1 = polygon[i]
        lat2, lon2 = polygon[(i + 1) % n]
        if (lat1 > lat) != (lat2 > lat):
            lon_cross = lon1 + (lat - lat1) / (lat2 - lat1) * (lon2 - lon1)
            if lon < lon_cross:
                inside = not inside
    return inside


def centroid(polygon: Sequence[LatLon]) -> LatLon:
    """The mean of the vertices: the middle of a small, roughly convex site."""
    return (
        sum(p[0] for p in polygon) / len(polygon),
        sum(p[1] for p in polygon) / len(polygon),
    )
