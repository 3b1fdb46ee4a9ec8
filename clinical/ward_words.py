"""What the nurse page says about a bed, in the words a ward uses: a value against its limits, NEWS2
with what is missing and its clinical response (RCP 2017 Chart 4), the anomaly score's alarm level.

Pure functions over the bed's state and compiled profile; ward_view.py puts them into the JSON view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from clinical.alarms.conditions import Rule
from clinical.alarms.smart_settings import Integrated, SmartPolicy
from clinical.news2 import News2, Response

NEWS2_PARAM_WORDS = {"resp_rate": "resp rate", "spo2": "SpO2", "systolic": "BP", "pulse": "pulse",
                     "temperature": "temperature"}

# RCP NEWS2 Chart 4: the clinical response to each band, as a ward says it
NEWS2_RESPONSE_WORDS: dict[Response, tuple[str, str]] = {
    Response.ROUTINE: ("routine", "Continue routine observations (at least 12-hourly)"),
    Response.LOW: ("low", "Nurse to assess; observations every 4-6 hours"),
    Response.LOW_MEDIUM: ("low, one parameter at 3", "Urgent ward review by a doctor; observations hourly"),
    Response.MEDIUM: ("medium", "Urgent response: inform the doctor now; observations at least hourly"),
    Response.HIGH: ("high", "Emergency response: call the critical care team; continuous monitoring"),
}

PRIORITY_RANK = {"high": 3, "medium": 2, "low": 1}
Limit = tuple[bool, float, str]  # (a high limit?, the limit, the priority of the alarm beyond it)


def rule_limits(rules: Sequence[Rule]) -> list[Limit]:
    return [(r.high, r.limit, r.spec.priority.label) for r in rules]


def smart_limits(p: SmartPolicy, scale2: bool) -> dict[str, list[Limit]]:
    """The limits of a smart policy per parameter: its time-integrated limits (medium when they persist)
    and its life-threatening short paths (high). Baseline-relative limits move with the patient and are
    not shown here."""
    lt = p.life_threatening
    sp = p.spo2_low_scale2 if scale2 else p.spo2_low

    def prio(c: Integrated) -> str:  # a limit that needs corroboration is shown (low) when beyond it alone
        return "medium" if c.alone else "low"

    hr = [(True, p.hr_high.limit, prio(p.hr_high)), (True, lt.hr_high, "high"),
          (False, p.hr_low.limit, prio(p.hr_low)), (False, lt.hr_low, "high")]
    return {
        "heart_rate": hr, "pulse_rate": hr,
        "spo2": [(False, sp.limit, prio(sp)), (False, lt.spo2_low_scale2 if scale2 else lt.spo2_low, "high")],
        "resp_rate": [(True, p.resp_high.limit, prio(p.resp_high)), (False, p.resp_low.limit, prio(p.resp_low)),
                      (False, lt.resp_low, "high")],
        "nibp_sys": [(False, p.nibp_sys_low, "medium"), (True, p.nibp_sys_high, "medium"),
                     (False, lt.nibp_sys_low, "high")],
        "temperature": [(True, p.temperature_high, "low"), (False, p.temperature_low, "low")],
    }


def limits(rules: Sequence[Limit], value: float) -> dict[str, Any]:
    """The active limits of one parameter in the bed's profile and whether ``value`` is beyond one.

    ``low``/``high``: the first limit met on the way down/up (the alarm limits a monitor shows);
    ``breach``: the most severe limit the value is at or beyond (its direction, limit and priority), or
    None when in range."""
    low = high = None
    breach: dict[str, Any] | None = None
    rank = 0
    for is_high, limit, prio in rules:
        if is_high:
            high = limit if high is None else min(high, limit)
            beyond = value >= limit
        else:
            low = limit if low is None else max(low, limit)
            beyond = value <= limit
        if beyond and PRIORITY_RANK.get(prio, 0) > rank:
            rank = PRIORITY_RANK.get(prio, 0)
            breach = {"direction": "high" if is_high else "low", "limit": limit, "priority": prio}
    return {"low": low, "high": high, "breach": breach}


def news2_words(n: object) -> dict[str, Any]:
    """NEWS2 for the screen: the score (a lower bound when parameters are missing), what is missing,
    the response band and what it asks the ward to do."""
    if not isinstance(n, News2):
        return {"text": "NEWS2 not yet scored", "band": None, "response": "No observations yet",
                "missing": [], "complete": False}
    missing = [NEWS2_PARAM_WORDS.get(m, m) for m in n.missing]
    band, response = NEWS2_RESPONSE_WORDS[n.response]
    if missing:
        text = f"NEWS2 at least {n.total} (no {', '.join(missing)})"
    else:
        text = f"NEWS2 {n.total}"
    return {"text": text, "band": band, "response": response, "missing": missing, "complete": not missing}


def anomaly_words(score: float, threshold: float, alarm_on: bool) -> dict[str, Any]:
    """The anomaly model's score against its alarm threshold, as a level and a sentence."""
    if math.isnan(score):
        return {"level": None, "text": "Deterioration model: not enough history yet"}
    if math.isnan(threshold):
        return {"level": None, "text": "Deterioration model: no alarm level set"}
    if alarm_on or score >= threshold:
        return {"level": "alarm", "text": "Deterioration pattern: above the alarm level"}
    if score >= 0.8 * threshold:
        return {"level": "watch", "text": "Deterioration model: near the alarm level, watch the trend"}
    return {"level": "normal", "text": "Deterioration model: below the alarm level"}
