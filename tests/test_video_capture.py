"""Capture: a real video file made by OpenCV, the latest-frame policy, dropped frames counted."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.video.capture import CaptureError, Frame, FrameGrabber, FrameSlot, source_kind


def make_video(path: Path, n: int, fps: float = 30.0, size: tuple[int, int] = (160, 120)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert w.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 8) % 256, np.uint8)
        w.write(img)
    w.release()
    return path


def test_source_kind() -> None:
    assert source_kind("0") == "camera"
    assert source_kind("rtsp://user:pw@cam/1") == "url"
    assert source_kind("clip.mp4") == "file"


def test_slot_keeps_newest_and_counts_dropped() -> None:
    slot = FrameSlot()
    img = np.zeros((2, 2, 3), np.uint8)
    for seq in range(1, 6):
        slot.put(Frame(seq, img, float(seq), seq))
    got = slot.take(timeout=0.1)
    assert got is not None and got.seq == 5
    assert slot.captured == 5 and slot.dropped == 4
    assert slot.take(timeout=0.05) is None  # nothing new: no re-delivery of a stale frame
    slot.put(Frame(6, img, 6.0, 6))
    got = slot.take(timeout=0.1)
    assert got is not None and got.seq == 6 and slot.dropped == 4


def test_take_wakes_on_put_and_close() -> None:
    slot = FrameSlot()
    img = np.zeros((2, 2, 3), np.uint8)
    t = threading.Timer(0.05, slot.put, args=(Frame(1, img, 0.0, 0),))
    t.start()
    got = slot.take(timeout=2.0)
    t.join()
    assert got is not None and got.seq == 1
    threading.Timer(0.05, slot.close).start()
    t0 = time.monotonic()
    assert slot.take(timeout=2.0) is None
    assert time.monotonic() - t0 < 1.0


def test_file_plays_at_native_rate_and_loops(tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.avi", 10, fps=50.0)
    g = FrameGrabber(str(src), pace="native")
    g.start()
    try:
        assert g.source_fps == pytest.approx(50.0) and g.size == (160, 120)
        seqs: list[int] = []
        t0 = time.monotonic()
        while len(seqs) < 25:  # more than the file holds: it must loop
            f = g.slot.take(timeout=2.0)
            assert f is not None
            seqs.append(f.seq)
        elapsed = time.monotonic() - t0
    finally:
        g.stop()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert elapsed > 0.3  # 25 frames at 50 fps take ~0.5 s: paced, not decoded flat out
    assert g.slot.dropped == 0  # a consumer faster than the source drops nothing


def test_slow_consumer_gets_newest_frame_and_drops_are_counted(tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.avi", 30, fps=100.0)
    g = FrameGrabber(str(src), pace="native")
    g.start()
    taken: list[Frame] = []
    try:
        for _ in range(5):
            f = g.slot.take(timeout=2.0)
            assert f is not None
            taken.append(f)
            time.sleep(0.1)  # a slow model: ~10 source frames arrive meanwhile
        newest_seq = g.slot.captured
        last = g.slot.take(timeout=2.0)
    finally:
        g.stop()
    assert last is not None and last.seq >= newest_seq  # no backlog: the frame handed out is the newest
    gaps = [b.seq - a.seq for a, b in itertools.pairwise(taken)]
    assert min(gaps) > 3  # stale frames were skipped, not queued
    assert g.slot.dropped >= 20
    assert g.slot.captured >= len(taken) + 1 + g.slot.dropped - 1


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    g = FrameGrabber(str(tmp_path / "nope.mp4"))
    with pytest.raises(CaptureError, match="cannot open"):
        g.start()


def test_url_credentials_not_in_name() -> None:
    g = FrameGrabber("rtsp://admin:secret@10.0.0.5:554/stream1")
    assert "secret" not in g._safe_name() and "10.0.0.5" in g._safe_name()
