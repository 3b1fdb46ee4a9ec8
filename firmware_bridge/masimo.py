"""Masimo Rad-8 / Radical-7 serial output, "ASCII 1" mode: a sans-IO line decoder.

Sources (see ../shared/REFERENCES.md): mdpnp/mdpnp devices/masimo/.../radical
(masimo-radical-7.spec, MasimoRadical7.java), yahnatan/pulseox, the Rad-8 and
Rad-87 operator's manuals. 9600 baud 8N1, one line a second, unprompted, no
request and no checksum::

    02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% \
DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800

Radical-7 adds ``PVI=``. Dashes mean "not available". The EXC field is a hex
bit set of exceptions. A sensor-off / no-sensor state is a TECHNICAL condition:
the values of that line are reported as NaN with ``SENSOR_OFF`` quality, never as
numbers, and a ``sensor_off`` DeviceEvent is raised.

There is no integrity check, so a line is accepted only if it parses fully:
date, time, ``SPO2=``, ``BPM=`` and ``EXC=`` present and well formed; anything
else is counted as a bad line. Junk glued to the front of a line (a burst
without a line end) is skipped by finding the line's ``date time SN=`` header.
Lines longer than :data:`MAX_LINE` are dropped (the receive buffer stays bounded).
"""

from __future__ import annotations

import calendar
import math

from clinical.sample import Quality
from firmware_bridge.codec import CodecStats, ConditionTracker, Decoded, Origin, make_sample

MAX_LINE = 512
NAN = math.nan

# EXC bits (hex), from the Rad-8 operator's manual / mdpnp masimo-radical-7.spec.
EXC_NO_SENSOR = 0x001
EXC_DEFECTIVE_SENSOR = 0x002
EXC_LOW_PERFUSION = 0x004
EXC_PULSE_SEARCH = 0x008
EXC_INTERFERENCE = 0x010
EXC_SENSOR_OFF = 0x020
EXC_AMBIENT_LIGHT = 0x040
EXC_UNRECOGNISED_SENSOR = 0x080
EXC_LOW_SIGNAL_IQ = 0x400
EXC_SET_MODE = 0x800  # informational: Masimo SET processing active, not a fault

_SENSOR_OFF_BITS = EXC_NO_SENSOR | EXC_SENSOR_OFF
_PROBE_FAULT_BITS = EXC_DEFECTIVE_SENSOR | EXC_UNRECOGNISED_SENSOR
_LOW_SIGNAL_BITS = EXC_LOW_PERFUSION | EXC_LOW_SIGNAL_IQ
_ARTIFACT_BITS = EXC_INTERFERENCE | EXC_AMBIENT_LIGHT


def exc_quality(exc: int) -> tuple[Quality, set[str]]:
    """Map EXC bits to sample quality and the set of active technical conditions."""
    q = Quality.VALID
    conds: set[str] = set()
    if exc & _SENSOR_OFF_BITS:
        q |= Quality.SENSOR_OFF
        conds.add("sensor_off")
    if exc & _PROBE_FAULT_BITS:
        q |= Quality.UNAVAILABLE
        conds.add("probe_fault")
    if exc & _LOW_SIGNAL_BITS:
        q |= Quality.QUESTIONABLE
        conds.add("low_signal")
    if exc & EXC_PULSE_SEARCH:
        q |= Quality.QUESTIONABLE
    if exc & _ARTIFACT_BITS:
        q |= Quality.ARTIFACT
    return q, conds


def _number(text: bytes) -> float | None:
    """``098%`` -> 98.0, ``--.-%`` / ``---`` -> NaN, malformed -> None."""
    t = text.rstrip(b"%")
    if not t:
        return None
    if t.strip(b"-.+") == b"":
        return NAN
    try:
        return float(t)
    except ValueError:
        return None


