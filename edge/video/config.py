"""The ``[video]`` section of the edge config."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from runtime.configbase import Section

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = REPO_ROOT / "models"
DEFAULT_TRUSTED_KEYS = (REPO_ROOT / "examples" / "keys" / "dev-signing.pub",)


class VideoConfig(Section):
    """Endoscopy video analysis for one procedure room.

    ``source`` is a camera index ("0"), a file (played in a loop at its own
    frame rate) or an rtsp:// / http:// URL.
    """

    enabled: bool = True
    source: str
    room: str = Field(min_length=1, max_length=64)
    models_dir: Path = DEFAULT_MODELS_DIR
    model_version: str | None = None  # None: the newest signed version under models_dir/endoscopy-seg
    trusted_keys: tuple[Path, ...] = ()  # empty: the gateway's [models] trusted_keys
    threads: int = Field(default=2, ge=1, le=16)  # LiteRT threads
    fps_limit: float = Field(default=30.0, gt=0, le=240)
    threshold: float | None = Field(default=None, gt=0, lt=1)  # pixel probability -> polyp (None: the model's)
    min_area: float = Field(default=0.005, ge=0, lt=1)  # smallest region, fraction of the frame
    presence_threshold: float | None = Field(default=None, gt=0, lt=1)  # "polyp present" (2.x; None: the model's)
    smooth_frames: int = Field(default=8, ge=1, le=60)  # window of the temporal smoothing
    smooth_min_hits: int = Field(default=6, ge=1, le=60)  # frames in the window with a polyp to raise
    live_port: int | None = Field(default=8090, ge=0, le=65535)  # None: no live view
    live_host: str = "127.0.0.1"  # elsewhere: [http.tls] and the login apply (docs/security.md)
    jpeg_quality: int = Field(default=75, ge=10, le=100)
