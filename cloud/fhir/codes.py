"""Code systems, codes and profiles of the FHIR export (docs/interop.md has the table).

LOINC and UCUM from the FHIR R4 Vital Signs profiles; MDC (ISO/IEEE 11073-10101)
codes beside them as the Point-of-Care Device IG asks; device types from the
PoCD IG (MDS of a physiological monitor) and the Personal Health Device IG
(the gateway as an application hosting device).
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
SECURITY = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
PROFILE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True, slots=True)
class VitalCode:
    """One exported parameter: its profile (None = not a vital sign), LOINC codes, MDC code, UCUM unit."""

    loinc: tuple[tuple[str, str], ...]  # (code, display), the profile's own code first
    mdc: int
    mdc_ref: str
    unit: str
    profile: str | None


VITALS: dict[str, VitalCode] = {
    "heart_rate": VitalCode((("8867-4", "Heart rate"),), 147842, "MDC_ECG_HEART_RATE", "/min", "heartrate"),
    "pulse_rate": VitalCode((("8867-4", "Heart rate"),), 149530, "MDC_PULS_OXIM_PULS_RATE", "/min", "heartrate"),
    "resp_rate": VitalCode((("9279-1", "Respiratory rate"),), 151562, "MDC_RESP_RATE", "/min", "resprate"),
    "spo2": VitalCode(
        (("2708-6", "Oxygen saturation in Arterial blood"),
         ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")),
        150456, "MDC_PULS_OXIM_SAT_O2", "%", "oxygensat"),
    "temperature": VitalCode((("8310-5", "Body temperature"),), 150364, "MDC_TEMP_BODY", "Cel", "bodytemp"),
    "perfusion_index": VitalCode((("61006-3", "Perfusion index Blood Postductal Pulse oximetry"),), 150488,
                                 "MDC_PULS_OXIM_PERF_REL", "%", None),
    "rr_interval": VitalCode((("8637-1", "R-R interval by EKG"),), 147240, "MDC_ECG_TIME_PD_RR_GL", "s", None),
}

# Blood pressure: ONE Observation (the bp profile) with a component per pressure
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BP_PANEL_MDC = (150020, "MDC_PRESS_BLD_NONINV")
BP_COMPONENTS: dict[str, VitalCode] = {
    "nibp_sys": VitalCode((("8480-6", "Systolic blood pressure"),), 150021, "MDC_PRESS_BLD_NONINV_SYS", "mm[Hg]",
                          None),
    "nibp_dia": VitalCode((("8462-4", "Diastolic blood pressure"),), 150022, "MDC_PRESS_BLD_NONINV_DIA", "mm[Hg]",
                          None),
    "nibp_mean": VitalCode((("8478-0", "Mean blood pressure"),), 150023, "MDC_PRESS_BLD_NONINV_MEAN", "mm[Hg]",
                           None),
}
BP_REQUIRED = ("nibp_sys", "nibp_dia")  # the bp profile requires both components

NEWS2 = ("1104051000000101", "Royal College of Physicians National Early Warning Score 2 (NEWS2) total score")

# Device types: PoCD IG (MDS of a multi-parameter monitor), PHD IG (application hosting device = gateway)
DEVICE_MONITOR = (69965, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS")
DEVICE_GATEWAY = (531981, "MDC_MOC_VMS_MDS_AHD")

# alarm priority -> DetectedIssue.severity
SEVERITY = {"high": "high", "medium": "moderate", "low": "low", "info": "low"}


def mdc_coding(code: int, ref: str) -> dict[str, str]:
    return {"system": MDC, "code": str(code), "display": ref}


def loinc_coding(code: str, display: str) -> dict[str, str]:
    return {"system": LOINC, "code": code, "display": display}


def quantity(value: float, unit: str) -> dict[str, object]:
    return {"value": round(value, 4), "unit": unit, "system": UCUM, "code": unit}


VITAL_SIGNS_CATEGORY = [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}],
                         "text": "Vital Signs"}]
SURVEY_CATEGORY = [{"coding": [{"system": OBS_CATEGORY, "code": "survey", "display": "Survey"}]}]