class MasimoDecoder:
    """Decode ASCII 1 lines into spo2 / pulse_rate / perfusion_index Samples."""

    def __init__(self, bed: str = "", device: str = "masimo") -> None:
        self.origin = Origin(bed, device)
        self.stats = CodecStats()
        self.conditions = ConditionTracker(self.origin)
        self._buf = b""
        self._day_cache: dict[bytes, int] = {}

    def feed(self, data: bytes, recv_mono: float, recv_wall: float) -> list[Decoded]:
        out: list[Decoded] = []
        self.stats.bytes_in += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        if b"\r" in buf:
            buf = buf.replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        tail = lines.pop()
        if len(tail) > MAX_LINE:
            self.stats.bad_frames += 1
            self.stats.discarded_bytes += len(tail)
            tail = b""
        self._buf = tail
        for line in lines:
            if line:
                self._line(line, recv_mono, recv_wall, out)
        return out

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a line (bounded by MAX_LINE plus one read)."""
        return len(self._buf)

    def _bad(self, line: bytes) -> None:
        self.stats.bad_frames += 1
        self.stats.discarded_bytes += len(line)

    def _device_time(self, date: bytes, clock: bytes) -> float | None:
        day = self._day_cache.get(date)
        if day is None:
            if len(date) != 8 or date[2:3] != b"/" or date[5:6] != b"/":
                return None
            try:
                mm, dd, yy = int(date[0:2]), int(date[3:5]), int(date[6:8])
                day = calendar.timegm((2000 + yy, mm, dd, 0, 0, 0, 0, 0, 0))
            except ValueError:
                return None
            if not (1 <= mm <= 12 and 1 <= dd <= 31):
                return None
            if len(self._day_cache) > 8:
                self._day_cache.clear()
            self._day_cache[date] = day
        if len(clock) != 8 or clock[2:3] != b":" or clock[5:6] != b":":
            return None
        try:
            h, m, s = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
        except ValueError:
            return None
        if h > 23 or m > 59 or s > 60:
            return None
        return float(day + h * 3600 + m * 60 + s)

    def _line(self, line: bytes, recv_mono: float, recv_wall: float, out: list[Decoded]) -> None:
        if len(line) > MAX_LINE:
            self._bad(line)
            return
        if not line[:2].isdigit() or line[2:3] != b"/":
            # junk glued to the front of a line (no newline in between): resynchronise on the header
            sn = line.rfind(b" SN=")
            if sn < 17:
                self._bad(line)
                return
            self.stats.discarded_bytes += sn - 17
            line = line[sn - 17 :]
        parts = line.split()
        if len(parts) < 5:
            self._bad(line)
            return
        device_time = self._device_time(parts[0], parts[1])
        if device_time is None:
            self._bad(line)
            return
        fields: dict[bytes, bytes] = {}
        for tok in parts[2:]:
            key, sep, val = tok.partition(b"=")
            if not sep:
                self._bad(line)
                return
            fields[key] = val
        spo2_t, bpm_t, exc_t = fields.get(b"SPO2"), fields.get(b"BPM"), fields.get(b"EXC")
        if spo2_t is None or bpm_t is None or exc_t is None:
            self._bad(line)
            return
        spo2, bpm = _number(spo2_t), _number(bpm_t)
        pi_t = fields.get(b"PI")
        pi = _number(pi_t) if pi_t is not None else NAN
        try:
            exc = int(exc_t, 16)
        except ValueError:
            exc = -1
        if spo2 is None or bpm is None or pi is None or exc < 0 or not 0 <= (spo2 if spo2 == spo2 else 0) <= 100:
            self._bad(line)
            return
        self.stats.frames += 1
        quality, conds = exc_quality(exc)
        self.conditions.update(conds, recv_mono, recv_wall, out, "spo2", f"EXC={exc:06X}")
        hide = quality & (Quality.SENSOR_OFF | Quality.UNAVAILABLE)
        o = self.origin
        for name, value in (("spo2", spo2), ("pulse_rate", bpm), ("perfusion_index", pi)):
            q = quality
            if hide:
                value = NAN
            elif value != value:
                q = quality | Quality.UNAVAILABLE
            out.append(make_sample(o, name, value, q, recv_mono, recv_wall, device_time))
        self.stats.samples += 3


def format_line(
    device_time: float,
    spo2: float | None,
    bpm: float | None,
    pi: float | None,
    exc: int = EXC_SET_MODE,
    serial: int = 56661,
    alarm: int = 0,
    pvi: int | None = None,
) -> bytes:
    """One ASCII 1 line exactly as a Rad-8 prints it (CR LF terminated); None prints dashes."""
    import time

    t = time.gmtime(device_time)
    s = f"{t.tm_mon:02d}/{t.tm_mday:02d}/{t.tm_year % 100:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    sp = "---" if spo2 is None else f"{round(spo2):03d}"
    bp = "---" if bpm is None else f"{round(bpm):03d}"
    pp = "--.--" if pi is None else f"{pi:05.2f}"
    line = (
        f"{s} SN={serial:010d} SPO2={sp}% BPM={bp} PI={pp}% SPCO=--.-% SPMET=--.-% "
        f"DESAT=-- PIDELTA=+-- "
    )
    if pvi is not None:
        line += f"PVI={pvi:03d} "
    line += f"ALARM={alarm:04X} EXC={exc:06X}\r\n"
    return line.encode("ascii")
