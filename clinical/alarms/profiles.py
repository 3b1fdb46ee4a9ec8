"""Config of the clinical pipeline: ``[clinical]`` (alarm profiles, delays, escalation, anomaly model) and ``[[beds]]``.

Built-in profiles: ``adult`` and ``copd`` (the default: the smart policy of
clinical/alarms/smart.py, ``[clinical.profiles.NAME.smart]``; the copd bed
context selects SpO2 scale 2 and its lower SpO2 limits), and ``bedside`` /
``bedside-copd`` (single thresholds as on a bedside monitor, kept for
comparison). A ``[clinical.profiles.NAME]`` table adds a profile or replaces a
built-in one of the same name. Which condition gets which
priority is a risk-management decision of the hospital (IEC 60601-1-8 does not
set it): the defaults here are typical ward-monitor defaults, documented in
docs/clinical.md, and meant to be reviewed locally.

Example::

    [clinical]
    default_profile = "adult"
    [clinical.escalation]
    high_s = 60
    [clinical.anomaly]
    model_dir = "models/vitals-anomaly/1.0.0"

    [[beds]]
    id = "bed-01"
    profile = "copd"
    patient = "MRN-0001"      # pseudonymised before anything leaves the gateway
    on_oxygen = true
    spo2_scale2 = true
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from clinical.alarms.smart_settings import SmartPolicy
from runtime.configbase import Section

PriorityName = Literal["high", "medium", "low"]
ThresholdParam = Literal["heart_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "temperature"]


class ThresholdRule(Section):
    """One limit: the condition is on while the value is at or beyond ``limit`` for ``delay_s``."""

    parameter: ThresholdParam
    direction: Literal["high", "low"]
    limit: float
    priority: PriorityName = "medium"
    delay_s: float = Field(default=10.0, ge=0.0, le=600.0)  # alarm condition delay
    hysteresis: float = Field(default=0.0, ge=0.0)  # the condition ends only this far back inside the limit
    name: str = ""  # condition name; default "<parameter>_<direction>"

    @property
    def condition(self) -> str:
        return self.name or f"{self.parameter}_{self.direction}"


class News2Triggers(Section):
    enabled: bool = True
    high_at: int = Field(default=7, ge=1, le=20)  # Chart 4 emergency response -> high priority
    medium_at: int = Field(default=5, ge=1, le=20)  # Chart 4 urgent response -> medium priority
    medium_priority: PriorityName = "medium"  # the smart profiles show 5-6 (low) and let the trend speak
    single_three: Literal["off", "low", "medium"] = "low"  # a 3 in one parameter: urgent ward review
    # NEWS2 is a bedside-observation score: computed continuously it must hold for a while before it triggers
    delay_s: float = Field(default=300.0, ge=0.0, le=3600.0)
    clear_delay_s: float = Field(default=300.0, ge=0.0, le=3600.0)
    # how old a latest valid value may be and still count in the score
    continuous_max_age_s: float = Field(default=60.0, gt=0.0)
    nibp_max_age_s: float = Field(default=3600.0, gt=0.0)
    temperature_max_age_s: float = Field(default=4 * 3600.0, gt=0.0)


class Profile(Section):
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    # the smart alarm policy (clinical/alarms/smart.py); None: only the threshold rules above
    smart: SmartPolicy | None = None
    news2: News2Triggers = News2Triggers()
    anomaly: bool = True
    # a threshold is evaluated only on continuous values younger than this (s)
    fresh_s: float = Field(default=30.0, gt=0.0)


class TechnicalSettings(Section):
    """Technical alarms: kept apart from physiological ones, delayed so a brief dropout stays quiet."""

    sensor_off_delay_s: float = Field(default=10.0, ge=0.0)
    sensor_off_priority: PriorityName = "medium"
    disconnected_delay_s: float = Field(default=5.0, ge=0.0)
    disconnected_priority: PriorityName = "medium"
    signal_delay_s: float = Field(default=15.0, ge=0.0)  # low_signal, probe_fault
    signal_priority: PriorityName = "low"
    stale_after_s: float = Field(default=30.0, gt=0.0)  # no valid heart rate/SpO2/resp for this long
    stale_priority: PriorityName = "low"  # a lost signal is shown at once ...
    stale_medium_after_s: float | None = Field(default=None, gt=0.0)  # ... medium when it lasts this long (opt-in)


class EscalationSettings(Section):
    """Seconds an alarm may stay unacknowledged before (each further) escalation; 0 = never."""

    high_s: float = Field(default=60.0, ge=0.0)
    medium_s: float = Field(default=180.0, ge=0.0)
    low_s: float = Field(default=0.0, ge=0.0)


class AnomalySettings(Section):
    model_dir: Path | None = None  # models/vitals-anomaly/<version>; None disables the model
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)  # None: the manifest's metrics.threshold
    priority: PriorityName = "medium"
    delay_s: float = Field(default=120.0, ge=0.0)
    clear_delay_s: float = Field(default=600.0, ge=0.0)
    interval_s: float = Field(default=5.0, gt=0.0)  # how often tick() scores beds with a new minute bucket
    num_threads: int = Field(default=1, ge=1, le=8)
    max_batch: int = Field(default=1024, ge=1)  # beds per invoke; more wait for the next tick (bounded stalls)
    trusted_keys: list[Path] = Field(default_factory=list)  # public keys that may sign the model; empty = do not verify


class ClinicalConfig(Section):
    default_profile: str = "adult"
    profiles: dict[str, Profile] = Field(default_factory=dict)
    # profile for beds whose patient has a prescribed 88-92 % target (spo2_scale2) and no explicit profile
    scale2_profile: str | None = "copd"
    latch_high: bool = True  # high-priority physiological alarms latch until acknowledged
    # a latched alarm whose condition comes back after being over for at least this long is a new occurrence:
    # a new alarm with its own time and reason (the latched one stays until acknowledged); sooner, the same
    # alarm is active again; 0: always the same alarm
    recurrence_s: float = Field(default=300.0, ge=0.0)
    max_silence_s: float = Field(default=600.0, gt=0.0, le=600.0)  # the cap; each role's own below it
    technical: TechnicalSettings = TechnicalSettings()
    escalation: EscalationSettings = EscalationSettings()
    anomaly: AnomalySettings = AnomalySettings()

    @model_validator(mode="after")
    def _default_exists(self) -> ClinicalConfig:
        if self.default_profile not in self.all_profiles():
            raise ValueError(f"default_profile {self.default_profile!r} is not a defined profile")
        if self.scale2_profile is not None and self.scale2_profile not in self.all_profiles():
            raise ValueError(f"scale2_profile {self.scale2_profile!r} is not a defined profile")
        return self

    def all_profiles(self) -> dict[str, Profile]:
        return {**BUILTIN_PROFILES, **self.profiles}


class BedConfig(Section):
    """A bed and its patient context (NEWS2 needs oxygen, SpO2 scale and consciousness)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    profile: str | None = None  # None: [clinical] default_profile
    patient: str = ""  # local reference; never logged, pseudonymised before upload
    on_oxygen: bool = False
    spo2_scale2: bool = False  # prescribed 88-92 % target: NEWS2 SpO2 scale 2
    consciousness: Literal["A", "C", "V", "P", "U"] = "A"


