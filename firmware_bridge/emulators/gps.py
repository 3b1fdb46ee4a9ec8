"""A GPS receiver driven by a route: NMEA 0183 (RMC, GGA, VTG once a second) on a pty.

A :class:`Route` is a polyline of waypoints; each leg has a speed (km/h) and may
be a tunnel (no fix: the receiver keeps talking, with RMC status ``V`` and GGA
quality 0, as real receivers do). :meth:`Route.at` gives the vehicle's state at
scenario time ``t``; after the last waypoint the vehicle stands still there.

``ROUTES`` holds the built-in routes (``city``: 8 km through a town with a
2-minute tunnel; ``rural``: 25 km country road; ``tunnel``: 5 minutes
underground in the middle), all ending at the demo hospital ``city-general``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from firmware_bridge.geo import bearing_deg, haversine_m, interpolate
from firmware_bridge.nmea import KNOT_KMH, sentence

HOSPITALS = {"city-general": (52.3702, 4.8952), "st-marys": (52.3400, 4.8700)}


@dataclass(frozen=True, slots=True)
class Leg:
    lat: float
    lon: float
    speed_kmh: float  # on the way to this waypoint
    tunnel: bool = False


@dataclass(frozen=True, slots=True)
class RouteState:
    lat: float
    lon: float
    speed_kmh: float
    course_deg: float
    fix: bool
    done: bool


class Route:
    def __init__(self, start: tuple[float, float], legs: list[Leg]) -> None:
        if not legs:
            raise ValueError("a route needs at least one leg")
        self.start = start
        self.legs = legs
        self._spans: list[tuple[float, float, float, float, float, Leg]] = []  # t0, t1, lat0, lon0, course, leg
        t = 0.0
        lat0, lon0 = start
        for leg in legs:
            if leg.speed_kmh <= 0:
                raise ValueError("leg speeds must be positive")
            d = haversine_m(lat0, lon0, leg.lat, leg.lon)
            dt = d / (leg.speed_kmh / 3.6)
            self._spans.append((t, t + dt, lat0, lon0, bearing_deg(lat0, lon0, leg.lat, leg.lon), leg))
            t += dt
            lat0, lon0 = leg.lat, leg.lon
        self.duration_s = t

    def at(self, t: float) -> RouteState:
        for t0, t1, lat0, lon0, course, leg in self._spans:
            if t < t1:
                f = 0.0 if t1 <= t0 else max(0.0, (t - t0) / (t1 - t0))
                lat, lon = interpolate(lat0, lon0, leg.lat, leg.lon, f)
                return RouteState(lat, lon, leg.speed_kmh, course, not leg.tunnel, False)
        last = self.legs[-1]
        return RouteState(last.lat, last.lon, 0.0, self._spans[-1][4], True, True)

    def tunnel_windows(self) -> list[tuple[float, float]]:
        """(start, end) scenario seconds without a fix (the link drops there too, in the demo and bench)."""
        return [(t0, t1) for t0, t1, _, _, _, leg in self._spans if leg.tunnel]


def _line(start: tuple[float, float], end: tuple[float, float], minutes: float, kmh: float,
          tunnel_at: tuple[float, float] | None = None) -> Route:
    """A straight route from start to end lasting ``minutes`` at about ``kmh``, with an optional tunnel
    between the given fractions of the way."""
    lat0, lon0 = start
    lat1, lon1 = end
    total = haversine_m(lat0, lon0, lat1, lon1)
    speed = total / (minutes * 60) * 3.6 if minutes > 0 else kmh
    cuts = [0.0, 1.0] if tunnel_at is None else [0.0, tunnel_at[0], tunnel_at[1], 1.0]
    legs = []
    for i in range(1, len(cuts)):
        la, lo = interpolate(lat0, lon0, lat1, lon1, cuts[i])
        legs.append(Leg(la, lo, speed, tunnel=tunnel_at is not None and i == 2))
    return Route(start, legs)


def make_route(name: str, minutes: float = 20.0) -> Route:
    """``city``, ``rural`` or ``tunnel`` lasting about ``minutes``, ending at city-general."""
    dest = HOSPITALS["city-general"]
    if name == "city":
        return _line((52.3300, 4.8300), dest, minutes, 35.0, (0.45, 0.45 + 2.0 / max(minutes, 2.5)))
    if name == "rural":
        return _line((52.1500, 4.6000), dest, minutes, 75.0)
    if name == "tunnel":
        half = 2.5 / max(minutes, 6.0)
        return _line((52.3000, 4.8000), dest, minutes, 50.0, (0.5 - half, 0.5 + half))
    raise ValueError(f"unknown route {name!r}; choose city, rural or tunnel")


def _nmea_coord(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    v = abs(value)
    deg = int(v)
    minutes = (v - deg) * 60
    return (f"{deg:02d}{minutes:07.4f}" if lat else f"{deg:03d}{minutes:07.4f}"), hemi


def nmea_burst(state: RouteState, wall: float, talker: str = "GP") -> bytes:
    """RMC, GGA and VTG for one second of the route."""
    tm = time.gmtime(wall)
    hms = f"{tm.tm_hour:02d}{tm.tm_min:02d}{tm.tm_sec:02d}.{int((wall % 1) * 100):02d}"
    dmy = f"{tm.tm_mday:02d}{tm.tm_mon:02d}{tm.tm_year % 100:02d}"
    if not state.fix:
        return (sentence(f"{talker}RMC,{hms},V,,,,,,,{dmy},,,N")
                + sentence(f"{talker}GGA,{hms},,,,,0,00,99.9,,M,,M,,")
                + sentence(f"{talker}VTG,,T,,M,,N,,K,N"))
    la, ns = _nmea_coord(state.lat, True)
    lo, ew = _nmea_coord(state.lon, False)
    knots = state.speed_kmh / KNOT_KMH
    course = state.course_deg
    return (sentence(f"{talker}RMC,{hms},A,{la},{ns},{lo},{ew},{knots:.1f},{course:.1f},{dmy},,,A")
            + sentence(f"{talker}GGA,{hms},{la},{ns},{lo},{ew},1,08,0.9,5.0,M,46.9,M,,")
            + sentence(f"{talker}VTG,{course:.1f},T,,M,{knots:.1f},N,{state.speed_kmh:.1f},K,A"))


class GpsEmulator:
    """A ByteDevice (firmware_bridge.emulators.device) for :class:`~firmware_bridge.emulators.pty.PtyEmulator`."""

    period_s = 1.0

    def __init__(self, route: Route, talker: str = "GP") -> None:
        self.route = route
        self.talker = talker
        self.bursts = 0

    def produce(self, t: float, wall: float) -> bytes:
        self.bursts += 1
        return nmea_burst(self.route.at(t), wall, self.talker)

    def receive(self, data: bytes, t: float, wall: float) -> bytes:
        return b""  # a GPS receiver ignores what it is sent (no configuration commands emulated)

    def reset(self) -> None:
        pass

