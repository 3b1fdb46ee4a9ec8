"""Demo-like fleet data in a real InfluxDB (the ingest's own point mapping), and a real FHIR server.

``ward_lines`` produces what two gateways uplink over ``minutes`` one-minute
intervals: summaries of every parameter of three beds (one of them
deteriorating), NEWS2 scores, alarms that are raised, acknowledged and
cleared, status with backlog and model versions, a gap and an event. It is
written with cloud.points.to_lines, exactly as the ingest writes it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.localservices import free_port
from cloud.influx import InfluxWriter
from cloud.points import to_lines
from wire.messages import Alarm, Event, Gap, Score, Scores, Status, Summary, SummaryItem

FHIR_SERVER_DIR = Path(__file__).parent / "fhir_server"
PATIENTS = {("ward7-gw1", "bed-01"): "a1" * 16, ("ward7-gw1", "bed-02"): "b2" * 16, ("amb-12", "stretcher"): "c3" * 16}
BASE = {"heart_rate": 78.0, "pulse_rate": 77.0, "spo2": 97.0, "resp_rate": 15.0, "temperature": 36.8,
        "nibp_sys": 124.0, "nibp_dia": 78.0, "nibp_mean": 93.0}
MIN = 60 * 10**9


def ward_lines(now_ns: int, minutes: int = 12) -> list[str]:
    start = (now_ns // MIN - minutes) * MIN
    lines: list[str] = []
    seq: dict[tuple[str, str], int] = {}

    def add(gw: str, site: str, stream: str, msg: Summary | Scores | Alarm | Status | Event | Gap) -> None:
        msg.seq = seq[(gw, stream)] = seq.get((gw, stream), -1) + 1
        lines.extend(to_lines(msg, site, stream))

    for m in range(minutes):
        t = start + m * MIN
        for (gw, bed), patient in PATIENTS.items():
            site = "stmarys" if gw.startswith("ward") else "ambulance"
            worse = m / minutes if bed == "bed-02" else 0.0  # bed-02 deteriorates
            items = []
            for param, base in BASE.items():
                v = base + {"heart_rate": 40, "pulse_rate": 40, "spo2": -9, "resp_rate": 10}.get(param, 0) * worse
                v += math.sin(m / 2 + len(param)) * (0.2 if param == "temperature" else 1.5)
                items.append(SummaryItem(bed, patient, param, t, 60, v - 2, v + 2, v, v, 0))
            add(gw, site, "summaries", Summary(v=1, gw=gw, seq=0, interval_s=60.0, items=items))
            add(gw, site, "summaries", Scores(v=1, gw=gw, seq=0, items=[
                Score(bed, patient, t, 1 + round(7 * worse), 0.1 + 0.8 * worse)]))
        add("ward7-gw1", "stmarys", "status", Status(v=1, gw="ward7-gw1", seq=0, t=t + 30 * 10**9, online=True,
                                                     backlog=m % 4, oldest_unsent_s=0.5 * (m % 4),
                                                     software="pulsegate 0.1.0",
                                                     models={"vitals-anomaly": "1.0.0", "endoscopy-seg": "1.0.0"}))
        add("amb-12", "ambulance", "status", Status(v=1, gw="amb-12", seq=0, t=t + 31 * 10**9, online=m < minutes - 2,
                                                    backlog=10 * m, oldest_unsent_s=20.0 * m,
                                                    software="pulsegate 0.1.0", models={"vitals-anomaly": "0.9.0"}))
    add("ward7-gw1", "stmarys", "status", Status(v=1, gw="ward7-gw1", seq=0, t=now_ns - 2 * 10**9, online=True,
                                                 backlog=0, software="pulsegate 0.1.0",
                                                 models={"vitals-anomaly": "1.0.0", "endoscopy-seg": "1.0.0"}))
    raised = start + (minutes - 5) * MIN + 7 * 10**9
    for alarm_id, gw, bed, prio, source, cond, param, value in (
        ("a-1", "ward7-gw1", "bed-02", "high", "threshold", "spo2_low", "spo2", 88.5),
        ("a-2", "ward7-gw1", "bed-02", "medium", "news2", "news2_medium", None, None),
        ("a-3", "amb-12", "stretcher", "low", "device", "probe_off", "spo2", None),
    ):
        site = "stmarys" if gw.startswith("ward") else "ambulance"
        kind = "technical" if source == "device" else "physiological"
        patient = PATIENTS[(gw, bed)]
        for state, dt, by in (("raised", 0, None), ("acknowledged", 40, "AB"), ("cleared", 200, None)):
            if alarm_id == "a-2" and state == "cleared":
                continue  # stays open
            add(gw, site, "alarms", Alarm(v=1, gw=gw, seq=0, alarm_id=alarm_id, bed=bed, patient=patient, t=raised,
                                          state=state, priority=prio, kind=kind, source=source,  # type: ignore[arg-type]
                                          condition=cond, value=value, param=param, by=by,
                                          score=5.0 if source == "news2" else None,
                                          latency_ms={"total": 3.5}, changed=raised + dt * 10**9))
    add("ward7-gw1", "stmarys", "events", Event(v=1, gw="ward7-gw1", seq=0, t=start + 5 * MIN, kind="model_promoted",
                                                detail={"model": "vitals-anomaly", "version": "1.0.0"}))
    add("amb-12", "ambulance", "events", Gap(v=1, gw="amb-12", seq=0, t=start + 6 * MIN, stream="bulk",
                                             first_seq=10, last_seq=19, count=10, reason="quota"))
    return lines


async def ward_database(influx_url: str, database: str) -> AsyncIterator[InfluxWriter]:
    """A fresh database holding ``ward_lines`` of now (use as an async fixture body)."""
    w = InfluxWriter(influx_url, database)
    await w.create_database()
    assert (await w.write(ward_lines(time.time_ns()))).ok
    yield w
    await w.close()


@dataclass
class FhirServer:
    url: str
    proc: subprocess.Popen[bytes]


def fhir_server() -> Iterator[FhirServer]:
    """Medplum's FHIR router under Node (tests/fhir_server/server.mjs) on a free port."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the FHIR tests need it (Node 20, then `make test` runs npm ci)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v")
    if tuple(int(x) for x in version.split(".")[:2]) < (20, 19):
        pytest.skip(f"Node.js {version} is too old for Medplum's FHIR router (needs >= 20.19)")
    if not (FHIR_SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("tests/fhir_server/node_modules is missing and npm is not installed")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=FHIR_SERVER_DIR, check=True)
    port = free_port()
    proc = subprocess.Popen([node, "server.mjs", str(port)], cwd=FHIR_SERVER_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "NODE_ENV": "test"})
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # "listening PORT" once the definitions are indexed
    if not line.startswith("listening"):
        proc.kill()
        pytest.fail(f"FHIR server did not start: {line}{proc.stdout.read().decode()[:2000]}")
    yield FhirServer(f"http://127.0.0.1:{port}", proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
