"""Nurse verdicts and clinical events (issue 12, slice 1).

Unit: the fixed-code checks of clinical/feedback.py. Integration, real parts only: an EdgeDaemon and a
CloudDaemon built from TOML, a real mosquitto as the local bus and the cloud broker, a real influxd, the
nurse page over TLS behind its login. Alarms are raised by samples fed into the daemon's clinical stage;
they are acknowledged through the local MQTT alarm API and the nurse page, with verdicts; a verdict with
free text or an identifier is refused and counted while the acknowledgement still happens; verdicts and
clinical events arrive in InfluxDB with the patient as the gateway's pseudonym and no free text anywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.localservices import Influxd, Mosquitto, free_port
from clinical.feedback import EventError, VerdictCheck, check_event, check_verdict
from clinical.sample import Sample
from cloud.config import load_cloud_config
from cloud.daemon import CloudDaemon
from edge.config import load_edge_config
from edge.daemon import EdgeDaemon
from edge.feedback import actions_topic
from edge.pseudonym import Pseudonymizer
from runtime.security.tls import write_selfsigned
from tests.security_fixtures import PASSWORDS, make_users
from tests.test_end_to_end import influxql
from wire import codec
from wire.messages import VERSION, ClinicalEvent, Verdict

REPO = Path(__file__).resolve().parents[1]
KEY = "0123456789abcdef0123456789abcdef"


def test_verdict_codes_only() -> None:
    assert check_verdict({"alarm_id": "a"}) == VerdictCheck(None, None)
    assert check_verdict({"alarm_id": "a", "verdict": "artifact"}).code == "artifact"
    assert check_verdict({"alarm_id": "a", "verdict": "already_known", "initials": "NN"}).code == "already_known"
    assert check_verdict({"alarm_id": "a", "verdict": "Mr Smith was fine"}).rejected == "not_a_code"
    assert check_verdict({"alarm_id": "a", "verdict": "MRN-123"}).rejected == "not_a_code"
    assert check_verdict({"alarm_id": "a", "verdict": ["artifact"]}).rejected == "not_a_code"
    assert check_verdict({"alarm_id": "a", "verdict": "artifact", "note": "bed 3 patient"}).rejected == "extra_field"
    assert check_verdict({"alarm_id": "a", "patient": "MRN-1"}).rejected == "extra_field"


def test_clinical_event_checks() -> None:
    now = 1_700_000_000.0
    assert check_event({"bed": "b1", "code": "icu_transfer"}, now) == ("b1", "icu_transfer", now)
    assert check_event({"bed": "b1", "code": "sepsis_pathway", "t": now - 3600}, now)[2] == now - 3600
    for bad in ({"bed": "b1", "code": "discharged"}, {"bed": "b1", "code": "icu_transfer", "note": "x"},
                {"bed": "b1", "code": "icu_transfer", "t": now - 3 * 86400}, {"bed": "", "code": "icu_transfer"},
                {"bed": "b1", "code": "icu_transfer", "t": True}, {"bed": "b1", "code": "icu_transfer", "t": "now"}):
        with pytest.raises(EventError):
            check_event(bad, now)


def test_contract_round_trip_and_strict_codes() -> None:
    v = Verdict(v=VERSION, gw="g", seq=3, alarm_id="a1", bed="b", patient="p" * 32, t=1, at=2, verdict="artifact",
                source="threshold", condition="spo2_low", priority="medium", by="nina")
    assert codec.decode(codec.encode(v)) == v
    e = ClinicalEvent(v=VERSION, gw="g", seq=4, bed="b", patient="p" * 32, t=1, code="icu_transfer", recorded=2,
                      by="nina")
    assert codec.decode(codec.encode(e)) == e
    import msgspec

    forged = msgspec.msgpack.encode({**msgspec.to_builtins(v), "verdict": "patient John Smith"})
    with pytest.raises(codec.WireError) as err:
        codec.decode(forged)
    assert err.value.reason == "schema"  # the cloud refuses anything but the codes as well


def cloud_toml(tmp: Path, unique: str, broker: Mosquitto, influx: Influxd) -> Path:
    """The cloud daemon's ingest on ``broker`` into ``influx`` (database ``unique``)."""
    cloud = tmp / "cloud.toml"
    cloud.write_text(f"""
[cloud]
id = "c-{unique}"
[api]
port = 0
[ingest]
host = "127.0.0.1"
port = {broker.port}
client_id = "ingest-{unique}"
group = "g{unique}"
deadletter_dir = "{tmp / 'dead'}"
flush_s = 0.2
[influx]
url = "{influx.url}"
database = "{unique}"
""")
    return cloud


