"""The smart policy's alarm conditions: name, priority, technical or physiological, source, message.

The stage compiles one ConditionSpec per entry (clinical/alarms/conditions.py); the policy
(clinical/alarms/smart.py) reports them by index.
"""

from __future__ import annotations

from typing import NamedTuple


class Cond(NamedTuple):
    name: str
    priority: int  # 1 low, 2 medium, 3 high
    technical: bool
    source: str
    message: str
    param: str | None


CONDITIONS: tuple[Cond, ...] = (
    Cond("heart_rate_extreme_high", 3, False, "rule", "HR extreme high", "heart_rate"),
    Cond("heart_rate_extreme_low", 3, False, "rule", "HR extreme low", "heart_rate"),
    Cond("spo2_extreme_low", 3, False, "rule", "SpO2 extreme low", "spo2"),
    Cond("resp_lost", 3, False, "rule", "respiration lost", "resp_rate"),
    Cond("nibp_sys_extreme_low", 3, False, "rule", "NIBP sys extreme low, confirmed", "nibp_sys"),
    Cond("spo2_low", 2, False, "rule", "SpO2 low, sustained", "spo2"),
    Cond("spo2_low_brief", 1, False, "rule", "SpO2 dip", "spo2"),
    Cond("heart_rate_high", 2, False, "rule", "HR high, sustained", "heart_rate"),
    Cond("heart_rate_high_brief", 1, False, "rule", "HR high, brief", "heart_rate"),
    Cond("heart_rate_low", 2, False, "rule", "HR low, sustained", "heart_rate"),
    Cond("heart_rate_low_brief", 1, False, "rule", "HR low, brief", "heart_rate"),
    Cond("resp_rate_high", 2, False, "rule", "resp rate high, sustained", "resp_rate"),
    Cond("resp_rate_high_brief", 1, False, "rule", "resp rate high, brief", "resp_rate"),
    Cond("resp_rate_low", 2, False, "rule", "resp rate low, sustained", "resp_rate"),
    Cond("resp_rate_low_brief", 1, False, "rule", "resp rate low, brief", "resp_rate"),
    Cond("nibp_sys_low", 2, False, "rule", "NIBP sys low, confirmed", "nibp_sys"),
    Cond("nibp_sys_low_unconfirmed", 1, False, "rule", "NIBP sys low: repeat the measurement", "nibp_sys"),
    Cond("nibp_sys_high", 2, False, "rule", "NIBP sys high, confirmed", "nibp_sys"),
    Cond("nibp_sys_high_unconfirmed", 1, False, "rule", "NIBP sys high: repeat the measurement", "nibp_sys"),
    Cond("shock_index", 2, False, "rule", "HR up and NIBP down together (shock index)", "nibp_sys"),
    Cond("temperature_high", 1, False, "rule", "temperature high", "temperature"),
    Cond("temperature_low", 1, False, "rule", "temperature low", "temperature"),
    Cond("deterioration_trend", 2, False, "trend", "deterioration against the patient's own baseline", None),
    Cond("poor_perfusion", 1, True, "artifact", "poor perfusion: check the SpO2 probe", "spo2"),
    Cond("nibp_cuff_error", 1, True, "artifact", "implausible NIBP reading ignored: repeat", "nibp_sys"),
    Cond("spo2_step", 1, True, "artifact", "SpO2 fell abruptly with nothing else changing: check the probe", "spo2"),
)
IDX = {c.name: i for i, c in enumerate(CONDITIONS)}
C_DETERIORATION_TREND = IDX["deterioration_trend"]
C_HEART_RATE_EXTREME_HIGH = IDX["heart_rate_extreme_high"]
C_HEART_RATE_EXTREME_LOW = IDX["heart_rate_extreme_low"]
C_HEART_RATE_HIGH = IDX["heart_rate_high"]
C_HEART_RATE_HIGH_BRIEF = IDX["heart_rate_high_brief"]
C_HEART_RATE_LOW = IDX["heart_rate_low"]
C_HEART_RATE_LOW_BRIEF = IDX["heart_rate_low_brief"]
C_NIBP_CUFF_ERROR = IDX["nibp_cuff_error"]
C_NIBP_SYS_EXTREME_LOW = IDX["nibp_sys_extreme_low"]
C_NIBP_SYS_HIGH = IDX["nibp_sys_high"]
C_NIBP_SYS_HIGH_UNCONFIRMED = IDX["nibp_sys_high_unconfirmed"]
C_NIBP_SYS_LOW = IDX["nibp_sys_low"]
C_NIBP_SYS_LOW_UNCONFIRMED = IDX["nibp_sys_low_unconfirmed"]
C_POOR_PERFUSION = IDX["poor_perfusion"]
C_RESP_LOST = IDX["resp_lost"]
C_SHOCK_INDEX = IDX["shock_index"]
C_RESP_RATE_HIGH = IDX["resp_rate_high"]
C_RESP_RATE_HIGH_BRIEF = IDX["resp_rate_high_brief"]
C_RESP_RATE_LOW = IDX["resp_rate_low"]
C_RESP_RATE_LOW_BRIEF = IDX["resp_rate_low_brief"]
C_SPO2_EXTREME_LOW = IDX["spo2_extreme_low"]
C_SPO2_LOW = IDX["spo2_low"]
C_SPO2_LOW_BRIEF = IDX["spo2_low_brief"]
C_SPO2_STEP = IDX["spo2_step"]
C_TEMPERATURE_HIGH = IDX["temperature_high"]
C_TEMPERATURE_LOW = IDX["temperature_low"]
