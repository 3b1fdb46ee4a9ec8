"""Staged rollout (issue 12, slice 3), with real parts: a real mosquitto as the cloud broker, three emulated
gateways each running the gateway's own ModelSlots and ShadowScorer with the active vitals-anomaly 1.0.0 on
LiteRT (bench/rollout_gateways.py), the cloud's RolloutRun, and real signed model folders:

- a good candidate (1.0.0's network, signed as 1.1.0) goes to the canary, then the fleet, and is promoted on
  every gateway after each stage's dwell;
- a regressing candidate (the same network with a threshold that alarms on nearly every bed) is rolled back
  on EVERY gateway, also those that never received it, and never becomes active anywhere;
- a candidate that crashes on the gateway (signed, but not a model the gateway can run) is rolled back
  everywhere;
- a tampered candidate (bytes changed after signing) is refused by the gateways and rolled back;
- a rollout command not signed by a trusted key is refused and counted.
Every decision is recorded with its reason.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from bench.localservices import Mosquitto
from bench.rollout_gateways import EmulatedGateway
from cloud.rollout import Broker, Rollout, RolloutRun
from cloud.rollout_plan import Criteria, plan_stages, stable_fraction
from wire.model_manifest import Manifest, encode_manifest, generate_keypair, load_private_key, sign_model_dir
from wire.rollout import RolloutCommand, sign_command

REPO = Path(__file__).resolve().parents[1]
ACTIVE = REPO / "models" / "vitals-anomaly" / "1.0.0"
ENDO = REPO / "models" / "endoscopy-seg" / "1.0.0"
KEY = REPO / "examples" / "keys" / "dev-signing.key"
PUB = REPO / "examples" / "keys" / "dev-signing.pub"
FAST = Criteria(dwell_s=2.0, report_timeout_s=30.0, min_bed_windows=12)


def candidate(tmp: Path, version: str = "1.1.0", threshold: float | None = None, tflite: Path | None = None,
              base: Path = ACTIVE) -> Path:
    """``base``'s network and manifest signed as ``version`` (optionally another threshold or .tflite)."""
    d = tmp / "candidates" / version
    d.mkdir(parents=True)
    shutil.copy(tflite or base / "model.tflite", d / "model.tflite")
    m = msgspec.json.decode((base / "manifest.json").read_bytes(), type=Manifest)
    m.version = version
    if threshold is not None:
        m.metrics = {**m.metrics, "threshold": threshold}
    (d / "manifest.json").write_bytes(encode_manifest(m))
    sign_model_dir(d, load_private_key(KEY))
    return d


async def roll(tmp: Path, broker: Mosquitto, unique: str, model_dir: Path) -> tuple[dict, list[EmulatedGateway]]:
    site = f"s{unique}"
    gws = [EmulatedGateway(f"gw-{k}", site, tmp / f"gw-{k}", ACTIVE, [PUB], "127.0.0.1", broker.port, tick_s=0.1,
                           report_every_s=0.5, seed=20 + i) for i, k in enumerate("abc")]
    tasks = [asyncio.create_task(g.run()) for g in gws]
    try:
        run = RolloutRun(Rollout(model_dir, site, plan_stages([g.gateway for g in gws], canary=["gw-a"]),
                                 load_private_key(KEY), FAST, Broker(port=broker.port),
                                 audit_path=tmp / "audit.jsonl", poll_s=0.2))
        result = await asyncio.wait_for(run.run(), 120)
        await asyncio.sleep(1.0)  # the retained commands reach every gateway
    finally:
        for g in gws:
            g.stop()
        await asyncio.gather(*tasks)
    return result, gws


def rejected(g: EmulatedGateway) -> list[str]:
    p = g.slots.root / "vitals-anomaly" / "REJECTED"
    return p.read_text().split() if p.exists() else []


def test_stages_by_stable_hash() -> None:
    fleet = [f"gw-{i:03d}" for i in range(200)]
    stages = plan_stages(fleet, percents=[10, 50])
    assert [len(s) for s in stages] == [sum(stable_fraction(g) < x for g in fleet) - sum(
        stable_fraction(g) < y for g in fleet) for x, y in ((0.1, 0.0), (0.5, 0.1), (1.01, 0.5))]
    assert sorted(g for s in stages for g in s) == fleet
    assert plan_stages(list(reversed(fleet)), percents=[10, 50]) == stages  # the order of the list is irrelevant
    assert plan_stages(fleet, canary=["gw-007"])[0] == ["gw-007"]
    with pytest.raises(ValueError, match="not in the fleet"):
        plan_stages(fleet, canary=["gw-999"])


@pytest.mark.integration
async def test_good_candidate_goes_canary_then_fleet_and_is_promoted(tmp_path: Path, broker: Mosquitto,
                                                                      unique: str) -> None:
    result, gws = await roll(tmp_path, broker, unique, candidate(tmp_path))
    assert result["outcome"] == "promoted", result["decisions"]
    assert [d["action"] for d in result["decisions"]] == ["offer", "offer", "promote"]
    assert result["decisions"][0]["gateways"] == ["gw-a"] and result["decisions"][1]["gateways"] == ["gw-b", "gw-c"]
    for g in gws:
        assert g.active_version == "1.1.0" and g.scorer.candidate is None
        assert (g.slots.root / "vitals-anomaly" / "ACTIVE").read_text() == "1.1.0"
    fig = result["reports"]["gw-a"]
    assert fig["agreement"] == 1.0 and fig["bed_windows"] >= 12 and fig["errors"] == 0 and fig["invoke_ms_max"] > 0
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["offer", "offer", "promote"] and all(a["reason"] for a in audit)