def _configs(tmp: Path, unique: str, broker: Mosquitto, influx: Influxd, http_port: int) -> tuple[Path, Path]:
    (tmp / "pseudonym-key").write_text(KEY)
    state = tmp / "state"
    state.mkdir()
    make_users(state / "users.json")
    write_selfsigned(tmp / "cert.pem", tmp / "key.pem", ["127.0.0.1"])
    edge = tmp / "edge.toml"
    edge.write_text(f"""
[gateway]
id = "gw-{unique}"
site = "ward-7"
state_dir = "{state}"
pseudonym_key = "pseudonym-key"
[http]
listen = "127.0.0.1"
port = {http_port}
[http.tls]
cert = "cert.pem"
key = "key.pem"
[local_bus]
host = "127.0.0.1"
port = {broker.port}
[summaries]
interval_s = 1
[uplink]
host = "127.0.0.1"
port = {broker.port}
outbox_path = "outbox.sqlite"
[clinical]
default_profile = "bedside"
[models]
trusted_keys = ["{REPO / 'examples' / 'keys' / 'dev-signing.pub'}"]
[[beds]]
id = "bed-01"
patient = "MRN-777001"
[[beds]]
id = "bed-02"
patient = "MRN-777002"
""")
    return edge, cloud_toml(tmp, unique, broker, influx)


async def _until(cond: Any, what: str, within_s: float = 90.0) -> None:
    deadline = time.monotonic() + within_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.integration
