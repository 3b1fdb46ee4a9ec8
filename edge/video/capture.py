"""Frame capture with a latest-frame policy.

A grabber thread reads the source (camera index, file or rtsp/http URL) as
fast as the source delivers and keeps only the newest frame. The consumer
(inference) always takes the newest frame; a frame replaced before anyone took
it is dropped and counted, never queued, so a slow consumer sees fresh video
and never falls behind.

Files play in a loop at their native frame rate (``pace="native"``) or as fast
as they decode (``pace="free"``, a saturating source for benchmarks).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from runtime.logs import get_logger

log = get_logger("video.capture")

Pace = Literal["native", "free"]


class CaptureError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int  # 1, 2, ... in capture order (includes frames dropped later)
    image: np.ndarray  # BGR uint8, H x W x 3
    mono: float  # time.monotonic() when the frame was read
    wall_ns: int  # time.time_ns() when the frame was read


def source_kind(source: str) -> Literal["camera", "url", "file"]:
    if source.isdigit():
        return "camera"
    if "://" in source:
        return "url"
    return "file"


class FrameSlot:
    """The one-frame mailbox between grabber and consumer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True
        self.captured = 0
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._frame = frame
            self._taken = False
            self.captured += 1
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout`` s; None on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._taken and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            if self._taken:
                return None
            self._taken = True
            return self._frame

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class FrameGrabber:
    """Owns the cv2.VideoCapture and the thread that fills a :class:`FrameSlot`."""

    def __init__(self, source: str, pace: Pace = "native", loop: bool = True, reconnect_s: float = 2.0) -> None:
        self.source = source
        self.kind = source_kind(source)
        self.pace = pace
        self.loop = loop
        self.reconnect_s = reconnect_s
        self.slot = FrameSlot()
        self.source_fps = 0.0
        self.size = (0, 0)  # width, height
        self.errors = 0  # read failures of a live source (reconnects)
        self.error: BaseException | None = None
        self._cap: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> Any:
        import cv2

        arg: int | str = int(self.source) if self.kind == "camera" else self.source
        cap = cv2.VideoCapture(arg)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"cannot open video source {self._safe_name()}")
        return cap

    def _safe_name(self) -> str:
        # URLs may carry credentials: log scheme and host only
        if self.kind == "url":
            scheme, _, rest = self.source.partition("://")
            return f"{scheme}://{rest.split('@')[-1].split('/')[0]}"
        return self.source

    def open(self) -> None:
        import cv2

        self._cap = self._open()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.source_fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def start(self) -> None:
        if self._cap is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="video-grabber", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.slot.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported to the pipeline, which fails its component
            self.error = exc
            log.error("capture_failed", source=self._safe_name(), error=str(exc))
        finally:
            self.slot.close()

    def _loop(self) -> None:
        import cv2

        period = 1.0 / self.source_fps
        paced = self.kind == "file" and self.pace == "native"
        next_t = time.monotonic()
        seq = 0
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if not ok:
                if self.kind == "file":
                    if not self.loop or seq == 0:
                        return
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                self.errors += 1
                log.warning("capture_read_failed", source=self._safe_name(), errors=self.errors)
                self._cap.release()
                if self._stop.wait(self.reconnect_s):
                    return
                self._cap = self._open()
                continue
            if paced:
                now = time.monotonic()
                if next_t > now:
                    if self._stop.wait(next_t - now):
                        return
                    next_t += period
                else:
                    next_t = max(next_t + period, now - period)  # running late: do not burst to catch up
            seq += 1
            self.slot.put(Frame(seq, image, time.monotonic(), time.time_ns()))
