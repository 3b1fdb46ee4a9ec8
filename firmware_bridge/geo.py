"""Geometry of GPS fixes: great-circle distance, bearing, points along a polyline, coarse rounding.

Spherical Earth (mean radius 6,371 km): within 0.5 % of the ellipsoid, far below
what an ambulance's ETA needs.
"""

from __future__ import annotations

import math

EARTH_M = 6_371_000.0
COARSE_DECIMALS = 3  # 0.001 deg: ~111 m north-south, ~70 m east-west at 50 deg latitude


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


def interpolate(lat1: float, lon1: float, lat2: float, lon2: float, f: float) -> tuple[float, float]:
    """The point a fraction ``f`` of the way (linear in degrees: fine over a few km)."""
    return lat1 + (lat2 - lat1) * f, lon1 + (lon2 - lon1) * f


def coarse(value: float) -> float:
    """Rounded to COARSE_DECIMALS: the precision positions leave the gateway with (a privacy choice)."""
    return round(value, COARSE_DECIMALS)
