"""NMEA 0183 GPS sentences, sans-IO: bytes in, fixes out (GGA, RMC, VTG; any talker: GP, GN, GL, GA).

``NmeaDecoder.feed(data, recv_wall)`` splits the byte stream on line ends,
checks each sentence's ``*hh`` checksum (XOR of the bytes between ``$`` and
``*``), and returns the :class:`Fix` values it completed. Sentences without a
checksum, with a wrong one, longer than 82 characters (the standard's limit),
or with fields that do not parse are counted in ``rejected`` by reason and
skipped; nothing raises. A receiver without a fix (GGA quality 0, RMC status
``V``) yields ``Fix(valid=False)``: a tunnel is a state, not an error.

Speed comes from RMC (knots) or VTG (km/h); a GGA alone gives a position
without speed, so the last known speed is carried over (for at most 10 s).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

MAX_SENTENCE = 82  # NMEA 0183: at most 82 characters including $ and CR LF
KNOT_KMH = 1.852
_BUFFER_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Fix:
    t_wall: float  # receive time (s since the epoch); the sentence's own UTC time is in ``utc``
    valid: bool
    lat: float = float("nan")
    lon: float = float("nan")
    speed_kmh: float | None = None
    course_deg: float | None = None
    utc: str = ""  # hhmmss(.ss) as sent
    kind: str = ""  # GGA | RMC | VTG


def checksum(body: str) -> str:
    """Two hex digits: XOR of the characters between ``$`` and ``*``."""
    x = 0
    for ch in body.encode("ascii", "replace"):
        x ^= ch
    return f"{x:02X}"


def sentence(body: str) -> bytes:
    """``$body*hh\\r\\n`` (for emulators and tests)."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _coord(value: str, hemi: str, degree_digits: int) -> float:
    if not value or hemi not in ("N", "S", "E", "W"):
        raise ValueError("empty coordinate")
    deg = int(value[:degree_digits])
    minutes = float(value[degree_digits:])
    if not 0 <= minutes < 60:
        raise ValueError("minutes out of range")
    out = deg + minutes / 60.0
    return -out if hemi in ("S", "W") else out


class NmeaDecoder:
    def __init__(self) -> None:
        self._buf = b""
        self.rejected: Counter[str] = Counter()
        self.sentences = 0
        self._speed: tuple[float, float] | None = None  # (km/h, t_wall)
        self._course: float | None = None

    def feed(self, data: bytes, recv_wall: float) -> list[Fix]:
        self._buf += data
        out: list[Fix] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > _BUFFER_LIMIT:  # a stream with no line ends: drop it, count once
                    self._buf = b""
                    self.rejected["overlong"] += 1
                break
            line, self._buf = self._buf[:nl].strip(b"\r "), self._buf[nl + 1:]
            if line:
                fix = self._line(line, recv_wall)
                if fix is not None:
                    out.append(fix)
        return out

    def _line(self, raw: bytes, recv_wall: float) -> Fix | None:
        start = raw.find(b"$")
        if start < 0:
            self.rejected["no_start"] += 1
            return None
        raw = raw[start:]
        if len(raw) + 2 > MAX_SENTENCE:
            self.rejected["overlong"] += 1
            return None
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self.rejected["not_ascii"] += 1
            return None
        body, star, given = text[1:].partition("*")
        if not star or len(given) != 2:
            self.rejected["no_checksum"] += 1
            return None
        if given.upper() != checksum(body):
            self.rejected["checksum"] += 1
            return None
        fields = body.split(",")
        kind = fields[0][2:] if len(fields[0]) == 5 else ""
        self.sentences += 1
        try:
            if kind == "GGA":
                return self._gga(fields, recv_wall)
            if kind == "RMC":
                return self._rmc(fields, recv_wall)
            if kind == "VTG":
                self._vtg(fields, recv_wall)
                return None
        except (ValueError, IndexError):
            self.rejected["field"] += 1
            return None
        self.rejected["ignored_type"] += 1  # GSA, GSV, ...: valid but not used
        return None

    def _carried_speed(self, now: float) -> float | None:
        if self._speed is not None and now - self._speed[1] <= 10.0:
            return self._speed[0]
        return None

    def _gga(self, f: list[str], now: float) -> Fix:
        # $GPGGA,hhmmss.ss,llll.ll,a,yyyyy.yy,a,q,nn,hdop,alt,M,geoid,M,age,station
        quality = int(f[6] or "0")
        if quality == 0:
            return Fix(now, False, utc=f[1], kind="GGA")
        return Fix(now, True, _coord(f[2], f[3], 2), _coord(f[4], f[5], 3), self._carried_speed(now),
                   self._course, f[1], "GGA")

    def _rmc(self, f: list[str], now: float) -> Fix:
        # $GPRMC,hhmmss.ss,A,llll.ll,a,yyyyy.yy,a,knots,course,ddmmyy,magvar,E/W[,mode]
        if f[2] != "A":
            return Fix(now, False, utc=f[1], kind="RMC")
        speed = float(f[7]) * KNOT_KMH if f[7] else None
        course = float(f[8]) if f[8] else None
        if speed is not None:
            self._speed = (speed, now)
        self._course = course
        return Fix(now, True, _coord(f[3], f[4], 2), _coord(f[5], f[6], 3), speed, course, f[1], "RMC")

    def _vtg(self, f: list[str], now: float) -> None:
        # $GPVTG,course,T,course,M,knots,N,kmh,K[,mode]
        if len(f) > 7 and f[7]:
            self._speed = (float(f[7]), now)
        elif len(f) > 5 and f[5]:
            self._speed = (float(f[5]) * KNOT_KMH, now)
        if f[1]:
            self._course = float(f[1])
