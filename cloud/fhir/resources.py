"""What the cloud holds -> FHIR R4 resources (the mapping table is in docs/interop.md).

Vital signs follow the R4 Vital Signs profiles (meta.profile names the one each
Observation claims: heartrate, resprate, oxygensat, bodytemp, bp), coded with
LOINC and with the MDC code beside it; the value is the interval's mean in
UCUM units; effectiveDateTime is the start of the summary interval (capture
time; the interval is in the note: Medplum's validator refuses an
effectivePeriod under the vs-1 invariant). Blood
pressure is ONE Observation (85354-9) with systolic/diastolic (and mean)
components. NEWS2 is an Observation whose ``derivedFrom`` lists the vital-sign
Observations of the same bed and interval. Alarms are DetectedIssues (see
docs/interop.md for why not Flag). The patient is a Patient holding nothing
but the gateway's pseudonym as its identifier.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from cloud.fhir import codes
from cloud.fhir.bundle import Entry
from cloud.fhir.config import FhirConfig
from cloud.fhir.source import AlarmRow, ExportData, GatewayRow, ScoreRow, VitalRow

TIER_GATEWAY, TIER_SUBJECT, TIER_VITALS, TIER_SCORES, TIER_ALARMS = range(5)


def instant(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ref(entry: Entry) -> dict[str, str]:
    return {"reference": entry.full_url}


class Mapper:
    """Builds the entries of one export; shared resources (patients, devices) once each."""

    def __init__(self, cfg: FhirConfig) -> None:
        self.cfg = cfg
        self.entries: list[Entry] = []
        self._shared: dict[tuple[str, str], Entry] = {}
        # (gateway, bed, param or "nibp"/"news2") -> [(t_ns, end_ns, entry)] for derivedFrom and evidence
        self._by_interval: dict[tuple[str, str, str], list[tuple[int, int, Entry]]] = defaultdict(list)

    def system(self, name: str) -> str:
        base = self.cfg.identifier_system
        return f"{base}:{name}" if base.startswith("urn:") else f"{base.rstrip('/')}/{name}"

    def _add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def _shared_entry(self, system: str, value: str, make: Any) -> Entry:
        key = (system, value)
        if key not in self._shared:
            self._shared[key] = self._add(make())
        return self._shared[key]

    # -- patients and devices ------------------------------------------------------------------------
    def patient(self, pseudonym: str) -> Entry:
        system = self.cfg.pseudonym_system
        return self._shared_entry(system, pseudonym, lambda: Entry({
            "resourceType": "Patient",
            "meta": {"security": [{"system": codes.SECURITY, "code": "PSEUDED", "display": "pseudonymized"}]},
        }, system, pseudonym, TIER_SUBJECT))

    def gateway(self, gateway: str, info: GatewayRow | None) -> Entry:
        def make() -> Entry:
            res: dict[str, Any] = {
                "resourceType": "Device", "status": "active",
                "type": {"coding": [codes.mdc_coding(*codes.DEVICE_GATEWAY)], "text": "PulseGate gateway"},
                "deviceName": [{"name": gateway, "type": "user-friendly-name"}],
            }
            versions = []
            if info and info.software:
                versions.append({"type": {"text": "software"}, "value": info.software})
            for name, version in sorted((info.models if info else {}).items()):
                versions.append({"type": {"text": f"model {name}"}, "value": version})
            if versions:
                res["version"] = versions
            return Entry(res, self.system("gateway"), gateway, TIER_GATEWAY)
        return self._shared_entry(self.system("gateway"), gateway, make)

    def monitor(self, gateway: str, bed: str, gw_entry: Entry) -> Entry:
        value = f"{gateway}/{bed}"
        return self._shared_entry(self.system("bed-monitor"), value, lambda: Entry({
            "resourceType": "Device", "status": "active",
            "type": {"coding": [codes.mdc_coding(*codes.DEVICE_MONITOR)], "text": "bedside monitor"},
            "deviceName": [{"name": f"{gateway} {bed}", "type": "user-friendly-name"}],
            "parent": ref(gw_entry),
        }, self.system("bed-monitor"), value, TIER_SUBJECT))

    # -- observations --------------------------------------------------------------------------------
    @staticmethod
    def _note(r: VitalRow, unit: str) -> dict[str, str]:
        extremes = f"; min {r.min:g}, max {r.max:g} {unit}" if r.min is not None and r.max is not None else ""
        return {"text": f"mean of {r.count} valid samples over {r.interval_s:g} s{extremes}"}

    def vital(self, r: VitalRow, data: ExportData) -> None:
        code = codes.VITALS.get(r.param)
        if code is None:
            return
        gw = self.gateway(r.gateway, data.gateways.get(r.gateway))
        res: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
        if code.profile:
            res["meta"] = {"profile": [codes.PROFILE + code.profile]}
            res["category"] = codes.VITAL_SIGNS_CATEGORY
        coding = [*(codes.loinc_coding(*c) for c in code.loinc), codes.mdc_coding(code.mdc, code.mdc_ref)]
        res.update({
            "code": {"coding": coding, "text": r.param},
            "subject": ref(self.patient(r.patient)),
            "effectiveDateTime": instant(r.t_ns),
            "valueQuantity": codes.quantity(r.mean, code.unit),
            "device": ref(self.monitor(r.gateway, r.bed, gw)),
            "note": [self._note(r, code.unit)],
        })
        e = self._add(Entry(res, self.system("observation"), f"{r.gateway}/{r.bed}/{r.param}/{r.t_ns}", TIER_VITALS))
        self._by_interval[(r.gateway, r.bed, r.param)].append((r.t_ns, r.t_ns + int(r.interval_s * 1e9), e))

    def blood_pressure(self, rows: list[VitalRow], data: ExportData) -> None:
        first = rows[0]
        by_param = {r.param: r for r in rows}
        components: list[dict[str, Any]] = []
        for param, code in codes.BP_COMPONENTS.items():
            comp: dict[str, Any] = {"code": {"coding": [codes.loinc_coding(*code.loinc[0]),
                                                        codes.mdc_coding(code.mdc, code.mdc_ref)]}}
            if param in by_param:
                comp["valueQuantity"] = codes.quantity(by_param[param].mean, code.unit)
            elif param in codes.BP_REQUIRED:
                comp["dataAbsentReason"] = {"coding": [{"system": codes.DATA_ABSENT, "code": "unknown"}]}
            else:
                continue
            components.append(comp)
        gw = self.gateway(first.gateway, data.gateways.get(first.gateway))
        res: dict[str, Any] = {
            "resourceType": "Observation", "status": "final",
            "meta": {"profile": [codes.PROFILE + "bp"]},
            "category": codes.VITAL_SIGNS_CATEGORY,
            "code": {"coding": [codes.loinc_coding(*codes.BP_PANEL), codes.mdc_coding(*codes.BP_PANEL_MDC)],
                     "text": "non-invasive blood pressure"},
            "subject": ref(self.patient(first.patient)),
            "effectiveDateTime": instant(first.t_ns),
            "component": components,
            "device": ref(self.monitor(first.gateway, first.bed, gw)),
        }
        e = self._add(Entry(res, self.system("observation"), f"{first.gateway}/{first.bed}/nibp/{first.t_ns}",
                            TIER_VITALS))
        self._by_interval[(first.gateway, first.bed, "nibp")].append(
            (first.t_ns, first.t_ns + int(first.interval_s * 1e9), e))

    def news2(self, s: ScoreRow, data: ExportData) -> None:
        if s.news2 is None:
            return
        derived = [ref(e) for (gw, bed, _), spans in self._by_interval.items() if gw == s.gateway and bed == s.bed
                   for start, _end, e in spans if start == s.t_ns and e.type == "Observation"]
        res: dict[str, Any] = {
            "resourceType": "Observation", "status": "final", "category": codes.SURVEY_CATEGORY,
            "code": {"coding": [{"system": codes.SNOMED, "code": codes.NEWS2[0], "display": codes.NEWS2[1]}],
                     "text": "NEWS2 total score"},
            "subject": ref(self.patient(s.patient)),
            "effectiveDateTime": instant(s.t_ns),
            "valueInteger": s.news2,
            "device": ref(self.gateway(s.gateway, data.gateways.get(s.gateway))),
        }
        if derived:
            res["derivedFrom"] = derived
        e = self._add(Entry(res, self.system("observation"), f"{s.gateway}/{s.bed}/news2/{s.t_ns}", TIER_SCORES))
        self._by_interval[(s.gateway, s.bed, "news2")].append((s.t_ns, s.t_ns, e))

    def _evidence(self, a: AlarmRow) -> list[dict[str, Any]]:
        keys = []
        if a.param:
            keys.append("nibp" if a.param in codes.BP_COMPONENTS else a.param)
        if a.source == "news2":
            keys.append("news2")
        found = []
        for k in keys:
            spans = self._by_interval.get((a.gateway, a.bed, k), [])
            best = [e for start, end, e in spans if start <= a.t_ns < max(end, start + 1)]
            if not best and spans:  # the nearest earlier interval
                earlier = [(start, e) for start, _end, e in spans if start <= a.t_ns]
                best = [max(earlier, key=lambda p: p[0])[1]] if earlier else []
            found += best
        return [{"detail": [ref(e) for e in found]}] if found else []

    def alarm(self, a: AlarmRow, data: ExportData) -> None:
        states = {c.state for c in a.changes}
        reason = f"{a.priority} priority {a.kind} alarm {a.condition} from {a.source}"
        if a.value is not None:
            reason += f"; value {a.value:g}" + (f" ({a.param})" if a.param else "")
        if a.score is not None:
            reason += f"; score {a.score:g}"
        res: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "status": "final" if "cleared" in states else "preliminary",
            "code": {"coding": [{"system": self.system("alarm-condition"), "code": a.condition or "unknown"}],
                     "text": a.condition or "alarm"},
            "severity": codes.SEVERITY.get(a.priority, "low"),
            "patient": ref(self.patient(a.patient)),
            "identifiedDateTime": instant(a.t_ns),
            "author": ref(self.gateway(a.gateway, data.gateways.get(a.gateway))),
            "detail": reason,
        }
        evidence = self._evidence(a)
        if evidence:
            res["evidence"] = evidence
        mitigation = []
        for c in a.changes:
            if c.state in ("acknowledged", "silenced", "cleared", "escalated"):
                m: dict[str, Any] = {"action": {"coding": [{"system": self.system("alarm-action"), "code": c.state}],
                                                "text": c.state}, "date": instant(c.changed_ns)}
                if c.by:
                    m["author"] = {"display": c.by}
                mitigation.append(m)
        if mitigation:
            res["mitigation"] = mitigation
        self._add(Entry(res, self.system("alarm"), f"{a.gateway}/{a.alarm_id}", TIER_ALARMS, update=True))


def build_entries(data: ExportData, cfg: FhirConfig) -> list[Entry]:
    """All entries of one export, in push order (tier, then capture time)."""
    m = Mapper(cfg)
    bp: dict[tuple[str, str, str, int], list[VitalRow]] = defaultdict(list)
    for r in sorted(data.vitals, key=lambda r: (r.t_ns, r.gateway, r.bed, r.param)):
        if r.param in codes.BP_COMPONENTS:
            bp[(r.gateway, r.bed, r.patient, r.t_ns)].append(r)
        else:
            m.vital(r, data)
    for rows in bp.values():
        m.blood_pressure(rows, data)
    for s in sorted(data.scores, key=lambda s: (s.t_ns, s.gateway, s.bed)):
        m.news2(s, data)
    for a in sorted(data.alarms, key=lambda a: (a.t_ns, a.gateway, a.alarm_id)):
        m.alarm(a, data)
    return sorted(m.entries, key=lambda e: e.tier)