def check_beds(cfg: ClinicalConfig, beds: list[BedConfig]) -> None:
    """Raise ValueError naming the bed whose profile does not exist or whose id repeats."""
    seen: set[str] = set()
    profiles = cfg.all_profiles()
    for i, b in enumerate(beds):
        if b.id in seen:
            raise ValueError(f"beds[{i}].id {b.id!r} is repeated")
        seen.add(b.id)
        if b.profile is not None and b.profile not in profiles:
            raise ValueError(f"beds[{i}].profile {b.profile!r} is not a defined profile")


def _r(p: ThresholdParam, d: Literal["high", "low"], limit: float, prio: PriorityName, delay: float, hyst: float,
       name: str = "") -> ThresholdRule:
    return ThresholdRule(parameter=p, direction=d, limit=limit, priority=prio, delay_s=delay, hysteresis=hyst,
                         name=name)


# Bedside-monitor thresholds (profile "bedside", the adult default before the smart policy).
# Tachycardia is confirmed within 10 s (IEC 60601-2-27 asks < 11 s to alarm).
ADULT = Profile(
    thresholds=[
        _r("heart_rate", "high", 130, "medium", 10, 5),
        _r("heart_rate", "high", 160, "high", 5, 5, "heart_rate_extreme_high"),
        _r("heart_rate", "low", 45, "medium", 10, 3),
        _r("heart_rate", "low", 35, "high", 5, 3, "heart_rate_extreme_low"),
        _r("spo2", "low", 90, "medium", 15, 2),
        _r("spo2", "low", 85, "high", 10, 2, "spo2_desat"),
        _r("resp_rate", "high", 30, "medium", 20, 2),
        _r("resp_rate", "low", 8, "medium", 20, 1),
        _r("nibp_sys", "low", 90, "medium", 0, 5),
        _r("nibp_sys", "low", 70, "high", 0, 5, "nibp_sys_extreme_low"),
        _r("nibp_sys", "high", 200, "medium", 0, 5),
        _r("temperature", "high", 39.0, "low", 0, 0.2),
        _r("temperature", "low", 35.0, "low", 0, 0.2),
    ]
)
# Prescribed 88-92 % target: SpO2 limits lowered, everything else as adult.
COPD = Profile(
    thresholds=[r for r in ADULT.thresholds if r.parameter != "spo2"]
    + [_r("spo2", "low", 86, "medium", 15, 2), _r("spo2", "low", 80, "high", 10, 2, "spo2_desat")]
)
# The default: the smart policy (artifacts filtered, integrated limits, own-baseline trend,
# life-threatening short paths) instead of single thresholds; NEWS2 5-6 shown, >= 7 high.
SMART = Profile(smart=SmartPolicy(), news2=News2Triggers(medium_priority="low"))
BUILTIN_PROFILES: dict[str, Profile] = {"adult": SMART, "copd": SMART, "bedside": ADULT, "bedside-copd": COPD}
