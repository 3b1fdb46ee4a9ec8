"""Bluetooth GATT health characteristics -> Samples (sans-IO: characteristic bytes in).

Sources (../shared/REFERENCES.md "Bluetooth GATT health characteristics"):
Bluetooth SIG Heart Rate Service 1.0 (0x2A37), Pulse Oximeter Service 1.0 (PLX
spot-check 0x2A5E, continuous 0x2A5F), Blood Pressure Service 1.1 (0x2A35),
Health Thermometer Service 1.0 (0x2A1C); numbers are IEEE 11073-20601
SFLOAT/FLOAT (:mod:`firmware_bridge.ieee11073_float`). All multi-byte fields
little-endian. Vectors: ``00 50`` = 80 bpm; ``0E 4B 80 00`` = 75 bpm, contact
detected, 128 kJ; ``10 5A 00 08 00 10`` = 90 bpm, RR 2.0 s and 4.0 s;
``00 62 00 48 00`` = SpO2 98 %, PR 72; ``00 78 00 50 00 5A 00`` = 120/80/90 mmHg;
``00 72 01 00 FF`` = 37.0 degC.

Technical states are conditions, not numbers: HRM "contact supported but not
detected", PLX "sensor disconnected / unconnected to user / displaced" give
``sensor_off`` (values NaN); PLX equipment/sensor malfunction and unknown sensor
give ``probe_fault``; low perfusion, inadequate or poor signal give ``low_signal``.
Truncated or malformed values are counted in ``stats.bad_frames``.
"""

from __future__ import annotations

import calendar
import math
import struct

from clinical.sample import Quality
from firmware_bridge.codec import CodecStats, ConditionTracker, Decoded, Origin, make_sample
from firmware_bridge.ieee11073_float import Special, decode_float, decode_sfloat

HEART_RATE_MEASUREMENT = 0x2A37
PLX_SPOT_CHECK = 0x2A5E
PLX_CONTINUOUS = 0x2A5F
BLOOD_PRESSURE_MEASUREMENT = 0x2A35
TEMPERATURE_MEASUREMENT = 0x2A1C
SUPPORTED = (HEART_RATE_MEASUREMENT, PLX_SPOT_CHECK, PLX_CONTINUOUS, BLOOD_PRESSURE_MEASUREMENT,
             TEMPERATURE_MEASUREMENT)
KPA_TO_MMHG = 7.500617

# PLX measurement status (uint16)
PLX_MS_DEMO, PLX_MS_TEST, PLX_MS_CALIBRATING = 1 << 10, 1 << 11, 1 << 12
PLX_MS_UNAVAILABLE, PLX_MS_QUESTIONABLE, PLX_MS_INVALID = 1 << 13, 1 << 14, 1 << 15
# PLX device and sensor status (uint24)
PLX_DS_MALFUNCTION, PLX_DS_IRREGULAR, PLX_DS_INADEQUATE, PLX_DS_POOR = 1 << 1, 1 << 2, 1 << 3, 1 << 4
PLX_DS_LOW_PERFUSION, PLX_DS_ERRATIC, PLX_DS_NON_PULSATILE, PLX_DS_QUESTIONABLE_PULSE = 1 << 5, 1 << 6, 1 << 7, 1 << 8
PLX_DS_INTERFERENCE, PLX_DS_UNCONNECTED, PLX_DS_UNKNOWN_SENSOR = 1 << 10, 1 << 11, 1 << 12
PLX_DS_DISPLACED, PLX_DS_SENSOR_MALFUNCTION, PLX_DS_DISCONNECTED = 1 << 13, 1 << 14, 1 << 15


class GattError(ValueError):
    pass


def uuid16(uuid: str) -> int:
    """'2a37', '0x2A37' or '00002a37-0000-1000-8000-00805f9b34fb' -> 0x2A37; ValueError otherwise."""
    u = uuid.strip().lower()
    if len(u) == 36 and u.endswith("-0000-1000-8000-00805f9b34fb") and u.startswith("0000"):
        return int(u[4:8], 16)
    u = u.removeprefix("0x")
    if len(u) == 4:
        return int(u, 16)
    raise ValueError(f"not a 16-bit SIG UUID: {uuid!r}")


def _timestamp(b: bytes, p: int) -> float | None:
    """Date Time characteristic (7 bytes): year u16, month, day, hours, minutes, seconds; 0 = unknown."""
    year, mo, d, h, mi, s = struct.unpack_from("<HBBBBB", b, p)
    if year == 0 or not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        return None
    return float(calendar.timegm((year, mo, d, h, mi, s, 0, 0, 0)))


def _sf(b: bytes, p: int) -> float:
    v, special = decode_sfloat(struct.unpack_from("<H", b, p)[0])
    return math.nan if special is not Special.NONE else v


Reading = tuple[str, float, Quality, float | None]


