"""``[clinical.profiles.NAME.smart]``: the settings of the smart alarm policy (clinical/alarms/smart.py).

Every key has a default that is the built-in ``adult`` profile; unknown keys are errors naming the key.
Which condition gets which priority is the hospital's risk-management decision: review these.
"""

from __future__ import annotations

from pydantic import Field

from runtime.configbase import Section


class LifeThreatening(Section):
    """Short paths, high priority: value beyond the limit on clean samples for ``*_delay_s``."""

    hr_high: float = Field(default=160.0, gt=0)
    hr_high_delay_s: float = Field(default=7.0, ge=0, le=10.0)  # IEC 60601-2-27: tachycardia alarm < 11 s
    hr_low: float = Field(default=35.0, gt=0)
    hr_low_delay_s: float = Field(default=6.0, ge=0, le=30.0)
    spo2_low: float = Field(default=80.0, gt=0, le=100)
    spo2_low_scale2: float = Field(default=75.0, gt=0, le=100)  # prescribed 88-92 % target
    spo2_low_delay_s: float = Field(default=10.0, ge=0, le=60.0)
    resp_low: float = Field(default=4.0, ge=0)  # respiration lost (apnoea)
    resp_low_delay_s: float = Field(default=7.0, ge=0, le=60.0)
    nibp_sys_low: float = Field(default=70.0, gt=0)
    # max - min of the last 5 clean HR samples; their mean change from one sample to the next at most a third
    hr_steady_band: float = Field(default=15.0, gt=0)
    # heart rate smoothed over 10 s this far inside the limit when the run began: abrupt (ventricular
    # tachycardia, heart block), alarm at the absolute limit; gradual: only with signs of instability
    abrupt_change: float = Field(default=30.0, gt=0)


class Integrated(Section):
    """A time-integrated limit (SatSeconds): ``setting`` in value x seconds beyond ``limit``."""

    limit: float
    setting: float = Field(gt=0)
    persist_s: float = Field(default=120.0, ge=0)
    strong_factor: float = Field(default=3.0, ge=1.0)
    # false: medium only with corroboration by another parameter (persist_s and strong_factor do not escalate)
    alone: bool = True


