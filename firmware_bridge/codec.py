"""What every sans-IO device codec shares: counters, output type, condition tracking.

A codec is fed the bytes a transport read, together with the receive times the
transport took when those bytes arrived (``recv_mono``/``recv_wall``); it never
reads a clock or does I/O itself. It returns a list of :class:`~clinical.sample.Sample`
and :class:`~clinical.sample.DeviceEvent` (technical conditions, reported only when
they change). Damage is never raised: it is counted in :class:`CodecStats` and
the decoder resynchronises on the next frame boundary. Every codec keeps its
receive buffer bounded (``max_buffer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from clinical.parameters import PARAMETERS
from clinical.sample import DeviceEvent, Quality, Sample

Decoded = Sample | DeviceEvent


@dataclass(slots=True)
class CodecStats:
    """Counters of one decoder. ``bad_frames`` counts rejected frames/lines/regions."""

    bytes_in: int = 0
    frames: int = 0
    bad_frames: int = 0
    discarded_bytes: int = 0
    samples: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "bytes_in": self.bytes_in,
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "discarded_bytes": self.discarded_bytes,
            "samples": self.samples,
        }


class Decoder(Protocol):
    """A sans-IO decoder: bytes in, Samples and DeviceEvents out."""

    stats: CodecStats

    def feed(self, data: bytes, recv_mono: float, recv_wall: float) -> list[Decoded]: ...


@dataclass(slots=True)
class Origin:
    """Where samples come from: bed and device id stamped on every output."""

    bed: str
    device: str


@dataclass(slots=True)
class ConditionTracker:
    """Remembers which technical conditions are active; reports only transitions."""

    origin: Origin
    active: set[str] = field(default_factory=set)

    def update(
        self,
        now: set[str],
        recv_mono: float,
        recv_wall: float,
        out: list[Decoded],
        parameter: str = "",
        detail: str = "",
    ) -> None:
        if now == self.active:
            return
        o = self.origin
        for cond in sorted(now - self.active):
            out.append(DeviceEvent(o.bed, o.device, cond, True, recv_mono, recv_wall, parameter, detail))
        for cond in sorted(self.active - now):
            out.append(DeviceEvent(o.bed, o.device, cond, False, recv_mono, recv_wall, parameter, detail))
        self.active = set(now)


def make_sample(
    origin: Origin,
    parameter: str,
    value: float,
    quality: Quality,
    recv_mono: float,
    recv_wall: float,
    device_time: float | None = None,
) -> Sample:
    """A Sample for a registered parameter, with its UCUM unit and MDC code."""
    p = PARAMETERS[parameter]
    return Sample(
        origin.bed,
        parameter,
        value,
        p.unit,
        recv_mono,
        recv_wall,
        quality,
        origin.device,
        device_time,
        "",
        p.mdc,
    )
