"""FHIR R4 export against a real FHIR server (Medplum's router + R4 validator under Node) and a real influxd."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.localservices import Influxd, free_port
from cloud.fhir.config import FhirConfig
from cloud.fhir.export import export_entries, run_export
from cloud.fhir.push import FhirPusher
from cloud.influx import InfluxWriter
from cloud.points import to_lines
from tests.interop_fixtures import PATIENTS, FhirServer, fhir_server, ward_database
from wire.messages import Alarm

pytestmark = pytest.mark.integration
MDC = "urn:iso:std:iso:11073:10101"


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    yield from fhir_server()


@pytest.fixture
async def server(fhir: FhirServer) -> AsyncIterator[str]:
    async with aiohttp.ClientSession() as http:
        await http.post(fhir.url + "/$reset")
    yield fhir.url


@pytest.fixture
async def ward(influx: Influxd, unique: str) -> AsyncIterator[InfluxWriter]:
    async for w in ward_database(influx.url, unique):
        yield w


async def stats(url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as http:
        return dict(await (await http.get(url + "/$stats")).json())


async def search(url: str, query: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        bundle = await (await http.get(f"{url}/{query}")).json()
        return [e["resource"] for e in bundle.get("entry", [])]


def web_app(post_root: Any) -> web.Application:
    app = web.Application()
    app.router.add_post("/", post_root)
    return app


def pusher(url: str, **kw: Any) -> FhirPusher:
    return FhirPusher(url, bundle_max_entries=8, **kw)  # Medplum refuses more conditional entries per transaction


async def test_every_resource_validates_and_a_reexport_creates_nothing(ward: InfluxWriter, server: str) -> None:
    cfg = FhirConfig()
    entries, summary = await export_entries(ward, "1h", cfg)
    by_type = Counter(e.type for e in entries)
    # 3 patients; 2 gateways + 3 bed monitors; 12 intervals x 3 beds x (5 vitals + 1 BP panel + NEWS2); 3 alarms
    assert by_type == {"Patient": 3, "Device": 5, "Observation": 12 * 3 * 7, "DetectedIssue": 3}, by_type
    report = await pusher(server).push(entries)
    assert report.ok, report.as_dict()  # the server validated every resource (and its profile) on create
    assert report.created == len(entries) and report.existing == 0
    assert await stats(server) == {"Patient": 3, "Device": 5, "Observation": 252, "Flag": 0, "DetectedIssue": 3,
                                   "creates": len(entries), "rejected": 0}

    again = await pusher(server).push((await export_entries(ward, "1h", cfg))[0])
    assert again.ok and again.created == 0 and again.existing == len(entries)
    assert (await stats(server))["Observation"] == 252 and (await stats(server))["Patient"] == 3
    assert summary["by_type"]["Observation"] == 252


async def test_resources_follow_the_vital_signs_profiles_and_link_up(ward: InfluxWriter, server: str) -> None:
    report = await pusher(server).push((await export_entries(ward, "1h", FhirConfig()))[0])
    assert report.ok, report.as_dict()
    bp = await search(server, "Observation?code=http://loinc.org|85354-9&_count=1000")
    assert len(bp) == 36
    comps = {c["code"]["coding"][0]["code"]: c for c in bp[0]["component"]}
    assert {"8480-6", "8462-4"} <= set(comps) and comps["8480-6"]["valueQuantity"]["code"] == "mm[Hg]"
    assert {c["code"] for c in comps["8480-6"]["code"]["coding"] if c["system"] == MDC} == {"150021"}
    assert not await search(server, "Observation?code=http://loinc.org|8480-6")  # never a separate systolic one
    spo2 = await search(server, "Observation?code=http://loinc.org|59408-5&_count=1")
    codes = {(c["system"], c["code"]) for c in spo2[0]["code"]["coding"]}
    assert {("http://loinc.org", "2708-6"), ("http://loinc.org", "59408-5"), (MDC, "150456")} <= codes
    assert spo2[0]["valueQuantity"]["system"] == "http://unitsofmeasure.org" and spo2[0]["valueQuantity"]["code"] == "%"
    assert spo2[0]["category"][0]["coding"][0]["code"] == "vital-signs"
    assert spo2[0]["subject"]["reference"].startswith("Patient/") and spo2[0]["device"]["reference"].startswith("Device/")
    temp = await search(server, "Observation?code=http://loinc.org|8310-5&_count=1")
    assert temp[0]["valueQuantity"]["code"] == "Cel"
    # the patient is nothing but the pseudonym
    patients = await search(server, "Patient")
    assert sorted(p["identifier"][0]["value"] for p in patients) == sorted(PATIENTS.values())
    assert all(set(p) <= {"resourceType", "id", "meta", "identifier"} for p in patients)
    # NEWS2 derivedFrom the vitals of its interval
    news2 = await search(server, "Observation?code=http://snomed.info/sct|1104051000000101&_count=1")
    derived = news2[0]["derivedFrom"]
    assert len(derived) == 6  # 5 vitals + the BP panel
    async with aiohttp.ClientSession() as http:
        first = await (await http.get(f"{server}/{derived[0]['reference']}")).json()
    assert first["effectiveDateTime"] == news2[0]["effectiveDateTime"]
    # alarms: DetectedIssue with severity, evidence and the acknowledgement as mitigation
    issues = {i["identifier"][0]["value"]: i for i in await search(server, "DetectedIssue")}
    spo2_low = issues["ward7-gw1/a-1"]
    assert spo2_low["severity"] == "high" and spo2_low["status"] == "final"
    assert [m["action"]["coding"][0]["code"] for m in spo2_low["mitigation"]] == ["acknowledged", "cleared"]
    assert spo2_low["mitigation"][0]["author"] == {"display": "AB"}
    assert spo2_low["evidence"][0]["detail"][0]["reference"].startswith("Observation/")
    assert issues["ward7-gw1/a-2"]["status"] == "preliminary" and issues["ward7-gw1/a-2"]["severity"] == "moderate"
    gateways = await search(server, "Device?identifier=urn:pulsegate:gateway|ward7-gw1")
    assert {v["value"] for v in gateways[0]["version"]} == {"pulsegate 0.1.0", "1.0.0"}
    assert gateways[0]["type"]["coding"][0]["code"] == "531981"


async def test_a_later_alarm_state_updates_the_issue_in_place(ward: InfluxWriter, server: str) -> None:
    cfg = FhirConfig()
    assert (await pusher(server).push((await export_entries(ward, "1h", cfg))[0])).ok
    open_alarm = (await search(server, "DetectedIssue?identifier=urn:pulsegate:alarm|ward7-gw1/a-2"))[0]
    assert open_alarm["status"] == "preliminary"
    rows = await ward.rows("SELECT * FROM alarms WHERE alarm_id = 'a-2' AND state = 'raised'")
    clear = Alarm(v=1, gw="ward7-gw1", seq=99, alarm_id="a-2", bed="bed-02", patient=PATIENTS[("ward7-gw1", "bed-02")],
                  t=int(rows[0]["time"]), state="cleared", priority="medium", kind="physiological", source="news2",
                  condition="news2_medium", changed=time.time_ns() - 60 * 10**9)
    assert (await ward.write(to_lines(clear, "stmarys", "alarms"))).ok
    report = await pusher(server).push((await export_entries(ward, "1h", cfg))[0])
    assert report.ok and report.created == 0
    updated = await search(server, "DetectedIssue?identifier=urn:pulsegate:alarm|ward7-gw1/a-2")
    assert len(updated) == 1 and updated[0]["status"] == "final" and updated[0]["id"] == open_alarm["id"]


async def test_a_rejected_resource_is_reported_with_the_outcome_and_nothing_else_is_lost(
        ward: InfluxWriter, server: str) -> None:
    entries, _ = await export_entries(ward, "1h", FhirConfig())
    bad = next(e for e in entries if e.value.startswith("ward7-gw1/bed-02/heart_rate/"))
    del bad.resource["category"]  # the heartrate profile requires the vital-signs category: the server refuses it
    report = await pusher(server).push(entries)
    assert [(p.resource_type, p.identifier, p.status) for p in report.rejected] == [
        ("Observation", f"urn:pulsegate:observation|{bad.value}", 400)]
    outcome = report.rejected[0].outcome
    assert outcome is not None and outcome["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "error" for i in outcome["issue"])
    assert report.skipped == [] and report.unsent == []
    assert report.created == len(entries) - 1
    s = await stats(server)
    assert s["Observation"] == 252 - 1 and s["DetectedIssue"] == 3 and s["Patient"] == 3
    # the NEWS2 of that interval is there, linked to the five others
    t = bad.value.rsplit("/", 1)[1]
    news2 = await search(server, f"Observation?identifier=urn:pulsegate:observation|ward7-gw1/bed-02/news2/{t}")
    assert len(news2) == 1 and len(news2[0]["derivedFrom"]) == 5


async def test_server_errors_are_retried_with_backoff_honouring_retry_after(ward: InfluxWriter, server: str) -> None:
    failures = {"left": 3}

    async def flaky(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if failures["left"] > 0:
            failures["left"] -= 1
            return web.json_response({"resourceType": "OperationOutcome", "issue": []}, status=503,
                                     headers={"Retry-After": "2"})
        async with aiohttp.ClientSession() as http:
            async with http.post(server + "/", data=body, headers={"Content-Type": "application/fhir+json"}) as r:
                return web.Response(body=await r.read(), status=r.status, content_type="application/fhir+json")

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    entries, _ = await export_entries(ward, "1h", FhirConfig())
    async with TestServer(web_app(flaky), host="127.0.0.1") as proxy:
        report = await pusher(str(proxy.make_url("")).rstrip("/"), sleep=sleep).push(entries)
    assert report.ok and report.retries == 3 and report.created == len(entries)
    assert slept and all(s >= 2.0 for s in slept)  # at least Retry-After
    # a base URL that is not a FHIR endpoint, a refused token: one request, everything reported unsent
    for status in (404, 401):
        async def refuse(_request: web.Request, status: int = status) -> web.Response:
            return web.json_response({}, status=status)

        async with TestServer(web_app(refuse), host="127.0.0.1") as fake:
            wrong = await FhirPusher(str(fake.make_url("")).rstrip("/"), sleep=sleep).push(entries)
        assert wrong.requests == 1 and len(wrong.unsent) == len(entries) and wrong.created == 0, status
        assert str(status) in wrong.unsent[0].reason
    # an unreachable server: bounded attempts, everything reported unsent, nothing raised
    dead = await FhirPusher(f"http://127.0.0.1:{free_port()}", max_attempts=3, sleep=sleep).push(entries[:5])
    assert len(dead.unsent) == 5 and dead.created == 0 and dead.requests == 3


async def test_export_command_writes_one_transaction_bundle(ward: InfluxWriter, server: str, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    token = tmp_path / "token"
    token.write_text("not-checked-by-the-test-server\n")
    cfg = FhirConfig(base_url=server, token_file=str(token), bundle_max_entries=8)
    summary = await run_export(ward, cfg, "1h", out=out, push=True)
    assert summary["ok"] and summary["push"]["created"] == summary["resources"] == 263
    bundle = json.loads(out.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)) == 263
    assert all(e["request"]["method"] == "POST" and e["request"]["ifNoneExist"].startswith("identifier=")
               for e in bundle["entry"] if e["resource"]["resourceType"] != "DetectedIssue")
    known = set(urls)
    for e in bundle["entry"]:  # every reference inside the Bundle resolves inside it
        text = json.dumps(e["resource"])
        for part in text.split('"reference": "')[1:]:
            assert part.split('"', 1)[0] in known
    again = await run_export(ward, cfg, "1h", out=out)
    assert json.loads(out.read_text()) == bundle and not again.get("push")  # same data, same Bundle
    with pytest.raises(ValueError):
        await run_export(ward, cfg, "1h; DROP DATABASE x")


async def test_pulsegate_fhir_export_command(ward: InfluxWriter, server: str, influx: Influxd, tmp_path: Path) -> None:
    (tmp_path / "fhir.token").write_text("t0ken\n")
    toml = tmp_path / "cloud.toml"
    toml.write_text(f'[cloud]\nid = "c1"\n[influx]\nurl = "{influx.url}"\ndatabase = "{ward.database}"\n'
                    f'[fhir]\nbase_url = "{server}"\ntoken_file = "fhir.token"\nbundle_max_entries = 8\n')
    out = tmp_path / "bundle.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pulsegate", "fhir", "export", "--config", str(toml), "--since", "1h", "--out", str(out),
        "--push", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["resources"] == 263 and summary["push"]["created"] == 263 and out.exists()
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pulsegate", "fhir", "export", "--config", str(toml), "--since", "forever",
        "--out", str(out), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await bad.communicate()
    assert bad.returncode == 1 and b"since must look like" in err and b"Traceback" not in err


async def test_a_short_window_still_carries_the_alarms_later_states(ward: InfluxWriter) -> None:
    """State changes are stored at the raise time: alarms are read over 24 h whatever --since says."""
    entries, _ = await export_entries(ward, "1m", FhirConfig())
    issues = {e.value: e.resource for e in entries if e.type == "DetectedIssue"}
    assert set(issues) == {"ward7-gw1/a-1", "ward7-gw1/a-2", "amb-12/a-3"}
    assert issues["ward7-gw1/a-1"]["status"] == "final"
    assert sum(e.type == "Observation" for e in entries) < 252 / 4  # the vitals keep to the window