def parse_characteristic(uuid: int, b: bytes) -> tuple[list[Reading], set[str]]:
    """Decode one characteristic value -> (readings, active technical conditions); raises GattError."""
    try:
        return _PARSERS[uuid](b)
    except KeyError:
        raise GattError(f"unsupported characteristic 0x{uuid:04X}") from None
    except (struct.error, IndexError):
        raise GattError(f"truncated 0x{uuid:04X} value ({len(b)} bytes)") from None


def _hrm(b: bytes) -> tuple[list[Reading], set[str]]:
    flags = b[0]
    p = 1
    if flags & 0x01:
        hr = float(struct.unpack_from("<H", b, p)[0])
        p += 2
    else:
        hr = float(b[p])
        p += 1
    conds: set[str] = set()
    q = Quality.VALID
    if flags & 0x04 and not flags & 0x02:
        conds.add("sensor_off")
        q = Quality.SENSOR_OFF
        hr = math.nan
    if flags & 0x08:
        struct.unpack_from("<H", b, p)  # energy expended (kJ): checked for length, not used
        p += 2
    out: list[Reading] = [("heart_rate", hr, q, None)]
    if flags & 0x10:
        if (len(b) - p) % 2:
            raise GattError("odd RR-interval field")
        for (rr,) in struct.iter_unpack("<H", b[p:]):
            out.append(("rr_interval", rr / 1024.0, q, None))
    elif len(b) != p:
        raise GattError("trailing bytes in heart rate measurement")
    return out, conds


def _plx_quality(ms: int | None, ds: int | None) -> tuple[Quality, set[str]]:
    q = Quality.VALID
    conds: set[str] = set()
    if ms is not None:
        if ms & PLX_MS_DEMO:
            q |= Quality.DEMO
        if ms & PLX_MS_TEST:
            q |= Quality.TEST
        if ms & PLX_MS_CALIBRATING:
            q |= Quality.CALIBRATING
        if ms & (PLX_MS_UNAVAILABLE | PLX_MS_INVALID):
            q |= Quality.UNAVAILABLE
        if ms & PLX_MS_QUESTIONABLE:
            q |= Quality.QUESTIONABLE
    if ds is not None:
        if ds & (PLX_DS_DISCONNECTED | PLX_DS_UNCONNECTED | PLX_DS_DISPLACED):
            q |= Quality.SENSOR_OFF
            conds.add("sensor_off")
        if ds & (PLX_DS_MALFUNCTION | PLX_DS_SENSOR_MALFUNCTION | PLX_DS_UNKNOWN_SENSOR):
            q |= Quality.UNAVAILABLE
            conds.add("probe_fault")
        if ds & (PLX_DS_LOW_PERFUSION | PLX_DS_INADEQUATE | PLX_DS_POOR):
            q |= Quality.QUESTIONABLE
            conds.add("low_signal")
        if ds & (PLX_DS_ERRATIC | PLX_DS_INTERFERENCE):
            q |= Quality.ARTIFACT
        if ds & (PLX_DS_IRREGULAR | PLX_DS_NON_PULSATILE | PLX_DS_QUESTIONABLE_PULSE):
            q |= Quality.QUESTIONABLE
    return q, conds


def _plx(b: bytes, continuous: bool) -> tuple[list[Reading], set[str]]:
    flags = b[0]
    spo2, pr = _sf(b, 1), _sf(b, 3)
    p = 5
    t = None
    if continuous:
        p += 4 * (bool(flags & 0x01) + bool(flags & 0x02))  # Fast and Slow SpO2/PR pairs
        has_ms, has_ds, has_pai = flags & 0x04, flags & 0x08, flags & 0x10
    else:
        if flags & 0x01:
            t = _timestamp(b, p)
            p += 7
        has_ms, has_ds, has_pai = flags & 0x02, flags & 0x04, flags & 0x08
    ms = ds = None
    if has_ms:
        ms = struct.unpack_from("<H", b, p)[0]
        p += 2
    if has_ds:
        ds = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16)
        p += 3
    pai = math.nan
    if has_pai:
        pai = _sf(b, p)
        p += 2
    if p > len(b):
        raise GattError("truncated PLX value")
    q, conds = _plx_quality(ms, ds)
    hide = q & (Quality.SENSOR_OFF | Quality.UNAVAILABLE)
    out: list[Reading] = []
    for name, v in (("spo2", spo2), ("pulse_rate", pr)) + ((("perfusion_index", pai),) if has_pai else ()):
        qq = q | Quality.UNAVAILABLE if math.isnan(v) else q
        out.append((name, math.nan if hide else v, qq, t))
    return out, conds