async def test_verdicts_and_events_reach_influx_pseudonymised(
        tmp_path: Path, broker: Mosquitto, influx: Influxd, unique: str) -> None:
    import aiomqtt

    http_port = free_port()
    edge_toml, cloud_toml = _configs(tmp_path, unique, broker, influx, http_port)
    cloud = CloudDaemon(load_cloud_config(cloud_toml), tmp_path)
    edge = EdgeDaemon(load_edge_config(edge_toml), tmp_path)
    gw = f"gw-{unique}"
    cloud_stop, edge_stop = asyncio.Event(), asyncio.Event()
    cloud_task = asyncio.create_task(cloud.run(cloud_stop, install_signals=False))
    edge_task = asyncio.create_task(edge.run(edge_stop, install_signals=False))
    try:
        assert edge.local_actions is not None
        await asyncio.wait_for(edge.local_actions.subscribed.wait(), 30)
        now_m, now_w = time.monotonic(), time.time()
        for bed, param, value in (("bed-01", "nibp_sys", 80.0), ("bed-02", "nibp_sys", 82.0),
                                  ("bed-01", "temperature", 39.6)):
            edge.clinical.on_sample(Sample(bed, param, value, "", now_m, now_w))
        alarms = {(a.bed, a.param): a.alarm_id for a in edge.clinical.manager.open_alarms()}
        a_mqtt, b_mqtt, c_http = (alarms[("bed-01", "nibp_sys")], alarms[("bed-02", "nibp_sys")],
                                  alarms[("bed-01", "temperature")])

        # the local MQTT alarm API (nurse call): one verdict accepted, one with free text refused, both acked
        results: list[dict[str, Any]] = []
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"nursecall-{unique}") as mq:
            await mq.subscribe(actions_topic(gw, "result"), qos=1)

            async def ask(leaf: str, body: dict[str, Any]) -> dict[str, Any]:
                await mq.publish(actions_topic(gw, leaf), json.dumps(body), qos=1)
                async with asyncio.timeout(20):
                    async for m in mq.messages:
                        r: dict[str, Any] = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        results.append(r)
                        return r
                raise AssertionError("no result")

            r1 = await ask("ack", {"alarm_id": a_mqtt, "by": "nina", "verdict": "artifact"})
            assert r1 == {"action": "acknowledge", "ok": True, "alarm_id": a_mqtt, "verdict": "artifact"}
            r2 = await ask("ack", {"alarm_id": b_mqtt, "by": "nina", "verdict": "artifact",
                                   "note": "Mr Smith MRN-777002 was fine"})
            assert r2["ok"] and r2["verdict"] is None and r2["verdict_rejected"] == "extra_field"
            r3 = await ask("event", {"bed": "bed-02", "code": "icu_transfer", "by": "nina"})
            assert r3["ok"] and r3["code"] == "icu_transfer"
            r4 = await ask("ack", {"alarm_id": "no-such", "by": "nina"})
            assert not r4["ok"] and "no such" in r4["error"]
            r5 = await ask("ack", "not json at all")  # type: ignore[arg-type]
            assert not r5["ok"]
        acked = {a.alarm_id: a for a in edge.clinical.manager.open_alarms()}
        assert acked[b_mqtt].acked_by == "nina@nurse-call"  # the acknowledgement itself still happened

        # the nurse page over TLS, logged in as the nurse
        url = f"https://127.0.0.1:{http_port}"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=False)) as s:
            for _ in range(100):
                try:
                    r = await s.post(url + "/auth/login", json={"user": "nina", "password": PASSWORDS["nina"]})
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            assert r.status == 200
            hdr = {"X-CSRF-Token": (await r.json())["csrf"], "Origin": url}
            r = await s.post(url + "/nurse/api/ack", json={"alarm_id": c_http, "verdict": "not_actionable"},
                             headers=hdr)
            assert r.status == 200 and (await r.json())["verdict"] == "not_actionable"
            r = await s.post(url + "/nurse/api/ack", json={"alarm_id": c_http, "verdict": "MRN-777001"},
                             headers=hdr)
            body = await r.json()
            assert r.status == 200 and body["ok"] and body["verdict_rejected"] == "not_a_code"
            r = await s.post(url + "/nurse/api/event", json={"bed": "bed-01", "code": "rapid_response",
                                                             "t": time.time() - 600}, headers=hdr)
            assert r.status == 200, await r.text()
            r = await s.post(url + "/nurse/api/event", json={"bed": "bed-01", "code": "rapid_response",
                                                             "note": "called Dr X"}, headers=hdr)
            assert r.status == 400
            r = await s.get(url + "/metrics", headers=hdr)
            metrics = await r.text() if r.status == 200 else ""
        fb = edge.feedback
        assert dict(fb.verdicts_rejected) == {"extra_field": 1, "not_a_code": 1}
        assert fb.verdicts_sent == 2 and fb.events_sent == 2 and fb.events_rejected == 1
        if metrics:
            assert 'pulsegate_verdicts_rejected_total{reason="extra_field"} 1.0' in metrics

        rows: dict[str, list[dict[str, Any]]] = {}

        def stored() -> bool:
            for m in ("verdicts", "clinical_events"):
                rows[m] = influxql(influx, unique, f"SELECT * FROM {m} WHERE gateway = '{gw}'")
            return len(rows["verdicts"]) == 2 and len(rows["clinical_events"]) == 2

        try:
            await _until(stored, "verdicts and events in InfluxDB")
        except AssertionError:
            raise AssertionError(f"{rows} {influxql(influx, unique, 'SHOW MEASUREMENTS')} {list((tmp_path / 'dead').rglob('*'))}") from None
        everything = json.dumps(influxql(influx, unique, f"SELECT * FROM /.*/ WHERE gateway = '{gw}'"))
    finally:
        edge_stop.set()
        await asyncio.wait_for(edge_task, 30)
        cloud_stop.set()
        await asyncio.wait_for(cloud_task, 30)
    pseudo = Pseudonymizer(KEY.encode()).pseudonym
    verdicts = {r["alarm_id"]: r for r in rows["verdicts"]}
    assert verdicts[a_mqtt]["verdict"] == "artifact" and verdicts[a_mqtt]["by"] == "nina@nurse-call"
    assert verdicts[a_mqtt]["patient"] == pseudo("MRN-777001") and verdicts[a_mqtt]["source"] == "threshold"
    assert verdicts[c_http]["verdict"] == "not_actionable" and verdicts[c_http]["by"] == "nina"
    events = {r["code"]: r for r in rows["clinical_events"]}
    assert events["icu_transfer"]["patient"] == pseudo("MRN-777002")
    assert events["rapid_response"]["bed"] == "bed-01"
    assert abs(events["rapid_response"]["time"] / 1e9 - (time.time() - 600)) < 120
    for secret in ("MRN", "Smith", "Dr X"):
        assert secret not in everything
