"""Building the video components of the edge daemon from its ``[video]`` config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clinical.endoscopy.segmodel import MODEL_NAME, load_verified
from edge.video.config import VideoConfig
from edge.video.liveview import LiveView
from edge.video.pipeline import FindingCallback, VideoPipeline
from runtime.security.listener import ListenerSecurity
from runtime.supervisor import Component, Progress
from wire.model_manifest import resolve_model_dir


def video_components(
    cfg: VideoConfig, on_finding: FindingCallback, progress: Progress | None = None,
    trusted_keys: Sequence[Path] = (), security: ListenerSecurity | None = None,
) -> list[Component]:
    """The pipeline (tier SOURCE) and, when ``live_port`` is set, its live view (tier SINK).

    Verifies the signed model first: raises ManifestError / ModelError on a bad model. The keys are the
    section's own ``trusted_keys``, else ``trusted_keys`` (the gateway's [models] keys); with neither, it
    refuses: a gateway never runs an unsigned model.
    """
    if not cfg.enabled:
        return []
    model_dir = resolve_model_dir(cfg.models_dir, MODEL_NAME, cfg.model_version)
    keys = cfg.trusted_keys or tuple(trusted_keys)
    if not keys:
        raise ValueError("video: no trusted key to verify the model ([models] trusted_keys)")
    runner, _ = load_verified(model_dir, keys, cfg.threads)
    pipe = VideoPipeline(
        cfg.source, runner, on_finding, cfg.room,
        threshold=cfg.threshold, min_area=cfg.min_area, presence_threshold=cfg.presence_threshold,
        smooth_frames=cfg.smooth_frames,
        smooth_min_hits=cfg.smooth_min_hits, fps_limit=cfg.fps_limit, progress=progress,
    )
    comps: list[Component] = [pipe]
    if cfg.live_port is not None:
        comps.append(LiveView(pipe.latest, pipe.status, cfg.room, cfg.live_host, cfg.live_port, cfg.jpeg_quality,
                              max_fps=cfg.fps_limit, security=security))
    return comps
