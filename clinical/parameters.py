"""The parameter registry: each parameter's IEEE 11073-10101 (MDC) code, UCUM unit and LOINC code.

Parameters are keyed by a short name (../shared/REFERENCES.md, "HL7 v2" and
"FHIR R4 vital signs"). MDC code = partition x 65536 + term code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    mdc: int
    mdc_ref: str
    unit: str  # UCUM
    loinc: str


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("heart_rate", 147842, "MDC_ECG_HEART_RATE", "/min", "8867-4"),
        Parameter("pulse_rate", 149530, "MDC_PULS_OXIM_PULS_RATE", "/min", "8867-4"),
        Parameter("spo2", 150456, "MDC_PULS_OXIM_SAT_O2", "%", "59408-5"),
        Parameter("resp_rate", 151562, "MDC_RESP_RATE", "/min", "9279-1"),
        Parameter("nibp_sys", 150021, "MDC_PRESS_BLD_NONINV_SYS", "mm[Hg]", "8480-6"),
        Parameter("nibp_dia", 150022, "MDC_PRESS_BLD_NONINV_DIA", "mm[Hg]", "8462-4"),
        Parameter("nibp_mean", 150023, "MDC_PRESS_BLD_NONINV_MEAN", "mm[Hg]", "8478-0"),
        Parameter("temperature", 150364, "MDC_TEMP_BODY", "Cel", "8310-5"),
        Parameter("perfusion_index", 150488, "MDC_PULS_OXIM_PERF_REL", "%", "61006-3"),
        Parameter("rr_interval", 147240, "MDC_ECG_TIME_PD_RR_GL", "s", "8637-1"),
    )
}
PARAMETERS_BY_MDC: dict[int, Parameter] = {}
for _p in PARAMETERS.values():
    PARAMETERS_BY_MDC.setdefault(_p.mdc, _p)
