"""The ambulance's position as the gateway reports it, and the ETA to a hospital.

Fixes come from :mod:`firmware_bridge.gps_source`. What leaves the gateway is
coarse on purpose (a privacy choice: a patient's street address is personal
data): latitude and longitude rounded to 3 decimals (0.001 deg, ~111 m
north-south, ~70 m east-west at 52 deg N) and speed in whole km/h. The exact
fix stays in memory for the ETA only.

**ETA** = straight-line (great-circle) distance x ``route_factor`` (default
1.3, a typical road-network detour index) / the mean speed of the fixes of the
last ``speed_window_s`` (5 minutes), at least ``min_speed_kmh`` (20 km/h, so a
stop at a junction does not make the ETA infinite). Without a fix (a tunnel)
the last ETA counts down with the time since that fix: the vehicle is assumed
to keep moving. It is an estimate, labelled "straight-line" wherever shown.
"""

from __future__ import annotations

import time
from collections import deque

from firmware_bridge.geo import coarse, haversine_m
from firmware_bridge.nmea import Fix
from wire.messages import Position


class PositionTracker:
    def __init__(self, route_factor: float = 1.3, min_speed_kmh: float = 20.0, speed_window_s: float = 300.0) -> None:
        self.route_factor = route_factor
        self.min_speed_kmh = min_speed_kmh
        self.speed_window_s = speed_window_s
        self.last: Fix | None = None  # last valid fix
        self.has_fix = False
        self.fixes = 0
        self._speeds: deque[tuple[float, float]] = deque()  # (t_wall, km/h)

    def on_fix(self, fix: Fix) -> None:
        self.has_fix = fix.valid
        if not fix.valid:
            return
        self.fixes += 1
        self.last = fix
        if fix.speed_kmh is not None:
            self._speeds.append((fix.t_wall, fix.speed_kmh))
        while self._speeds and self._speeds[0][0] < fix.t_wall - self.speed_window_s:
            self._speeds.popleft()

    def mean_speed_kmh(self) -> float | None:
        if not self._speeds:
            return None
        return sum(s for _, s in self._speeds) / len(self._speeds)

    def position(self) -> Position | None:
        """The coarse position (None before the first fix); ``fix`` False while the receiver has none."""
        f = self.last
        if f is None:
            return None
        speed = f.speed_kmh if f.speed_kmh is not None else 0.0
        return Position(t=int(f.t_wall * 1e9), lat=coarse(f.lat), lon=coarse(f.lon), speed_kmh=round(speed),
                        fix=self.has_fix)

    def eta(self, dest: tuple[float, float], now: float | None = None) -> tuple[int, int] | None:
        """(seconds, metres) to ``dest`` as described above; None before the first fix."""
        f = self.last
        if f is None:
            return None
        now = time.time() if now is None else now
        straight = haversine_m(f.lat, f.lon, *dest)
        road = straight * self.route_factor
        speed = max(self.mean_speed_kmh() or 0.0, self.min_speed_kmh)
        eta = road / (speed / 3.6)
        if not self.has_fix:
            eta = max(0.0, eta - max(0.0, now - f.t_wall))
        return round(eta), round(straight)
