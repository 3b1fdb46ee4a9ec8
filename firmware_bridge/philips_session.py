"""The gateway side of an IntelliVue MIB/RS232 Data Export session, as a sans-IO state machine.

Sources (../shared/REFERENCES.md): Philips IntelliVue Data Export Interface
Programming Guide; xeonfusion/VSCaptureMP (ProgramMP.cs/Class1.cs session flow);
mdpnp/mdpnp devices/philips/.../intellivue.

Sequence: on connect send the Association Request (AARQ) -> the monitor answers
the association result (AARE, SPDU 0x0E) and an MDS Create Event Report -> answer
with the MDS create result -> poll numerics (NOM_ACT_POLL_MDIB_DATA 3094, or the
extended poll 61755) every ``poll_interval_s``. Keep-alive: resend the MDS create
result every 6 s; re-poll the MDS attributes every 60 s. A refused or aborted
association, or no reply for ``data_timeout_s``, starts a new association.

The session never does I/O and never reads a clock: the transport calls
:meth:`connection_made` and :meth:`tick` with the monotonic time and
:meth:`feed` with the bytes and their receive times, and after each call sends
what :meth:`data_to_send` returns. Numerics come out as Samples with the
MeasurementState mapped to quality flags and the FLOAT specials (NaN, NRes,
+/-INF) as NaN + UNAVAILABLE.
"""

from __future__ import annotations

import math
import struct

from clinical.parameters import PARAMETERS, Parameter
from clinical.sample import Quality, Sample
from firmware_bridge.codec import CodecStats, Decoded, Origin
from firmware_bridge.ieee11073_float import Special, decode_float
from firmware_bridge.philips_framing import Deframer, encode_frame
from firmware_bridge.philips_mib import (
    AARQ,
    AB_SPDU,
    AC_SPDU,
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    DN_SPDU,
    FN_SPDU,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_MOC_VMS_MDS,
    NOM_NOTI_MDS_CREAT,
    PARAM_UNIT,
    PHYSIO,
    RELEASE_RESPONSE,
    RF_SPDU,
    ROER_APDU,
    ROIV_APDU,
    ROLRS_APDU,
    RORS_APDU,
    SPPDU,
    UNITS,
    PduError,
    mds_create_result,
    parse_poll_reply,
    poll_request,
    state_quality,
)

IDLE, ASSOCIATING, WAIT_MDS_CREATE, ASSOCIATED = "idle", "associating", "wait_mds_create", "associated"
_HIDE = Quality.UNAVAILABLE


