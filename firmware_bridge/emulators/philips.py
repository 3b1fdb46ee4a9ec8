"""IntelliVue monitor emulator: answers the association and polls over MIB/RS232 like a monitor does.

Byte formats as in firmware_bridge.philips_framing / philips_mib (the poll
replies, MDS create event report, release response and abort follow the Data
Export guide's structures; the AARE is modelled, see philips_mib.AARE). If the
gateway stops talking (no keep-alive or poll) for ``assoc_timeout_s`` real
seconds the monitor aborts the association, as a real one does.
"""

from __future__ import annotations

import math
import struct
import time

from firmware_bridge.emulators.scenarios import Scenario, VitalState
from firmware_bridge.ieee11073_float import encode_float
from firmware_bridge.philips_framing import Deframer, encode_frame
from firmware_bridge.philips_mib import (
    AARE,
    ABORT,
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    CN_SPDU,
    FN_SPDU,
    MS_INVALID,
    MS_QUESTIONABLE,
    MS_UNAVAILABLE,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_MOC_VMO_METRIC_NU,
    PHYSIO_ID,
    RELEASE_RESPONSE,
    ROIV_APDU,
    RORS_APDU,
    UNIT_BPM,
    UNIT_DEGC,
    UNIT_MMHG,
    UNIT_PERCENT,
    UNIT_RPM,
    NuObs,
    mds_create_event,
    observation,
    poll_reply,
)

_NAN_RAW = 0x007FFFFF


class PhilipsMonitorEmulator:
    """A bedside IntelliVue on its MIB/RS232 port, driven by a scenario."""

    period_s = 1.0

    def __init__(self, scenario: Scenario, assoc_timeout_s: float = 20.0) -> None:
        self.scenario = scenario
        self.assoc_timeout_s = assoc_timeout_s
        self.deframer = Deframer()
        self.state = "idle"
        self.associations = 0
        self.polls_answered = 0
        self.aborts = 0
        self._invoke = 0
        self._last_rx = time.monotonic()

    def reset(self) -> None:
        self.deframer = Deframer()
        self.state = "idle"

    def _rel_time(self, t: float) -> int:
        return int(t * 8000) & 0xFFFFFFFF  # RelativeTime: 1/8 ms ticks

    def produce(self, t: float, wall: float) -> bytes:
        if self.state != "idle" and time.monotonic() - self._last_rx > self.assoc_timeout_s:
            self.state = "idle"
            self.aborts += 1
            return encode_frame(ABORT)
        return b""

    def receive(self, data: bytes, t: float, wall: float) -> bytes:
        out: list[bytes] = []
        for ud in self.deframer.feed(data):
            self._last_rx = time.monotonic()
            reply = self._handle(ud, t, wall)
            out.extend(encode_frame(r) for r in reply)
        return b"".join(out)

    def _handle(self, ud: bytes, t: float, wall: float) -> list[bytes]:
        if not ud:
            return []
        if ud[0] == CN_SPDU:
            self.state = "wait_result"
            self._invoke = (self._invoke + 1) & 0xFFFF
            return [AARE, mds_create_event(self._invoke, self._rel_time(t), wall)]
        if ud[0] == FN_SPDU:
            self.state = "idle"
            return [RELEASE_RESPONSE]
        if ud[0] != 0xE1 or len(ud) < 14:
            return []
        ro_type, = struct.unpack_from(">H", ud, 4)
        invoke_id, cmd = struct.unpack_from(">HH", ud, 8)
        if ro_type == RORS_APDU and cmd == CMD_CONFIRMED_EVENT_REPORT:
            if self.state == "wait_result":
                self.state = "associated"
                self.associations += 1
            return []
        if ro_type == ROIV_APDU and cmd == CMD_CONFIRMED_ACTION and self.state == "associated" and len(ud) >= 32:
            action, _len, poll_number, _part, code = struct.unpack_from(">HHHHH", ud, 24)
            if action not in (NOM_ACT_POLL_MDIB_DATA, NOM_ACT_POLL_MDIB_DATA_EXT):
                return []
            extended = action == NOM_ACT_POLL_MDIB_DATA_EXT
            obs = self.observations(self.scenario.at(t), wall) if code == NOM_MOC_VMO_METRIC_NU else []
            self.polls_answered += 1
            return [poll_reply(invoke_id, poll_number, self._rel_time(t), wall, obs, extended=extended,
                               sequence_no=self.polls_answered & 0xFFFF)]
        return []

    @staticmethod
    def observations(s: VitalState, wall: float) -> list[bytes]:
        def nu(name: str, value: float, unit: int, state: int = 0, digits: int = 0) -> NuObs:
            raw = _NAN_RAW if math.isnan(value) else encode_float(round(value, digits), digits)
            return NuObs(PHYSIO_ID[name], state, unit, raw)

        ox_state = (MS_INVALID | MS_UNAVAILABLE) if s.probe_off else (MS_QUESTIONABLE if s.artifact else 0)
        nan = math.nan
        spo2 = nan if s.probe_off else s.spo2
        pr = nan if s.probe_off else s.hr
        pi = nan if s.probe_off else s.pi
        return [
            observation(1, [nu("heart_rate", s.hr, UNIT_BPM, MS_QUESTIONABLE if s.artifact else 0)], "HR", wall),
            observation(2, [nu("pulse_rate", pr, UNIT_BPM, ox_state)], "Pulse", wall),
            observation(3, [nu("spo2", spo2, UNIT_PERCENT, ox_state)], "SpO\u2082", wall),
            observation(4, [nu("perfusion_index", pi, UNIT_PERCENT, ox_state, 2)], "Perf", wall),
            observation(5, [nu("resp_rate", s.rr, UNIT_RPM)], "RR", wall),
            observation(6, [nu("nibp_sys", s.nibp_sys, UNIT_MMHG), nu("nibp_dia", s.nibp_dia, UNIT_MMHG),
                            nu("nibp_mean", s.nibp_mean, UNIT_MMHG)], "NBP", wall),
            observation(7, [nu("temperature", s.temp, UNIT_DEGC, 0, 1)], "T1", wall),
        ]
