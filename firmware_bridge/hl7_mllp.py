"""HL7 v2 ORU^R01 over MLLP: sans-IO deframing, OBX numerics by MDC or LOINC code, ACK building.

Sources (../shared/REFERENCES.md "HL7 v2 over MLLP"): HL7 v2.6 ch. 2 (MSH, MSA,
acknowledgement modes) and ch. 7 (ORU^R01, OBX); the IHE PCD-01 profile (device
observations with MDC codes); mdpnp/mdpnp devices/mindray (Mindray monitors send
ORU^R01 over MLLP). MLLP frame: ``0x0B`` message ``0x1C 0x0D``; segments end
with CR; no length and no checksum. Typical monitor OBX::

    OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.6.1.1|98|262688^MDC_DIM_PERCENT^MDC|||||R|||<time>|||<EUI-64>

MDC code = partition x 65536 + term code. Observations are matched by MDC code
(OBX-3 component 1 when the coding system is MDC, or the MDC_ reference name) or by
LOINC (coding system LN). OBX-11 ``X`` (cannot be obtained) gives an UNAVAILABLE
sample; ``D``/``W`` (deleted / wrong) are ignored. Every message is answered with an
original-mode ACK: AA when it parsed, AE when it did not (and it is counted).
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field

from clinical.sample import Quality
from firmware_bridge.codec import CodecStats, Decoded, Origin, make_sample

SB, EB, CR = b"\x0b", b"\x1c", b"\r"
MLLP_END = b"\x1c\x0d"

MDC_CODES: dict[str, str] = {
    "147842": "heart_rate", "149530": "pulse_rate", "150456": "spo2", "150021": "nibp_sys", "150022": "nibp_dia",
    "150023": "nibp_mean", "150364": "temperature", "151562": "resp_rate", "150488": "perfusion_index",
    "MDC_ECG_HEART_RATE": "heart_rate", "MDC_PULS_OXIM_PULS_RATE": "pulse_rate", "MDC_PULS_OXIM_SAT_O2": "spo2",
    "MDC_PRESS_BLD_NONINV_SYS": "nibp_sys", "MDC_PRESS_BLD_NONINV_DIA": "nibp_dia",
    "MDC_PRESS_BLD_NONINV_MEAN": "nibp_mean", "MDC_TEMP_BODY": "temperature", "MDC_RESP_RATE": "resp_rate",
    "MDC_PULS_OXIM_PERF_REL": "perfusion_index",
}
LOINC_CODES: dict[str, str] = {
    "8867-4": "heart_rate", "59408-5": "spo2", "2708-6": "spo2", "9279-1": "resp_rate", "8480-6": "nibp_sys",
    "8462-4": "nibp_dia", "8478-0": "nibp_mean", "8310-5": "temperature", "61006-3": "perfusion_index",
}
# unit (MDC code, MDC ref or UCUM) -> (scale, offset) into the registry's unit
UNIT_OK = {"264864", "262688", "266016", "264928", "268192", "MDC_DIM_BEAT_PER_MIN", "MDC_DIM_PERCENT",
           "MDC_DIM_MMHG", "MDC_DIM_RESP_PER_MIN", "MDC_DIM_DEGC", "/min", "%", "mm[Hg]", "Cel", "bpm", "mmHg",
           "{beats}/min", "{breaths}/min", "degC"}
UNIT_CONVERT = {"266560": (5 / 9, -160 / 9), "MDC_DIM_FAHR": (5 / 9, -160 / 9), "[degF]": (5 / 9, -160 / 9),
                "kPa": (7.500617, 0.0), "MDC_DIM_KILO_PASCAL": (7.500617, 0.0)}


def parse_ts(ts: str) -> float | None:
    """HL7 DTM ``YYYYMMDDHHMMSS[.S+][+/-ZZZZ]`` -> epoch seconds (no zone: read as UTC)."""
    ts = ts.strip()
    if len(ts) < 8 or not ts[:8].isdigit():
        return None
    zone = 0
    for sign in "+-":
        i = ts.find(sign, 8)
        if i > 0:
            z = ts[i + 1 : i + 5]
            if len(z) == 4 and z.isdigit():
                zone = (int(z[:2]) * 60 + int(z[2:])) * 60 * (1 if sign == "+" else -1)
            ts = ts[:i]
    frac = 0.0
    if "." in ts:
        ts, f = ts.split(".", 1)
        frac = float("0." + f) if f.isdigit() else 0.0
    digits = ts.ljust(14, "0")[:14]
    if not digits.isdigit():
        return None
    try:
        y, mo, d = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
        h, mi, s = int(digits[8:10]), int(digits[10:12]), int(digits[12:14])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
            return None
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac - zone
    except (ValueError, OverflowError):
        return None


@dataclass(slots=True)
class Parsed:
    control_id: str = ""
    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    version: str = "2.6"
    message_type: str = ""
    location: str = ""
    bed: str = ""
    patient: str = ""
    observations: list[tuple[str, float, Quality, float | None]] = field(default_factory=list)


class Hl7Error(ValueError):
    pass


def parse_message(msg: bytes, stats: CodecStats | None = None) -> Parsed:
    """Parse one HL7 v2 message (segments split on CR or LF) into numerics; raises Hl7Error."""
    try:
        text = msg.decode("utf-8")
    except UnicodeDecodeError:
        text = msg.decode("latin-1")
    segs = [s for s in text.replace("\n", "\r").split("\r") if s]
    if not segs or not segs[0].startswith("MSH") or len(segs[0]) < 8:
        raise Hl7Error("message does not start with MSH")
    fs = segs[0][3]
    comp = segs[0][4]
    msh = segs[0].split(fs)
    if len(msh) < 12:
        raise Hl7Error("MSH too short")
    p = Parsed()
    p.sending_app, p.sending_facility, p.receiving_app, p.receiving_facility = msh[2], msh[3], msh[4], msh[5]
    p.message_type, p.control_id, p.version = msh[8], msh[9], msh[11] or "2.6"
    if not p.control_id:
        raise Hl7Error("MSH-10 (message control id) is empty")
    msg_time = parse_ts(msh[6]) if len(msh) > 6 else None
    obr_time: float | None = None
    for seg in segs[1:]:
        f = seg.split(fs)
        kind = f[0]
        if kind == "PID" and len(f) > 3:
            p.patient = f[3].split(comp)[0]
        elif kind == "PV1" and len(f) > 3:
            p.location = f[3]
            parts = f[3].split(comp)
            p.bed = parts[2] if len(parts) > 2 else ""
        elif kind == "OBR" and len(f) > 7:
            obr_time = parse_ts(f[7])
        elif kind == "OBX":
            obs = _obx(f, comp, obr_time or msg_time)
            if obs is None:
                if stats is not None:
                    stats.discarded_bytes += len(seg)
                continue
            if obs[0]:
                p.observations.append(obs)
    if not p.message_type.startswith(("ORU", "ORU" + comp + "R01")):
        raise Hl7Error(f"unsupported message type {p.message_type!r}")
    return p


def _obx(f: list[str], comp: str, default_time: float | None) -> tuple[str, float, Quality, float | None] | None:
    """One OBX -> (parameter or "", value, quality, time); None when malformed."""
    if len(f) < 6:
        return None
    ident = f[3].split(comp)
    name = ""
    for i in range(0, min(len(ident), 6), 3):
        code = ident[i]
        system = ident[i + 2] if len(ident) > i + 2 else ""
        ref = ident[i + 1] if len(ident) > i + 1 else ""
        if system == "LN":
            name = LOINC_CODES.get(code, "")
        else:
            name = MDC_CODES.get(code, "") or MDC_CODES.get(ref, "")
        if name:
            break
    if not name:
        return "", math.nan, Quality.VALID, None  # an observation we do not track
    status = f[11] if len(f) > 11 else ""
    if status in ("D", "W"):
        return "", math.nan, Quality.VALID, None
    t = parse_ts(f[14]) if len(f) > 14 and f[14] else default_time
    if status == "X" or f[5] in ("", '""'):
        return name, math.nan, Quality.UNAVAILABLE, t
    if f[2] not in ("NM", "SN", ""):
        return None
    raw = f[5].split(comp)[-1] if f[2] == "SN" else f[5]
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    unit = f[6].split(comp) if len(f) > 6 and f[6] else []
    if unit and unit[0] not in UNIT_OK and (len(unit) < 2 or unit[1] not in UNIT_OK):
        conv = UNIT_CONVERT.get(unit[0]) or (UNIT_CONVERT.get(unit[1]) if len(unit) > 1 else None)
        if conv is None:
            return None
        value = round(value * conv[0] + conv[1], 2)
    quality = Quality.QUESTIONABLE if status == "P" else Quality.VALID
    return name, value, quality, t


def hl7_ts(t: float) -> str:
    import time

    g = time.gmtime(t)
    return time.strftime("%Y%m%d%H%M%S", g) + "+0000"


def build_ack(p: Parsed | None, code: str, now_wall: float, error: str = "", control_id: str = "") -> bytes:
    """Original-mode ACK (MSH + MSA [+ ERR]) framed for MLLP."""
    cid = p.control_id if p else control_id
    send_app, send_fac = (p.receiving_app, p.receiving_facility) if p else ("PULSEGATE", "")
    recv_app, recv_fac = (p.sending_app, p.sending_facility) if p else ("", "")
    version = p.version if p else "2.6"
    segs = [
        f"MSH|^~\\&|{send_app or 'PULSEGATE'}|{send_fac}|{recv_app}|{recv_fac}|{hl7_ts(now_wall)}||ACK^R01^ACK|"
        f"A{cid}|P|{version}",
        f"MSA|{code}|{cid}",
    ]
    if error:
        segs.append(f"ERR|||207^Application internal error^HL70357|E||||{error[:80].replace('|', ' ')}")
    return SB + "\r".join(segs).encode() + b"\r" + MLLP_END


class MllpDecoder:
    """Sans-IO MLLP + HL7 for one connection: feed bytes, get Samples, send ``data_to_send()`` (ACKs)."""

    def __init__(self, default_bed: str = "", device: str = "hl7", bed_map: dict[str, str] | None = None,
                 max_message: int = 1024 * 1024) -> None:
        self.origin = Origin(default_bed, device)
        self.bed_map = bed_map or {}
        self.max_message = max_message
        self.stats = CodecStats()
        self.acks = {"AA": 0, "AE": 0}
        self._buf = b""
        self._out: list[bytes] = []

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def feed(self, data: bytes, recv_mono: float, recv_wall: float) -> list[Decoded]:
        out: list[Decoded] = []
        self.stats.bytes_in += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        pos = 0
        while True:
            start = buf.find(SB, pos)
            if start < 0:
                self._junk(len(buf) - pos)
                pos = len(buf)
                break
            if start > pos:
                self._junk(start - pos)
            end = buf.find(MLLP_END, start + 1)
            if end < 0:
                if len(buf) - start > self.max_message:
                    self.stats.bad_frames += 1
                    nxt = buf.find(SB, start + 1)
                    drop = nxt if nxt > 0 else len(buf)
                    self.stats.discarded_bytes += drop - start
                    pos = drop
                    continue
                pos = start
                break
            nested = buf.rfind(SB, start + 1, end)
            if nested > 0:  # a message cut short: its tail never came, a new one started
                self.stats.bad_frames += 1
                self.stats.discarded_bytes += nested - start
                start = nested
            self._message(buf[start + 1 : end], recv_mono, recv_wall, out)
            pos = end + 2
        self._buf = buf[pos:]
        return out

    def _junk(self, n: int) -> None:
        if n > 0:
            self.stats.bad_frames += 1
            self.stats.discarded_bytes += n

    def _message(self, msg: bytes, mono: float, wall: float, out: list[Decoded]) -> None:
        try:
            p = parse_message(msg, self.stats)
        except Hl7Error as exc:
            self.stats.bad_frames += 1
            cid = ""
            head = msg[:512].split(b"\r", 1)[0].split(b"|")
            if len(head) > 9:
                cid = head[9].decode("latin-1")
            self._out.append(build_ack(None, "AE", wall, str(exc), cid))
            self.acks["AE"] += 1
            return
        self.stats.frames += 1
        bed = self.bed_map.get(p.location) or self.bed_map.get(p.bed) or self.origin.bed
        origin = Origin(bed, self.origin.device) if bed != self.origin.bed else self.origin
        for name, value, quality, t in p.observations:
            s = make_sample(origin, name, value, quality, mono, wall, t)
            s.patient = p.patient
            out.append(s)
        self.stats.samples += len(p.observations)
        self._out.append(build_ack(p, "AA", wall))
        self.acks["AA"] += 1