class PhilipsSession:
    """Association, keep-alive and polling for one monitor; decodes its numerics."""

    def __init__(self, bed: str = "", device: str = "intellivue", poll_interval_s: float = 1.0,
                 extended: bool = False, keepalive_s: float = 6.0, mds_poll_s: float = 60.0,
                 assoc_timeout_s: float = 5.0, data_timeout_s: float = 15.0) -> None:
        self.origin = Origin(bed, device)
        self.stats = CodecStats()
        self.deframer = Deframer()
        self.poll_interval_s = poll_interval_s
        self.extended = extended
        self.keepalive_s = keepalive_s
        self.mds_poll_s = mds_poll_s
        self.assoc_timeout_s = assoc_timeout_s
        self.data_timeout_s = data_timeout_s
        self.state = IDLE
        self.associations = 0
        self.pdu_errors = 0
        self.remote_errors = 0
        self.unknown_units = 0
        self.sent: list[str] = []  # names of requests sent, newest last (bounded), for tests and logs
        self._out: list[bytes] = []
        self._invoke = 0
        self._poll_number = 0
        self._deadline = 0.0
        self._next_poll = 0.0
        self._next_keepalive = 0.0
        self._next_mds_poll = 0.0
        self._last_rx = 0.0
        self._event_time = 0
        self._value_cache: dict[tuple[int, int, int, int], tuple[Parameter | None, float, Quality]] = {}

    # -- what to send ---------------------------------------------------------------
    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _send(self, name: str, user_data: bytes) -> None:
        self._out.append(encode_frame(user_data))
        self.sent.append(name)
        if len(self.sent) > 64:
            del self.sent[:32]

    def _next_invoke(self) -> int:
        self._invoke = (self._invoke + 1) & 0xFFFF
        return self._invoke

    def _associate(self, now: float) -> None:
        self.state = ASSOCIATING
        self._deadline = now + self.assoc_timeout_s
        self._send("aarq", AARQ)

    # -- transport events ---------------------------------------------------------------
    def connection_made(self, now_mono: float) -> None:
        self.deframer = Deframer()
        self._out.clear()
        self._last_rx = now_mono
        self._associate(now_mono)

    def tick(self, now_mono: float) -> None:
        st = self.state
        if st == IDLE:
            return
        if st in (ASSOCIATING, WAIT_MDS_CREATE):
            if now_mono >= self._deadline:
                self._associate(now_mono)
            return
        if now_mono - self._last_rx > self.data_timeout_s:
            self._associate(now_mono)
            return
        if now_mono >= self._next_keepalive:
            self._next_keepalive = now_mono + self.keepalive_s
            self._send("keepalive", mds_create_result(self._next_invoke(), self._event_time))
        if now_mono >= self._next_mds_poll:
            self._next_mds_poll = now_mono + self.mds_poll_s
            self._poll_number = (self._poll_number + 1) & 0xFFFF
            self._send("poll_mds", poll_request(self._next_invoke(), self._poll_number, NOM_MOC_VMS_MDS))
        if now_mono >= self._next_poll:
            self._next_poll = max(self._next_poll + self.poll_interval_s, now_mono)
            self._poll_number = (self._poll_number + 1) & 0xFFFF
            self._send("poll", poll_request(self._next_invoke(), self._poll_number, extended=self.extended))

    def feed(self, data: bytes, recv_mono: float, recv_wall: float) -> list[Decoded]:
        out: list[Decoded] = []
        self.stats.bytes_in += len(data)
        d = self.deframer
        bad_before, disc_before = d.bad_frames, d.discarded_bytes
        for payload in d.feed(data):
            self.stats.frames += 1
            self._last_rx = recv_mono
            try:
                self._pdu(payload, recv_mono, recv_wall, out)
            except (PduError, struct.error, IndexError):
                self.pdu_errors += 1
                self.stats.bad_frames += 1
        self.stats.bad_frames += d.bad_frames - bad_before
        self.stats.discarded_bytes += d.discarded_bytes - disc_before
        return out

    @property
    def buffered(self) -> int:
        return self.deframer.buffered

    # -- PDUs -----------------------------------------------------------------------
    def _pdu(self, ud: bytes, mono: float, wall: float, out: list[Decoded]) -> None:
        if not ud:
            raise PduError("empty")
        if ud[0] != 0xE1:
            self._session_pdu(ud[0], mono)
            return
        if ud[:4] != SPPDU or len(ud) < 14:
            raise PduError("not a data export PDU")
        ro_type = (ud[4] << 8) | ud[5]
        if ro_type == ROIV_APDU:
            invoke_id, cmd = struct.unpack_from(">HH", ud, 8)
            if cmd == CMD_CONFIRMED_EVENT_REPORT:
                _cls, _ctx, _h, event_time, event_type = struct.unpack_from(">HHHIH", ud, 14)
                if event_type == NOM_NOTI_MDS_CREAT:
                    self._event_time = event_time
                    self._send("mds_create_result", mds_create_result(invoke_id, event_time))
                    if self.state != ASSOCIATED:
                        self.state = ASSOCIATED
                        self.associations += 1
                        self._next_poll = mono
                        self._next_keepalive = mono + self.keepalive_s
                        self._next_mds_poll = mono + self.mds_poll_s
            return
        if ro_type == RORS_APDU:
            cmd, start = struct.unpack_from(">H", ud, 10)[0], 14
        elif ro_type == ROLRS_APDU:
            cmd, start = struct.unpack_from(">H", ud, 12)[0], 16
        elif ro_type == ROER_APDU:
            self.remote_errors += 1
            return
        else:
            raise PduError(f"ro_type {ro_type}")
        if cmd != CMD_CONFIRMED_ACTION:
            return
        action = struct.unpack_from(">H", ud, start + 6)[0]
        if action == NOM_ACT_POLL_MDIB_DATA:
            self._numerics(ud, start + 10, False, wall, mono, out)
        elif action == NOM_ACT_POLL_MDIB_DATA_EXT:
            self._numerics(ud, start + 10, True, wall, mono, out)

    def _session_pdu(self, spdu: int, mono: float) -> None:
        if spdu == AC_SPDU and self.state == ASSOCIATING:
            self.state = WAIT_MDS_CREATE
            self._deadline = mono + self.assoc_timeout_s
        elif spdu == RF_SPDU:
            self.state = ASSOCIATING
            self._deadline = mono + self.assoc_timeout_s
        elif spdu == FN_SPDU:
            self._send("release_response", RELEASE_RESPONSE)
            self.state = ASSOCIATING
            self._deadline = mono + 1.0
        elif spdu in (AB_SPDU, DN_SPDU):
            self.state = ASSOCIATING
            self._deadline = mono + 1.0

    def _numerics(self, ud: bytes, start: int, extended: bool, wall: float, mono: float,
                  out: list[Decoded]) -> None:
        _poll, reply_time, observations = parse_poll_reply(ud, start, extended)
        o = self.origin
        cache = self._value_cache
        n = 0
        for physio, state, unit, raw, obs_time in observations:
            key = (physio, state, unit, raw)
            hit = cache.get(key)
            if hit is None:
                hit = self._value(physio, state, unit, raw)
                if len(cache) >= 4096:
                    cache.clear()
                cache[key] = hit
            if hit[0]:
                p = hit[0]
                out.append(Sample(o.bed, p.name, hit[1], p.unit, mono, wall, hit[2], o.device,
                                  obs_time or reply_time, "", p.mdc))
                n += 1
        self.stats.samples += n

    def _value(self, physio: int, state: int, unit: int, raw: int) -> tuple[Parameter | None, float, Quality]:
        """Decode one NuObsValue (pure, so cached): parameter, value in our unit, quality."""
        name = PHYSIO.get(physio)
        if name is None:
            return None, math.nan, Quality.UNAVAILABLE
        value, special = decode_float(raw)
        quality = state_quality(state)
        if special is not Special.NONE or math.isinf(value):
            value, quality = math.nan, quality | Quality.UNAVAILABLE
        elif unit != PARAM_UNIT[name]:
            conv = UNITS.get(unit)
            if conv is None:
                self.unknown_units += 1
                return None, math.nan, Quality.UNAVAILABLE
            value = round(value * conv[0] + conv[1], 2)
        if quality & _HIDE:
            value = math.nan
        return PARAMETERS[name], value, quality
