"""HL7 ORU^R01 emulator: a central station / Mindray-style monitor pushing numerics over MLLP.

:func:`oru_message` builds the message (IHE PCD-01 style OBX with MDC codes);
:class:`Hl7Sender` is a thread that connects to a gateway's MLLP listener, sends
one message per ``period_s`` for each bed, waits for the ACK and reconnects with
backoff when the link drops.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time

from firmware_bridge.emulators.scenarios import Scenario, VitalState
from firmware_bridge.hl7_mllp import MLLP_END, SB, hl7_ts

# (parameter, MDC code, ref, value getter, unit code, unit ref, decimals)
_OBX = (
    ("heart_rate", "147842", "MDC_ECG_HEART_RATE", "hr", "264864", "MDC_DIM_BEAT_PER_MIN", 0),
    ("spo2", "150456", "MDC_PULS_OXIM_SAT_O2", "spo2", "262688", "MDC_DIM_PERCENT", 0),
    ("pulse_rate", "149530", "MDC_PULS_OXIM_PULS_RATE", "hr", "264864", "MDC_DIM_BEAT_PER_MIN", 0),
    ("resp_rate", "151562", "MDC_RESP_RATE", "rr", "264928", "MDC_DIM_RESP_PER_MIN", 0),
    ("nibp_sys", "150021", "MDC_PRESS_BLD_NONINV_SYS", "nibp_sys", "266016", "MDC_DIM_MMHG", 0),
    ("nibp_dia", "150022", "MDC_PRESS_BLD_NONINV_DIA", "nibp_dia", "266016", "MDC_DIM_MMHG", 0),
    ("nibp_mean", "150023", "MDC_PRESS_BLD_NONINV_MEAN", "nibp_mean", "266016", "MDC_DIM_MMHG", 0),
    ("temperature", "150364", "MDC_TEMP_BODY", "temp", "268192", "MDC_DIM_DEGC", 1),
)


def oru_message(s: VitalState, control_id: str, wall: float, bed: str = "3", unit: str = "ICU1",
                patient: str = "PAT0001", eui64: str = "0012345678ABCDEF") -> bytes:
    """One ORU^R01 message (segments CR-terminated, not MLLP framed)."""
    ts = hl7_ts(wall)
    segs = [
        f"MSH|^~\\&|MONITOR^{eui64}^EUI-64|WARD|PULSEGATE|HOSPITAL|{ts}||ORU^R01^ORU_R01|{control_id}|P|2.6|||NE|AL"
        f"||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        f"PID|||{patient}^^^HOSP^MR||DOE^JANE",
        f"PV1||I|{unit}^1^{bed}",
        f"OBR|1|{control_id}^MONITOR|{control_id}^MONITOR|182777000^monitoring of patient^SCT|||{ts}",
    ]
    for i, (name, code, ref, attr, ucode, uref, dec) in enumerate(_OBX, start=1):
        v = getattr(s, attr)
        status = "R"
        text = f"{v:.{dec}f}"
        if s.probe_off and name in ("spo2", "pulse_rate"):
            status, text = "X", ""
        elif isinstance(v, float) and math.isnan(v):
            status, text = "X", ""
        segs.append(f"OBX|{i}|NM|{code}^{ref}^MDC|1.1.1.{i}|{text}|{ucode}^{uref}^MDC|||||{status}|||{ts}|||{eui64}")
    return ("\r".join(segs) + "\r").encode()


class Hl7Sender:
    """A thread sending ORU^R01 for ``beds`` every ``period_s`` to host:port; ``stop()`` ends it."""

    def __init__(self, host: str, port: int, scenario: Scenario, beds: list[str] | None = None,
                 period_s: float = 1.0, speed: float = 1.0, timeout_s: float = 5.0) -> None:
        self.host, self.port = host, port
        self.scenario = scenario
        self.beds = beds or ["3"]
        self.period_s = period_s
        self.speed = speed
        self.timeout_s = timeout_s
        self.sent = 0
        self.acked = 0
        self.nacked = 0
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hl7-emulator[{host}:{port}]", daemon=True)
        self._t0 = 0.0
        self._wall0 = time.time()

    def start(self) -> Hl7Sender:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                    self.connects += 1
                    backoff = 0.1
                    self._session(sock)
            except OSError:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _session(self, sock: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            t = (time.monotonic() - self._t0) * self.speed
            state = self.scenario.at(t)
            for bed in self.beds:
                cid = f"M{self.sent + 1:08d}"
                sock.sendall(SB + oru_message(state, cid, self._wall0 + t, bed=bed) + MLLP_END)
                self.sent += 1
                while MLLP_END not in buf:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionResetError("gateway closed the connection")
                    buf += chunk
                ack, _, buf = buf.partition(MLLP_END)
                if b"MSA|AA|" + cid.encode() in ack:
                    self.acked += 1
                else:
                    self.nacked += 1
            with contextlib.suppress(Exception):
                self._stop.wait(self.period_s / self.speed)
