"""The video pipeline: latest frame -> model -> regions -> smoothing -> overlay.

:class:`VideoPipeline` is a supervisor Component (tier SOURCE). Its worker
thread takes the newest captured frame, runs the endoscopy-seg model through
ModelRunner, post-processes and draws the overlay; findings are handed to
``on_finding`` on the event loop (the daemon wires it to its alarm path and
outbox). Only geometry leaves the pipeline; the annotated frame goes to the
local live view only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clinical.endoscopy.postprocess import Detection, FindingSmoother, PolypFinding, detect
from clinical.endoscopy.segmodel import OperatingPoint, OutputRoles, infer, preprocess
from clinical.litert import ModelRunner
from edge.video.capture import Frame, FrameGrabber, Pace
from edge.video.overlay import draw
from runtime.logs import get_logger
from runtime.supervisor import Progress, Tier

log = get_logger("video.pipeline")

FindingCallback = Callable[[PolypFinding], None]


@dataclass(frozen=True, slots=True)
class Annotated:
    seq: int
    image: np.ndarray  # BGR with overlay; local live view only
    detection: Detection
    latency_ms: float


LATEST_FRAME_POLICY = "latest-frame policy: older frames are skipped so the overlay stays current"
LATENCY_DEFINITION = "capture -> overlay ready (median of recent frames)"


class VideoStats:
    """Rolling fps and latency (frame captured -> overlay ready)."""

    def __init__(self, keep: int = 2000) -> None:
        self.processed = 0
        self._done: deque[float] = deque(maxlen=120)
        self.latencies_ms: deque[float] = deque(maxlen=keep)

    def record(self, captured_mono: float, done_mono: float) -> float:
        lat = (done_mono - captured_mono) * 1000.0
        self.processed += 1
        self._done.append(done_mono)
        self.latencies_ms.append(lat)
        return lat

    @property
    def fps(self) -> float:
        if len(self._done) < 2:
            return 0.0
        span = self._done[-1] - self._done[0]
        return (len(self._done) - 1) / span if span > 0 else 0.0

    def latency_percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.fromiter(self.latencies_ms, float), q))


class VideoPipeline:
    """Supervisor component: capture thread + inference thread for one procedure room."""

    tier = Tier.SOURCE
    essential = False  # see runtime/supervisor.py

    def __init__(
        self,
        source: str,
        runner: ModelRunner,
        on_finding: FindingCallback,
        room: str,
        *,
        name: str = "video",
        pace: Pace = "native",
        threshold: float | None = None,
        min_area: float = 0.005,
        presence_threshold: float | None = None,
        smooth_frames: int = 8,
        smooth_min_hits: int = 6,
        fps_limit: float | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.pace: Pace = pace
        self.runner = runner
        self.on_finding = on_finding
        point = OperatingPoint.of(runner.manifest, threshold, presence_threshold)  # None: the manifest's
        self.threshold = point.threshold
        self.min_area = min_area
        self.presence_threshold = point.presence_threshold
        self.roles = OutputRoles.of(runner)  # 1.x: map only; 2.x: map + frame-level presence
        self.fps_limit = fps_limit
        self.progress = progress
        self.smoother = FindingSmoother(room, smooth_frames, smooth_min_hits)
        self.stats = VideoStats()
        self.grabber: FrameGrabber | None = None
        self._size = (runner.input_shape[0], runner.input_shape[1])
        self._buf = np.empty((1, *self._size, 3), np.float32)
        self._stop = threading.Event()
        self._latest: Annotated | None = None
        self._lock = threading.Lock()
        self.findings = 0

    # -- frames for the live view ------------------------------------------------------
    def latest(self) -> Annotated | None:
        with self._lock:
            return self._latest

    @property
    def dropped(self) -> int:
        return self.grabber.slot.dropped if self.grabber else 0

    def status(self) -> dict[str, object]:
        """For the live view: processed fps against the source's fps (the latest-frame policy skips the
        frames the model has no time for: that is the policy working, not a fault), and ONE latency,
        ``latency_ms``: frame captured -> overlay ready, the median of the recent frames (the same number
        the overlay draws on the video)."""
        p50, p95 = self.stats.latency_percentile(50), self.stats.latency_percentile(95)
        source_fps = self.grabber.source_fps if self.grabber else None
        return {
            "processed_fps": round(self.stats.fps, 1),
            "source_fps": source_fps,
            "skipped_frames": self.dropped,
            "policy": LATEST_FRAME_POLICY,
            "latency_ms": None if p50 is None else round(p50, 1),
            "latency_definition": LATENCY_DEFINITION,
            "fps": round(self.stats.fps, 1),
            "latency_ms_p50": None if p50 is None else round(p50, 1),
            "latency_ms_p95": None if p95 is None else round(p95, 1),
            "processed": self.stats.processed,
            "dropped_frames": self.dropped,
            "finding_active": self.smoother.active,
            "findings": self.findings,
        }

    # -- the per-frame work -----------------------------------------------------------
    def process(self, frame: Frame) -> tuple[Annotated, PolypFinding | None]:
        """Model, post-processing, smoothing and overlay for one frame."""
        out = infer(self.runner, preprocess(frame.image, self._size, self._buf), self.roles)
        presence = None if out.present is None else float(out.present[0])
        det = detect(out.prob[0], self.threshold, self.min_area, presence, self.presence_threshold)
        finding = self.smoother.update(det, frame.wall_ns, frame.mono)
        shown = self.stats.latency_percentile(50)  # the header's number: capture -> overlay ready, median
        draw(frame.image, det, self.smoother.active, self.stats.fps,
             (time.monotonic() - frame.mono) * 1000.0 if shown is None else shown)
        lat = self.stats.record(frame.mono, time.monotonic())
        ann = Annotated(frame.seq, frame.image, det, lat)
        with self._lock:
            self._latest = ann
        return ann, finding

    def open(self) -> None:
        self._stop.clear()
        if self.grabber is None or not self.grabber.alive:
            if self.grabber is not None:
                self.grabber.stop()
            self.grabber = FrameGrabber(self.source, pace=self.pace)
            self.grabber.start()
            log.info("video_started", room=self.smoother.room, kind=self.grabber.kind,
                     width=self.grabber.size[0], height=self.grabber.size[1], source_fps=self.grabber.source_fps)

    def close(self) -> None:
        self._stop.set()
        if self.grabber is not None:
            self.grabber.stop()
            self.grabber = None

    def work(self, emit: FindingCallback, max_frames: int | None = None) -> None:
        """Process frames until stopped, the source ends or ``max_frames``; runs in the calling thread."""
        grabber = self.grabber
        if grabber is None:
            raise RuntimeError("VideoPipeline.open() first")
        period = 1.0 / self.fps_limit if self.fps_limit else 0.0
        done = 0
        while not self._stop.is_set():
            frame = grabber.slot.take(timeout=0.5)
            if frame is None:
                if grabber.error is not None:
                    raise grabber.error
                if grabber.slot.closed:
                    return
                continue
            started = time.monotonic()
            _, finding = self.process(frame)
            if self.progress is not None:
                self.progress.beat()
            if finding is not None:
                self.findings += 1
                emit(finding)
            done += 1
            if max_frames is not None and done >= max_frames:
                return
            if period:
                wait = period - (time.monotonic() - started)
                if wait > 0 and self._stop.wait(wait):
                    return

    # -- Component protocol ------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.open)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def emit(f: PolypFinding) -> None:
            loop.call_soon_threadsafe(self._deliver, f)

        try:
            await asyncio.to_thread(self.work, emit)
        finally:
            if not self._stop.is_set():  # crashed or source ended: release it so start() reopens
                self.close()

    def _deliver(self, f: PolypFinding) -> None:
        try:
            self.on_finding(f)
        except Exception:
            log.error("finding_callback_failed", exc=True, room=f.room)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.get_running_loop().run_in_executor(None, self.close)
