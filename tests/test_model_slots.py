"""Model distribution: signed offers over a real broker, verification, shadow, promote / roll back."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest

from bench.localservices import Mosquitto
from clinical.anomaly import VitalsAnomalyModel
from clinical.bedstate import BedState
from cloud.model_publish import publish_model
from edge.model_slots import ModelSlots, newest_verified
from edge.shadow import ShadowResult, ShadowScorer
from wire.messages import Event, Message
from wire.model_manifest import generate_keypair, load_private_key, load_public_key, sign_model_dir
from wire.model_offer import encode_offer, offer_from_dir

REPO = Path(__file__).resolve().parents[1]
DEV_KEY = REPO / "examples" / "keys" / "dev-signing.key"
DEV_PUB = REPO / "examples" / "keys" / "dev-signing.pub"
SHIPPED = sorted((REPO / "models" / "vitals-anomaly").iterdir())[-1]


class FakeModel:
    def __init__(self, version: str, scores: list[float], threshold: float = 0.5) -> None:
        self.version, self.threshold, self.min_buckets = version, threshold, 10
        self.scores = np.array(scores)
        self.calls = 0

    def score(self, beds: object) -> np.ndarray:
        self.calls += 1
        return self.scores


def test_shadow_never_changes_scores_and_promotes_on_agreement() -> None:
    decided: list[ShadowResult] = []
    active = FakeModel("1.0.0", [0.1, 0.9])
    shadow = ShadowScorer(active, decided.append, rounds=3, min_beds=6, min_agreement=0.9)
    shadow.begin(FakeModel("1.1.0", [0.2, 0.8], threshold=0.6))
    beds = [BedState("b1"), BedState("b2")]
    for _ in range(3):
        assert list(shadow.score(beds)) == [0.1, 0.9]  # always the active model's scores
    assert decided and decided[0].promoted and decided[0].agreement == 1.0
    assert shadow.active.version == "1.1.0" and shadow.threshold == 0.6 and shadow.candidate is None


@pytest.mark.parametrize(("scores", "reason"), [([0.9, 0.1], "agreement"), ([float("nan"), 0.9], "invalid"),
                                                ([1.5, 0.9], "invalid")])
def test_shadow_rolls_back_disagreeing_or_invalid_candidate(scores: list[float], reason: str) -> None:
    decided: list[ShadowResult] = []
    shadow = ShadowScorer(FakeModel("1.0.0", [0.1, 0.9]), decided.append, rounds=2, min_beds=4)
    shadow.begin(FakeModel("1.1.0", scores))
    for _ in range(2):
        shadow.score([BedState("b1"), BedState("b2")])
    assert decided and not decided[0].promoted and reason in decided[0].reason
    assert shadow.active.version == "1.0.0" and shadow.threshold == 0.5


def make_version(tmp: Path, version: str, key: Path = DEV_KEY, bucket_s: float | None = None) -> Path:
    d = tmp / f"src-{version}"
    shutil.copytree(SHIPPED, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["version"] = version
    if bucket_s is not None:
        manifest["features"]["bucket_s"] = bucket_s
    (d / "manifest.json").write_text(json.dumps(manifest))
    sign_model_dir(d, load_private_key(key))
    return d


def _slots(tmp: Path, events: list[Message], shadow: ShadowScorer | None, port: int = 1) -> ModelSlots:
    return ModelSlots(tmp / "state", "gw-1", "site-1", [DEV_PUB], lambda _s, m: events.append(m), host="127.0.0.1",
                      port=port, shadow=shadow, versions={"vitals-anomaly": shadow.active.version} if shadow else {})


async def test_bad_offers_are_rejected_and_counted(tmp_path: Path) -> None:
    events: list[Message] = []
    active = VitalsAnomalyModel(SHIPPED, 1, [DEV_PUB])
    shadow = ShadowScorer(active)
    slots = _slots(tmp_path, events, shadow)
    tampered = offer_from_dir(make_version(tmp_path, "9.0.0"))
    tampered.model = tampered.model[:-1] + bytes([tampered.model[-1] ^ 1])
    generate_keypair(tmp_path / "rogue.key", tmp_path / "rogue.pub")
    cases = {
        "tampered": encode_offer(tampered),
        "older": encode_offer(offer_from_dir(make_version(tmp_path, "0.9.0"))),
        "same": encode_offer(offer_from_dir(make_version(tmp_path, active.version))),
        "untrusted key": encode_offer(offer_from_dir(make_version(tmp_path, "9.1.0", tmp_path / "rogue.key"))),
        "malformed": b"\x93\x01\x02",
        "not msgpack": b"{json?}",
    }
    for name, payload in cases.items():
        assert await slots.handle(payload) == "rejected", name
    assert slots.rejected == len(cases) and shadow.candidate is None
    assert all(isinstance(e, Event) and e.kind == "model_rejected" for e in events)
    assert not list((tmp_path / "state" / "models" / "vitals-anomaly").glob("9.*"))  # nothing left on disk
    first = events[0]
    assert isinstance(first, Event) and "sha256" in str(first.detail["error"])


async def test_signed_candidate_with_another_feature_spec_is_rolled_back(tmp_path: Path) -> None:
    events: list[Message] = []
    active = VitalsAnomalyModel(SHIPPED, 1, [DEV_PUB])
    shadow = ShadowScorer(active)
    slots = _slots(tmp_path, events, shadow)
    offer = encode_offer(offer_from_dir(make_version(tmp_path, "9.0.0", bucket_s=30.0)))
    assert await slots.handle(offer) == "rolled_back"
    assert shadow.candidate is None and shadow.active is active
    slot = tmp_path / "state" / "models" / "vitals-anomaly"
    assert (slot / "REJECTED").read_text().split() == ["9.0.0"] and not (slot / "9.0.0").exists()
    ev = events[-1]
    assert isinstance(ev, Event) and ev.kind == "model_rolled_back"
    assert "bucket_s: gateway 60.0 != model 30.0" in str(ev.detail["reason"])
    assert await slots.handle(offer) == "rejected"  # the retained offer is not tried again


async def test_signed_newer_model_over_broker_is_shadowed_then_promoted(tmp_path: Path, broker: Mosquitto,
                                                                      unique: str) -> None:
    events: list[Message] = []
    active = VitalsAnomalyModel(SHIPPED, 1, [DEV_PUB])
    shadow = ShadowScorer(active, rounds=2, min_beds=4)
    promoted: list[bool] = []
    slots = ModelSlots(tmp_path / "state", unique, "site-1", [DEV_PUB], lambda _s, m: events.append(m),
                       host="127.0.0.1", port=broker.port, shadow=shadow, on_promote=lambda: promoted.append(True),
                       versions={"vitals-anomaly": active.version})
    new_dir = make_version(tmp_path, "7.0.0")
    size = await asyncio.to_thread(publish_model, new_dir, "127.0.0.1", broker.port, "site-1", [unique])
    assert size > 10_000
    await slots.start()
    task = asyncio.create_task(slots.run())
    try:
        for _ in range(100):
            if shadow.candidate is not None:
                break
            await asyncio.sleep(0.1)
        assert shadow.candidate is not None and shadow.candidate.version == "7.0.0"
        beds = [BedState(f"b{i}") for i in range(2)]
        for _ in range(2):
            shadow.score(beds)  # same weights: the candidate agrees everywhere
    finally:
        await slots.stop()
        await asyncio.wait_for(task, 10)
    assert promoted == [True] and shadow.active.version == "7.0.0"
    assert slots.versions["vitals-anomaly"] == "7.0.0"
    kinds = [e.kind for e in events if isinstance(e, Event)]
    assert kinds == ["model_shadow", "model_promoted"]
    slot = tmp_path / "state" / "models" / "vitals-anomaly"
    assert (slot / "ACTIVE").read_text() == "7.0.0"
    # the next start finds the promoted model, still verified
    assert newest_verified(slot, [load_public_key(DEV_PUB)]) == slot / "7.0.0"
    (slot / "7.0.0" / "model.tflite").write_bytes(b"tampered on disk")
    assert newest_verified(slot, [load_public_key(DEV_PUB)]) is None
    assert msgspec.json.decode((slot / "7.0.0" / "manifest.json").read_bytes())["version"] == "7.0.0"


async def test_rolled_back_version_is_not_tried_again_and_installed_versions_survive_restart(tmp_path: Path) -> None:
    events: list[Message] = []
    active = VitalsAnomalyModel(SHIPPED, 1, [DEV_PUB])
    shadow = ShadowScorer(active, rounds=1, min_beds=1)
    slots = _slots(tmp_path, events, shadow)
    offer = encode_offer(offer_from_dir(make_version(tmp_path, "8.0.0")))
    assert await slots.handle(offer) == "shadow"
    shadow.candidate.score = lambda beds: np.array([float("nan")] * len(beds))  # type: ignore[union-attr, method-assign]
    shadow.score([BedState("b1")])
    assert shadow.active.version == active.version  # rolled back
    assert await slots.handle(offer) == "rejected"  # the retained offer, redelivered on reconnect
    # another model type installed earlier: a restarted gateway refuses an older one
    other = make_version(tmp_path, "3.0.0")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["name"] = "endoscopy-seg"
    (other / "manifest.json").write_text(json.dumps(manifest))
    sign_model_dir(other, load_private_key(DEV_KEY))
    assert await slots.handle(encode_offer(offer_from_dir(other))) == "installed"
    restarted = _slots(tmp_path, [], ShadowScorer(active))
    assert restarted.versions["endoscopy-seg"] == "3.0.0"
    older = make_version(tmp_path, "2.0.0")
    m2 = json.loads((older / "manifest.json").read_text())
    m2["name"] = "endoscopy-seg"
    (older / "manifest.json").write_text(json.dumps(m2))
    sign_model_dir(older, load_private_key(DEV_KEY))
    assert await restarted.handle(encode_offer(offer_from_dir(older))) == "rejected"


@pytest.mark.parametrize("bad", ["1.+2", " 1.0", "1_0", "1.0\n", "", "v1"])
def test_versions_are_strict_dotted_integers(bad: str) -> None:
    from wire.model_manifest import ManifestError, version_tuple

    with pytest.raises(ManifestError):
        version_tuple(bad)
    assert version_tuple("1.10.2") > version_tuple("1.9.9")


def test_gateway_starts_the_newer_endoscopy_model_installed_by_the_slots(tmp_path: Path) -> None:
    from edge.config import load_edge_config
    from edge.daemon import EdgeDaemon

    shipped = sorted((REPO / "models" / "endoscopy-seg").iterdir())[-1]
    slot = tmp_path / "state" / "models" / "endoscopy-seg"
    installed = slot / "9.0.0"
    shutil.copytree(shipped, installed)
    manifest = json.loads((installed / "manifest.json").read_text())
    manifest["version"] = "9.0.0"
    (installed / "manifest.json").write_text(json.dumps(manifest))
    sign_model_dir(installed, load_private_key(DEV_KEY))
    (slot / "ACTIVE").write_text("9.0.0")
    (tmp_path / "key").write_text("k" * 32)
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f"""
[gateway]
id = "gw"
site = "s"
state_dir = "{tmp_path / 'state'}"
pseudonym_key = "key"
[local_bus]
enabled = false
[models]
trusted_keys = ["{DEV_PUB}"]
[video]
source = "{REPO / 'examples' / 'video' / 'kvasir-demo.mp4'}"
room = "endo"
live_port = 0
""")
    daemon = EdgeDaemon(load_edge_config(cfg), tmp_path)
    assert daemon.model_versions["endoscopy-seg"] == "9.0.0"
    # tampered on disk after installation: refused, the configured (shipped) model runs instead
    (installed / "model.tflite").write_bytes(b"not a model")
    daemon = EdgeDaemon(load_edge_config(cfg), tmp_path)
    assert "endoscopy-seg" not in daemon.model_versions


def test_shadow_figures_name_the_beds_each_model_alarmed_on() -> None:
    """Beds, not only bed-windows: a candidate that warns earlier on the same bed alarms on no extra bed."""
    active = FakeModel("1.0.0", [0.1, 0.9, 0.1])
    shadow = ShadowScorer(active, rounds=3, min_beds=6)
    cand = FakeModel("1.1.0", [0.1, 0.9, 0.1])
    shadow.begin(cand, hold=True)
    beds = [BedState("b1"), BedState("b2"), BedState("b3")]
    cand.scores = np.array([0.1, 0.9, 0.9])  # b3: the candidate warns first
    shadow.score(beds)
    active.scores = cand.scores  # a round later the active model alarms on b3 too
    shadow.score(beds)
    fig = shadow.figures()
    assert fig is not None and (fig.cand_alarms, fig.active_alarms) == (4, 3)
    assert (fig.cand_beds, fig.active_beds, fig.both_beds) == (2, 2, 2)
