"""Device-level scenarios that drive the emulators: what the patient and the probe do over time.

Each scenario is deterministic for a seed: :meth:`Scenario.at` gives the
:class:`VitalState` at ``t`` seconds since the start, with a smooth, seeded
random walk (sums of slow sinusoids with random phases, plus breathing-driven
variation) around a physiologically plausible trajectory. The technical events
(probe off, artifact bursts, cable pull) are time windows, so a test can ask what
the device should be sending at any moment.

These are device scenarios only (what a monitor would display); the clinical
model training uses its own generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

NAMES = ("stable", "deterioration", "desaturation", "probe_off", "artifact", "cable_pull")


@dataclass(frozen=True, slots=True)
class VitalState:
    """What a monitor shows at one instant. ``None`` means not measured / not available."""

    hr: float
    spo2: float
    rr: float
    nibp_sys: float
    nibp_dia: float
    temp: float
    pi: float
    probe_off: bool = False
    artifact: bool = False
    cable_pulled: bool = False

    @property
    def nibp_mean(self) -> float:
        return round(self.nibp_dia + (self.nibp_sys - self.nibp_dia) / 3.0)


@dataclass(frozen=True, slots=True)
class Baseline:
    hr: float = 78.0
    spo2: float = 97.0
    rr: float = 15.0
    nibp_sys: float = 124.0
    nibp_dia: float = 78.0
    temp: float = 36.9
    pi: float = 3.4


class Scenario:
    """Stable patient: small, slow, plausible variation around a seeded baseline."""

    name = "stable"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        rng = random.Random(seed)
        self.base = Baseline(
            hr=rng.uniform(64, 88),
            spo2=rng.uniform(96, 99),
            rr=rng.uniform(12, 18),
            nibp_sys=rng.uniform(110, 135),
            nibp_dia=rng.uniform(68, 84),
            temp=rng.uniform(36.5, 37.2),
            pi=rng.uniform(2.0, 5.0),
        )
        # (amplitude fraction, period s, phase) per parameter: slow drifts that never jump.
        self._waves = {k: [(rng.uniform(0.3, 1.0), rng.uniform(40, 600), rng.uniform(0, 6.3)) for _ in range(3)]
                       for k in ("hr", "spo2", "rr", "bp", "temp", "pi")}

    def _wobble(self, key: str, t: float) -> float:
        """A smooth value in about [-1, 1]."""
        return sum(a * math.sin(2 * math.pi * t / p + ph) for a, p, ph in self._waves[key]) / 2.0

    def trend(self, t: float) -> Baseline:
        """The underlying trajectory (subclasses bend it); stable = the baseline."""
        return self.base

    def at(self, t: float) -> VitalState:
        b = self.trend(t)
        sys_ = b.nibp_sys + 4 * self._wobble("bp", t)
        dia = b.nibp_dia + 3 * self._wobble("bp", t + 17)
        return VitalState(
            hr=_clip(b.hr + 3 * self._wobble("hr", t), 25, 240),
            spo2=_clip(b.spo2 + 0.8 * self._wobble("spo2", t), 50, 100),
            rr=_clip(b.rr + 1.2 * self._wobble("rr", t), 4, 60),
            nibp_sys=_clip(sys_, 50, 250),
            nibp_dia=_clip(min(dia, sys_ - 15), 25, 150),
            temp=_clip(b.temp + 0.1 * self._wobble("temp", t), 33, 42),
            pi=_clip(b.pi + 0.5 * self._wobble("pi", t), 0.02, 20),
        )


class Deterioration(Scenario):
    """Slow deterioration (sepsis-like) over ``duration_s``: HR, RR, temperature up; SpO2, BP down."""

    name = "deterioration"

    def __init__(self, seed: int = 0, duration_s: float = 1800.0, start_s: float = 60.0) -> None:
        super().__init__(seed)
        self.duration_s = duration_s
        self.start_s = start_s

    def trend(self, t: float) -> Baseline:
        f = _clip((t - self.start_s) / self.duration_s, 0.0, 1.0)
        f = f * f * (3 - 2 * f)  # smoothstep: gradual onset, gradual plateau
        b = self.base
        return replace(
            b,
            hr=b.hr + f * (128 - b.hr),
            spo2=b.spo2 + f * (89 - b.spo2),
            rr=b.rr + f * (27 - b.rr),
            nibp_sys=b.nibp_sys + f * (88 - b.nibp_sys),
            nibp_dia=b.nibp_dia + f * (52 - b.nibp_dia),
            temp=b.temp + f * (38.9 - b.temp),
            pi=b.pi + f * (0.6 - b.pi),
        )


class Desaturation(Scenario):
    """Sudden desaturation at ``onset_s``: SpO2 falls to ~82 % within ~20 s, HR and RR rise."""

    name = "desaturation"

    def __init__(self, seed: int = 0, onset_s: float = 30.0, fall_s: float = 20.0, nadir: float = 82.0) -> None:
        super().__init__(seed)
        self.onset_s, self.fall_s, self.nadir = onset_s, fall_s, nadir

    def trend(self, t: float) -> Baseline:
        f = _clip((t - self.onset_s) / self.fall_s, 0.0, 1.0)
        b = self.base
        return replace(b, spo2=b.spo2 + f * (self.nadir - b.spo2), hr=b.hr + f * 22, rr=b.rr + f * 9)


class _Windows(Scenario):
    """A stable patient with a technical event active in periodic windows."""

    period_s = 60.0
    length_s = 15.0
    first_s = 20.0
    flag = ""

    def __init__(self, seed: int = 0, first_s: float | None = None, length_s: float | None = None,
                 period_s: float | None = None) -> None:
        super().__init__(seed)
        if first_s is not None:
            self.first_s = first_s
        if length_s is not None:
            self.length_s = length_s
        if period_s is not None:
            self.period_s = period_s

    def active(self, t: float) -> bool:
        if t < self.first_s:
            return False
        return (t - self.first_s) % self.period_s < self.length_s

    def at(self, t: float) -> VitalState:
        s = super().at(t)
        if not self.active(t):
            return s
        return replace(s, **{self.flag: True})


class ProbeOff(_Windows):
    """The SpO2 probe comes off the finger for 15 s every minute (first after 20 s)."""

    name = "probe_off"
    flag = "probe_off"


class ArtifactBursts(_Windows):
    """Motion artifact bursts: 5 s every 30 s; values jump around while flagged."""

    name = "artifact"
    flag = "artifact"
    period_s = 30.0
    length_s = 5.0
    first_s = 10.0

    def at(self, t: float) -> VitalState:
        s = super().at(t)
        if not s.artifact:
            return s
        jitter = random.Random(self.seed * 1_000_003 + int(t * 4))
        return replace(s, hr=_clip(s.hr + jitter.uniform(-35, 45), 25, 240),
                       spo2=_clip(s.spo2 - jitter.uniform(0, 12), 50, 100))


class CablePull(_Windows):
    """The serial cable is pulled for 10 s every 60 s (first after 20 s): the port disappears."""

    name = "cable_pull"
    flag = "cable_pulled"
    length_s = 10.0


SCENARIOS: dict[str, type[Scenario]] = {
    "stable": Scenario,
    "deterioration": Deterioration,
    "desaturation": Desaturation,
    "probe_off": ProbeOff,
    "artifact": ArtifactBursts,
    "cable_pull": CablePull,
}


def make_scenario(name: str, seed: int = 0) -> Scenario:
    try:
        return SCENARIOS[name](seed)
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x