def _bp(b: bytes) -> tuple[list[Reading], set[str]]:
    flags = b[0]
    scale = KPA_TO_MMHG if flags & 0x01 else 1.0
    vals = [_sf(b, 1) * scale, _sf(b, 3) * scale, _sf(b, 5) * scale]
    p = 7
    t = None
    if flags & 0x02:
        t = _timestamp(b, p)
        p += 7
    pr = None
    if flags & 0x04:
        pr = _sf(b, p)
        p += 2
    if flags & 0x08:
        p += 1  # user id
    q = Quality.VALID
    if flags & 0x10:
        ms = struct.unpack_from("<H", b, p)[0]
        p += 2
        if ms & 0x01:  # body movement
            q |= Quality.ARTIFACT
        if ms & (0x02 | 0x20):  # cuff too loose, improper measurement position
            q |= Quality.QUESTIONABLE
    if p > len(b):
        raise GattError("truncated blood pressure value")
    out: list[Reading] = []
    for name, v in zip(("nibp_sys", "nibp_dia", "nibp_mean"), vals, strict=True):
        out.append((name, round(v, 1), q | Quality.UNAVAILABLE if math.isnan(v) else q, t))
    if pr is not None:
        out.append(("pulse_rate", pr, q | Quality.UNAVAILABLE if math.isnan(pr) else q, t))
    return out, set()


def _temp(b: bytes) -> tuple[list[Reading], set[str]]:
    flags = b[0]
    v, special = decode_float(struct.unpack_from("<I", b, 1)[0])
    p = 5
    t = None
    if flags & 0x02:
        t = _timestamp(b, p)
        p += 7
    if flags & 0x04:
        p += 1  # temperature type (body site)
    if p > len(b):
        raise GattError("truncated temperature value")
    if special is not Special.NONE:
        return [("temperature", math.nan, Quality.UNAVAILABLE, t)], set()
    if flags & 0x01:
        v = round((v - 32.0) * 5.0 / 9.0, 2)
    return [("temperature", v, Quality.VALID, t)], set()


_PARSERS = {
    HEART_RATE_MEASUREMENT: _hrm,
    PLX_SPOT_CHECK: lambda b: _plx(b, False),
    PLX_CONTINUOUS: lambda b: _plx(b, True),
    BLOOD_PRESSURE_MEASUREMENT: _bp,
    TEMPERATURE_MEASUREMENT: _temp,
}


class GattDecoder:
    """Characteristic values of one wearable -> Samples; conditions tracked per characteristic."""

    def __init__(self, bed: str = "", device: str = "wearable") -> None:
        self.origin = Origin(bed, device)
        self.stats = CodecStats()
        self._trackers: dict[int, ConditionTracker] = {}

    def decode(self, uuid: int, value: bytes, recv_mono: float, recv_wall: float) -> list[Decoded]:
        out: list[Decoded] = []
        self.stats.bytes_in += len(value)
        try:
            readings, conds = parse_characteristic(uuid, value)
        except GattError:
            self.stats.bad_frames += 1
            self.stats.discarded_bytes += len(value)
            return out
        self.stats.frames += 1
        tracker = self._trackers.get(uuid)
        if tracker is None:
            tracker = self._trackers[uuid] = ConditionTracker(self.origin)
        param = readings[0][0] if readings else ""
        tracker.update(conds, recv_mono, recv_wall, out, param, f"0x{uuid:04X}")
        for name, v, q, t in readings:
            out.append(make_sample(self.origin, name, v, q, recv_mono, recv_wall, t))
        self.stats.samples += len(readings)
        return out


# -- encoders (the wearable emulator and tests) ------------------------------------------
def encode_hrm(hr: int, contact: bool | None = True, energy_kj: int | None = None,
               rr_s: list[float] | None = None) -> bytes:
    flags = 0x01 if hr > 255 else 0
    if contact is not None:
        flags |= 0x04 | (0x02 if contact else 0)
    body = struct.pack("<H", hr) if hr > 255 else bytes([hr])
    if energy_kj is not None:
        flags |= 0x08
        body += struct.pack("<H", energy_kj)
    if rr_s:
        flags |= 0x10
        body += b"".join(struct.pack("<H", round(r * 1024)) for r in rr_s)
    return bytes([flags]) + body


def encode_plx_continuous(spo2: float, pr: float, pai: float | None = None, sensor_status: int | None = None,
                          measurement_status: int | None = None) -> bytes:
    from firmware_bridge.ieee11073_float import encode_sfloat

    flags = 0
    body = struct.pack("<HH", encode_sfloat(spo2, 0), encode_sfloat(pr, 0))
    if measurement_status is not None:
        flags |= 0x04
        body += struct.pack("<H", measurement_status)
    if sensor_status is not None:
        flags |= 0x08
        body += struct.pack("<I", sensor_status)[:3]
    if pai is not None:
        flags |= 0x10
        body += struct.pack("<H", encode_sfloat(pai, 2))
    return bytes([flags]) + body


def encode_temperature(celsius: float) -> bytes:
    from firmware_bridge.ieee11073_float import encode_float

    return b"\x00" + struct.pack("<I", encode_float(celsius, 1, trim=False))
