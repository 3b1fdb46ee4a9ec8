"""Nonin OEM III serial data format #2: 5-byte frames, 25 frames a packet. Sans-IO decoder.

Sources (see ../shared/REFERENCES.md): Nonin OEM III module specification (public
PDF); pez-globo/pufferfish-software firmware/.../Serial/Nonin/FrameReceiver.cpp,
PacketReceiver.cpp, PacketParser.cpp; mdpnp/mdpnp devices/nonin/.../pulseox
(Packet.java, Status.java). 9600 baud 8N1, 75 frames/s, 3 packets/s.

Frame ``[0x01, STATUS, PLETH, DATA, CHK]``, ``CHK = (b0+b1+b2+b3) mod 256``.
STATUS: bit7 always 1; bit6 SNSD sensor disconnect; bit5 ARTF artifact; bit4 OOT
out of track; bit3 SNSA sensor alarm; bit2/bit1 RPRF/GPRF perfusion (both =
yellow); bit0 SYNC, set on the first frame of each packet. DATA by frame index:
0/1 HR MSB/LSB (9 bits: HR = (MSB & 0x03) << 7 | (LSB & 0x7F)), 2 SpO2, 3 firmware
revision, 8 SpO2-D, 9 SpO2 fast, 10 beat-to-beat SpO2, 13/14 E-HR, 15 E-SpO2,
16 E-SpO2-D, 19/20 HR-D, 21/22 E-HR-D. Missing values: HR 511, SpO2 127. Example
sync frame: ``01 81 80 00 02``. (Pufferfish's PacketParser masks the HR MSB with
``<< 7 & 0x18``, which loses HR bit 8; we follow the OEM III specification.)

Each packet yields ``pulse_rate`` and ``spo2`` (the 4-beat averages of frames 0-2)
as soon as its first three frames arrived intact; quality comes from the STATUS
bits of those frames. Sensor disconnect is a technical condition (``sensor_off``,
values NaN), a sensor alarm a ``probe_fault``.

For throughput the decoder validates frames with numpy over the whole receive
buffer (checksum and framing at every offset at once), walks runs of aligned
valid frames, and resynchronises after damage at the next offset where a valid
frame is followed by another valid frame.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from clinical.sample import Quality
from firmware_bridge.codec import CodecStats, ConditionTracker, Decoded, Origin, make_sample

FRAME = 5
PACKET_FRAMES = 25
MISSING_HR = 511
MISSING_SPO2 = 127
ST_ALWAYS = 0x80
ST_SNSD = 0x40
ST_ARTF = 0x20
ST_OOT = 0x10
ST_SNSA = 0x08
ST_RPRF = 0x04
ST_GPRF = 0x02
ST_SYNC = 0x01
NAN = math.nan


def frame(status: int, pleth: int, data: int) -> bytes:
    """One OEM III frame with its checksum."""
    return bytes((0x01, status, pleth, data, (0x01 + status + pleth + data) & 0xFF))


def status_quality(status: int) -> tuple[Quality, set[str]]:
    q = Quality.VALID
    conds: set[str] = set()
    if status & ST_SNSD:
        q |= Quality.SENSOR_OFF
        conds.add("sensor_off")
    if status & ST_SNSA:
        q |= Quality.UNAVAILABLE
        conds.add("probe_fault")
    if status & ST_ARTF:
        q |= Quality.ARTIFACT
    if status & ST_OOT:
        q |= Quality.QUESTIONABLE
    return q, conds


class NoninDecoder:
    """Decode OEM III frames/packets into pulse_rate and spo2 Samples."""

    max_buffer = 4 * PACKET_FRAMES * FRAME

    def __init__(self, bed: str = "", device: str = "nonin") -> None:
        self.origin = Origin(bed, device)
        self.stats = CodecStats()
        self.conditions = ConditionTracker(self.origin)
        self.packets = 0
        self._buf = b""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes, recv_mono: float, recv_wall: float) -> list[Decoded]:
        out: list[Decoded] = []
        self.stats.bytes_in += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        if n < FRAME:
            self._buf = buf
            return out
        a = np.frombuffer(buf, dtype=np.uint8)
        m = n - FRAME + 1  # offsets where a whole frame fits
        s = (a[:m].astype(np.uint16) + a[1 : m + 1] + a[2 : m + 2] + a[3 : m + 3]) & 0xFF
        valid = (a[:m] == 1) & ((a[1 : m + 1] & ST_ALWAYS) != 0) & (s == a[4:n])
        pos = 0
        keep_from = -1
        while pos < m:
            if valid[pos]:
                run = valid[pos:m:FRAME]
                bad = np.flatnonzero(~run)
                k = int(bad[0]) if len(bad) else len(run)
                frames = a[pos : pos + FRAME * k].reshape(k, FRAME)
                at_end = pos + FRAME * k >= m
                used = self._packets(frames, at_end, recv_mono, recv_wall, out)
                self.stats.frames += used
                pos += FRAME * used
                if used < k:  # a packet start waiting for its next frames
                    keep_from = pos
                    break
                continue
            cand = np.flatnonzero(valid[pos + 1 :]) + (pos + 1)
            if len(cand):
                nxt = cand + FRAME
                ok = (nxt >= m) | valid[np.minimum(nxt, m - 1)]
                good = cand[ok]
            else:
                good = cand
            if not len(good):
                keep_from = max(pos, n - FRAME + 1)
                self.stats.discarded_bytes += keep_from - pos
                self.stats.bad_frames += 1
                break
            q = int(good[0])
            self.stats.bad_frames += 1
            self.stats.discarded_bytes += q - pos
            pos = q
        if keep_from < 0:
            keep_from = pos
        rest = buf[keep_from:]
        if len(rest) > self.max_buffer:
            self.stats.discarded_bytes += len(rest) - self.max_buffer
            rest = rest[-self.max_buffer :]
        self._buf = rest
        return out

    def _packets(self, f: npt.NDArray[np.uint8], at_end: bool, recv_mono: float, recv_wall: float,
                 out: list[Decoded]) -> int:
        """Emit the packets whose frames 0-2 lie in ``f``; returns how many frames were consumed."""
        k = len(f)
        sync = (f[:, 1] & ST_SYNC) != 0
        starts = np.flatnonzero(sync)
        used = k
        if at_end and len(starts) and starts[-1] > k - 3:
            used = int(starts[-1])  # wait for frames 1 and 2 of this packet
            starts = starts[:-1]
        starts = starts[starts + 2 < k]
        if not len(starts):
            return used
        # frames 1 and 2 must not themselves be sync frames (else the packet is short)
        starts = starts[~(sync[starts + 1] | sync[starts + 2])]
        d = f[:, 3]
        hrs = (((d[starts] & 0x03).astype(np.int32) << 7) | (d[starts + 1] & 0x7F)).tolist()
        spo2s = (d[starts + 2] & 0x7F).tolist()
        sts = (f[starts, 1] | f[starts + 1, 1] | f[starts + 2, 1]).tolist()
        o = self.origin
        tracker = self.conditions
        for hr, spo2, st in zip(hrs, spo2s, sts, strict=True):
            quality, conds = status_quality(st)
            tracker.update(conds, recv_mono, recv_wall, out, "spo2", f"STATUS={st:02X}")
            hide = quality & (Quality.SENSOR_OFF | Quality.UNAVAILABLE)
            if hide or hr == MISSING_HR:
                out.append(make_sample(o, "pulse_rate", NAN, quality | Quality.UNAVAILABLE, recv_mono, recv_wall))
            else:
                out.append(make_sample(o, "pulse_rate", float(hr), quality, recv_mono, recv_wall))
            if hide or spo2 == MISSING_SPO2:
                out.append(make_sample(o, "spo2", NAN, quality | Quality.UNAVAILABLE, recv_mono, recv_wall))
            else:
                out.append(make_sample(o, "spo2", float(spo2), quality, recv_mono, recv_wall))
        self.packets += len(hrs)
        self.stats.samples += 2 * len(hrs)
        return used


def packet(hr: int, spo2: int, status: int = 0, pleth: list[int] | None = None, firmware: int = 0x2B) -> bytes:
    """A 25-frame OEM III packet as the module sends it (values also in the E-/display slots)."""
    data = [0] * PACKET_FRAMES
    data[0], data[1], data[2], data[3] = (hr >> 7) & 0x03, hr & 0x7F, spo2 & 0x7F, firmware
    data[8] = data[9] = data[10] = data[15] = data[16] = spo2 & 0x7F
    for msb, lsb in ((13, 14), (19, 20), (21, 22)):
        data[msb], data[lsb] = data[0], data[1]
    pl = pleth or [128] * PACKET_FRAMES
    return b"".join(
        frame(ST_ALWAYS | status | (ST_SYNC if i == 0 else 0), pl[i] & 0xFF, data[i]) for i in range(PACKET_FRAMES)
    )