@pytest.mark.integration
async def test_regressing_candidate_is_rolled_back_on_every_gateway(tmp_path: Path, broker: Mosquitto,
                                                                     unique: str) -> None:
    result, gws = await roll(tmp_path, broker, unique, candidate(tmp_path, threshold=1e-12))
    assert result["outcome"] == "rolled_back"
    last = result["decisions"][-1]
    assert last["action"] == "rollback" and sorted(last["gateways"]) == ["gw-a", "gw-b", "gw-c"]
    assert "gw-a" in last["reason"] and ("regression" in last["reason"] or "agreement" in last["reason"])
    for g in gws:  # the canary shadowed it; the others never got it; none will ever take it
        assert g.active_version == "1.0.0" and g.scorer.candidate is None and rejected(g) == ["1.1.0"]


@pytest.mark.integration
async def test_crashing_candidate_is_rolled_back_everywhere(tmp_path: Path, broker: Mosquitto, unique: str) -> None:
    if not (ENDO / "model.tflite").exists():
        pytest.skip("no endoscopy model to stand in for a broken one")
    result, gws = await roll(tmp_path, broker, unique, candidate(tmp_path, tflite=ENDO / "model.tflite"))
    assert result["outcome"] == "rolled_back"
    assert "rolled_back on the gateway" in result["decisions"][-1]["reason"]
    assert all(g.active_version == "1.0.0" and rejected(g) == ["1.1.0"] for g in gws)


@pytest.mark.integration
async def test_tampered_candidate_is_refused_by_the_gateway(tmp_path: Path, broker: Mosquitto, unique: str) -> None:
    d = candidate(tmp_path)
    body = bytearray((d / "model.tflite").read_bytes())
    body[len(body) // 2] ^= 0xFF  # after signing
    (d / "model.tflite").write_bytes(bytes(body))
    result, gws = await roll(tmp_path, broker, unique, d)
    assert result["outcome"] == "rolled_back"
    assert "rejected on the gateway" in result["decisions"][-1]["reason"]
    assert "sha256" in result["decisions"][-1]["reason"] or "hash" in result["decisions"][-1]["reason"]
    assert gws[0].slots.rejected >= 1 and all(g.active_version == "1.0.0" for g in gws)
    assert not (gws[0].slots.root / "vitals-anomaly" / "1.1.0").exists()


def test_unsigned_command_is_refused(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    g = EmulatedGateway("gw-x", "s1", tmp_path / "gw", ACTIVE, [PUB], "127.0.0.1", 1)
    cmd = RolloutCommand(v=1, rollout="r1", model="vitals-anomaly", version="9.0.0", action="promote", t=1)
    assert g.slots.handle_command(sign_command(cmd, load_private_key(tmp_path / "other.key"))) == "refused"
    assert g.slots.handle_command(b"\x81\xa1k\xa3rlc") == "refused"
    assert g.slots.commands_refused == 2
    assert g.slots.handle_command(sign_command(cmd, load_private_key(KEY))) == "pending"  # the offer may follow


@pytest.mark.integration
async def test_an_older_candidate_is_refused_and_rolled_back(tmp_path: Path, broker: Mosquitto, unique: str) -> None:
    result, gws = await roll(tmp_path, broker, unique, candidate(tmp_path, version="0.9.0"))
    assert result["outcome"] == "rolled_back"
    assert "not newer than the active 1.0.0" in result["decisions"][-1]["reason"]
    assert all(g.active_version == "1.0.0" and g.scorer.candidate is None for g in gws)


@pytest.mark.integration
async def test_broker_acl_lets_only_the_registry_command_and_each_gateway_read_its_own(tmp_path: Path) -> None:
    import aiomqtt

    acl = (REPO / "examples" / "mosquitto" / "pulsegate.acl").read_text()
    mq = Mosquitto(tmp_path / "mq", users={"models": "pw-m", "gwA": "pw-a", "gwB": "pw-b"}, acl=acl).start()
    try:
        got: dict[str, list[bytes]] = {"gwA": [], "gwB": []}

        async def listen(user: str, pw: str) -> None:
            async with aiomqtt.Client("127.0.0.1", mq.port, username=user, password=pw, identifier=f"l-{user}") as c:
                await c.subscribe("pg/v1/s1/gwA/down/model_cmd", qos=1)  # gwB tries gwA's commands
                async for m in c.messages:
                    got[user].append(bytes(m.payload))  # type: ignore[arg-type]

        listeners = [asyncio.create_task(listen("gwA", "pw-a")), asyncio.create_task(listen("gwB", "pw-b"))]
        await asyncio.sleep(1.0)
        async with aiomqtt.Client("127.0.0.1", mq.port, username="gwA", password="pw-a", identifier="forger") as c:
            await c.publish("pg/v1/s1/gwA/down/model_cmd", b"forged by the gateway", qos=1)
        async with aiomqtt.Client("127.0.0.1", mq.port, username="models", password="pw-m", identifier="reg") as c:
            await c.publish("pg/v1/s1/gwA/down/model_cmd", b"from the registry", qos=1, retain=True)
        for _ in range(100):
            if got["gwA"]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for t in listeners:
            t.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    finally:
        mq.stop()
    assert got == {"gwA": [b"from the registry"], "gwB": []}
