"""Post-processing: probability map -> regions -> smoothed findings (unit tests of core logic)."""

from __future__ import annotations

import numpy as np
import pytest

from clinical.endoscopy.postprocess import Detection, FindingSmoother, PolypFinding, detect
from wire.codec import decode, encode
from wire.messages import Finding


def disc(size: int, cx: int, cy: int, r: int, p: float = 0.9) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, p, 0.05).astype(np.float32)


def test_detect_finds_disc_with_box_area_and_confidence() -> None:
    det = detect(disc(128, 64, 32, 16), threshold=0.5)
    assert det.present and len(det.regions) == 1
    r = det.regions[0]
    x, y, w, h = r.box
    assert x == pytest.approx(48 / 128, abs=0.01) and y == pytest.approx(16 / 128, abs=0.01)
    assert w == pytest.approx(33 / 128, abs=0.01) and h == pytest.approx(33 / 128, abs=0.01)
    assert r.area == pytest.approx(np.pi * 16 * 16 / 128**2, rel=0.05)
    assert r.confidence == pytest.approx(0.9, abs=1e-4)
    assert det.map_size == (128, 128)


def test_detect_drops_specks_and_orders_by_area() -> None:
    prob = np.maximum(disc(128, 30, 30, 20), disc(128, 100, 100, 10, 0.7))
    prob[5, 120] = 0.99  # one-pixel speck: below min_area
    det = detect(prob[..., None], threshold=0.5, min_area=0.005)
    assert [round(r.confidence, 2) for r in det.regions] == [0.9, 0.7]
    assert det.best is det.regions[0]


def test_detect_empty_map() -> None:
    det = detect(np.zeros((64, 64), np.float32))
    assert not det.present and det.best is None


def test_presence_below_threshold_suppresses_regions() -> None:
    prob = disc(128, 64, 32, 16)
    low = detect(prob, presence=0.3, presence_threshold=0.5)
    assert not low.present and low.suppressed == 1 and low.presence == 0.3
    high = detect(prob, presence=0.8, presence_threshold=0.5)
    assert high.present and high.suppressed == 0 and high.presence == 0.8
    assert detect(prob).present and detect(prob).presence is None  # 1.x model: no presence output


def test_short_false_activations_never_raise_with_the_gateway_default() -> None:
    """REFERENCES: most false activations last < 3 frames; 6 of 8 frames are needed to raise."""
    sm = FindingSmoother("r1", window=8, min_hits=6)
    burst = [True] * 3 + [False] * 3
    out = [sm.update(_det(p), i, i * 0.033) for i, p in enumerate(burst * 10)]
    assert out == [None] * 60 and sm.raised == 0
    out = [sm.update(_det(True), i, i * 0.033) for i in range(6)]
    assert sm.active and sum(f is not None for f in out) == 1


def _det(present: bool) -> Detection:
    return detect(disc(64, 32, 32, 10) if present else np.zeros((64, 64), np.float32))


def test_one_frame_flicker_raises_nothing() -> None:
    sm = FindingSmoother("r1", window=5, min_hits=3)
    seq = [False, False, True, False, False, False, True, False, False]
    out = [sm.update(_det(p), i, i * 0.033) for i, p in enumerate(seq)]
    assert out == [None] * len(seq)
    assert not sm.active and sm.raised == 0


def test_raise_on_min_hits_and_clear_when_window_empty() -> None:
    sm = FindingSmoother("r1", window=5, min_hits=3, update_s=100.0)
    frames = [True, True, False, True, True, False, True] + [False] * 5
    out = [sm.update(_det(p), 1000 + i, i * 0.033) for i, p in enumerate(frames)]
    raised = [(i, f) for i, f in enumerate(out) if f is not None]
    assert [(i, f.present) for i, f in raised] == [(3, True), (11, False)]
    first = raised[0][1]
    assert first.t_ns == 1003 and first.room == "r1"
    assert first.box is not None and 0 < first.area < 1
    assert 0 < first.confidence <= 1
    assert raised[1][1].box is None


def test_update_repeats_while_present() -> None:
    sm = FindingSmoother("r1", window=3, min_hits=2, update_s=1.0)
    out = [sm.update(_det(True), i, i * 0.25) for i in range(10)]
    times = [i for i, f in enumerate(out) if f is not None]
    assert times == [1, 5, 9]


def test_bad_smoother_settings_rejected() -> None:
    with pytest.raises(ValueError):
        FindingSmoother("r", window=3, min_hits=4)


def test_finding_message_carries_no_pixels_and_round_trips() -> None:
    f = PolypFinding(1_700_000_000_000_000_000, "endo-2", True, 0.87654321, 0.1234567, (0.1, 0.2, 0.3, 0.4))
    msg = f.to_message("gw-1", 42)
    back = decode(encode(msg))
    assert isinstance(back, Finding)
    assert back.room == "endo-2" and back.present and back.seq == 42
    assert back.confidence == pytest.approx(0.8765) and back.box == (0.1, 0.2, 0.3, 0.4)
    assert len(encode(msg)) < 200  # geometry only: a frame would be kilobytes