class SmartPolicy(Section):
    enabled: bool = True
    life_threatening: LifeThreatening = LifeThreatening()
    spo2_low: Integrated = Integrated(limit=90.0, setting=100.0, persist_s=120.0, strong_factor=3.0)
    spo2_low_scale2: Integrated = Integrated(limit=85.0, setting=100.0, persist_s=120.0, strong_factor=3.0)
    hr_high: Integrated = Integrated(limit=130.0, setting=600.0, persist_s=600.0, strong_factor=6.0)
    # a slow heart rate alone is shown; medium with corroboration (as ACLS treats a bradycardia: by its signs)
    hr_low: Integrated = Integrated(limit=40.0, setting=300.0, persist_s=300.0, strong_factor=6.0, alone=False)
    resp_high: Integrated = Integrated(limit=28.0, setting=120.0, persist_s=600.0, strong_factor=10.0)
    resp_low: Integrated = Integrated(limit=8.0, setting=60.0, persist_s=180.0, strong_factor=4.0)
    # limits follow the patient's own baseline (trend baseline) once it is known
    baseline_relative: bool = True
    hr_high_above_baseline: float = Field(default=35.0, ge=0)
    hr_extreme_high_above_baseline: float = Field(default=50.0, ge=0)
    hr_low_below_baseline: float = Field(default=14.0, ge=0)
    hr_extreme_low_below_baseline: float = Field(default=15.0, ge=0)
    resp_high_above_baseline: float = Field(default=10.0, ge=0)
    resp_low_below_baseline: float = Field(default=5.0, ge=0)
    nibp_sys_low: float = 90.0
    # two readings at or below nibp_sys_low confirm each other only when the less alarming of them is also
    # this far below the patient's own NIBP baseline (a patient who lives at 90-95 is not hypotensive at 88;
    # a heart rate up or the trend still confirm); 0: any two readings confirm
    nibp_sys_low_below_own: float = Field(default=10.0, ge=0)
    nibp_sys_high: float = 200.0
    # shock index (HR / NIBP systolic) at a plausible reading: medium when it is at least shock_index and
    # shock_index_rise above the patient's own (baselines of both), with HR up and systolic down by at least
    # shock_index_delta each (haemorrhage, sepsis: compensation before the pressure is low); 0 switches it off
    shock_index: float = Field(default=0.9, ge=0)
    shock_index_rise: float = Field(default=0.3, ge=0)
    shock_index_delta: float = Field(default=15.0, ge=0)
    temperature_high: float = 39.0
    temperature_low: float = 35.0
    # artifacts
    motion_hr_jump: float = Field(default=15.0, gt=0)
    motion_spo2_drop: float = Field(default=4.0, gt=0)
    motion_window_s: float = Field(default=5.0, gt=0)
    motion_hold_s: float = Field(default=15.0, ge=0)
    motion_max_s: float = Field(default=90.0, ge=0)
    low_perfusion_index: float = Field(default=0.3, ge=0)
    hr_pr_max_diff: float = Field(default=15.0, gt=0)
    # an SpO2 that falls this many points from one reading to the next within 3 s (faster than blood
    # desaturates) is used only when another parameter corroborates it, until it is back or for this long
    spo2_step_drop: float = Field(default=6.0, gt=0)
    spo2_step_max_s: float = Field(default=1800.0, ge=0)
    # ... also when it comes back that many points lower after a dropout of at most this long (a probe put
    # back half off, or re-seated badly, reads low at once; blood takes its time); 0 switches it off
    spo2_step_gap_s: float = Field(default=300.0, ge=0)
    # ... and is back only once every reading has been within 3 points of its value before the step for this
    # long (two readings at least): a half-off probe reading noisily a few points low touches it now and then;
    # 0: the first reading back
    spo2_step_back_s: float = Field(default=10.0, ge=0)
    # ... and is used without corroboration once the held readings have stayed this many points below their
    # level just after the step (the median of its first 10 s) for 10 s, a further drop of 3 points from one
    # reading to the next taking that level anew: a probe that slipped reads steadily, blood that desaturates
    # keeps falling; 0 switches it off
    spo2_step_fall: float = Field(default=4.0, ge=0)
    # an SpO2 low corroborates itself when its clean minute means fell minute after minute for 3 minutes, by
    # at least this many points in all, to a minute below the limit, the last minute still 0.5 lower (blood
    # desaturating; motion, a probe slipping and the dips of an apnoea cluster do not keep falling for
    # minutes); 0 switches it off
    spo2_fall_corroborates: float = Field(default=4.0, ge=0)
    # a fast heart rate corroborates another parameter (an SpO2 low, a suspect SpO2 step, a low respiration)
    # once its integrated index has been at the setting this long: a burst of tachycardia or a rate counted
    # through motion lasts seconds, the tachycardia of hypoxaemia or of a bleed is sustained; 0: at once
    hr_corroborates_after_s: float = Field(default=60.0, ge=0)
    # trend against the patient's own baseline (clinical/trend.py)
    trend: bool = True
    trend_k: float = Field(default=1.0, ge=0)
    trend_h: float = Field(default=12.0, gt=0)
    trend_corroborates_at: float = Field(default=2.0, ge=0)
    # heart rate and resp rising alone (on 30-minute medians; activity, pain and anxiety look alike) add at
    # most this much a minute to the trend's CUSUM (clinical/trend.py rate_only_cap)
    trend_rate_only_cap: float = Field(default=1.8, ge=0)  # trend score that corroborates a single excursion
    # ... counted only as far as they are beyond the normal band (HR 85, resp 18) plus this many scale units
    # (HR 10 /min, resp 3 /min): a patient woken from sleep at HR 89, resp 18 is not deteriorating
    trend_rate_only_gate: float = Field(default=0.0, ge=0, le=2.0)
    # the parameters activity does not move corroborating: their minute's score counts this many times
    trend_corroborated_gain: float = Field(default=1.3, ge=1.0, le=3.0)
    # heart rate and resp both >= 1.0 scale unit off on their 10-minute medians for this many consecutive
    # minutes (longer than an activity bout lasts) leave the capped 30-minute path and count in full
    trend_sustained_min: int = Field(default=15, ge=5, le=240)
    # NEWS2 >= high_at raises high priority only with the trend corroborating it (or NEWS2 >= this)
    news2_high_alone_at: int = Field(default=9, ge=1, le=20)
    trend_baseline_min: int = Field(default=15, ge=3, le=240)
    trend_adapt_min: float = Field(default=240.0, gt=0)
    # a lost signal is a low-priority technical alarm at once, medium when it lasts this long
    no_data_medium_after_s: float = Field(default=900.0, gt=0)
