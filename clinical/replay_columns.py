"""The columns a replayed file may have: the long layout, a wide export, and common names for each parameter.

- Long (PulseGate's own): ``timestamp, patient, parameter, value``, one reading per row; an empty value
  is a reading the monitor marked invalid.
- Wide (what many monitor and EHR exports write): ``timestamp, patient`` and one column per parameter;
  each non-empty cell is one reading, an empty cell is "not measured at this time" (NIBP every 15 minutes
  leaves most of its column empty) and is skipped; a cell holding an invalid-reading mark (``NaN``, ``-``,
  ``--``, ``---``, ``?``, ``invalid``) is a reading the monitor marked invalid, as an empty long value is.
- Header names are matched case-insensitively after dropping a trailing unit in brackets ("HR (bpm)",
  "SpO2 [%]"); common names map to PulseGate's (``HR`` -> heart_rate, ``SBP`` -> nibp_sys, ...). The
  same names are accepted in the long layout's ``parameter`` column. A wide file's columns that name no
  parameter are listed (``ignored_columns`` in the summary), never silently dropped. Names that could mean two things
  (``pulse``: ECG or pleth; ``SaO2``: a blood gas) are not guessed: rename them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

TIME_NAMES = ("timestamp", "time", "datetime", "date_time", "charttime", "ts")
PATIENT_NAMES = ("patient", "patient_id", "subject", "subject_id", "stay_id", "bed")

ALIASES: dict[str, str] = {
    **dict.fromkeys(("heart_rate", "hr", "heartrate", "ecg_hr", "hr_ecg"), "heart_rate"),
    **dict.fromkeys(("pulse_rate", "pr", "pulserate", "spo2_pr", "pleth_pr", "pr_spo2"), "pulse_rate"),
    **dict.fromkeys(("spo2", "sp_o2", "o2_sat", "o2sat", "spo2_pct"), "spo2"),
    **dict.fromkeys(("resp_rate", "rr", "resp", "respiration", "respiratory_rate", "resprate", "awrr"),
                    "resp_rate"),
    **dict.fromkeys(("nibp_sys", "sbp", "nbp_sys", "nbps", "nibp_s", "nibp_systolic", "systolic", "bp_sys"),
                    "nibp_sys"),
    **dict.fromkeys(("nibp_dia", "dbp", "nbp_dia", "nbpd", "nibp_d", "nibp_diastolic", "diastolic", "bp_dia"),
                    "nibp_dia"),
    **dict.fromkeys(("nibp_mean", "map", "nbp_mean", "nbpm", "nibp_m", "nibp_map", "bp_mean"), "nibp_mean"),
    **dict.fromkeys(("temperature", "temp", "temperature_c", "temp_c", "body_temp"), "temperature"),
    **dict.fromkeys(("perfusion_index", "pi", "perf_index"), "perfusion_index"),
    **dict.fromkeys(("consciousness", "avpu", "acvpu", "level_of_consciousness"), "consciousness"),
    **dict.fromkeys(("on_oxygen", "o2", "supplemental_oxygen", "oxygen", "on_o2"), "on_oxygen"),
    **dict.fromkeys(("spo2_scale2", "scale2"), "spo2_scale2"),
}

INVALID_MARKS = frozenset({"nan", "-", "--", "---", "?", "invalid", "inv"})

_UNIT = re.compile(r"\s*[(\[][^)\]]*[)\]]\s*$")
_SEP = re.compile(r"[\s\-./]+")


def normalise(name: str) -> str:
    """``"SpO2 [%]"`` -> ``"spo2"``, ``"Resp. Rate"`` -> ``"resp_rate"``."""
    return _SEP.sub("_", _UNIT.sub("", name.strip().lower())).strip("_")


def canonical(name: str) -> str | None:
    """PulseGate's parameter name for a column or parameter name, or None."""
    return ALIASES.get(normalise(name))


class Layout:
    """Where a header's columns are: the long layout's four, or the wide layout's parameter columns."""

    def __init__(self, header: list[str]) -> None:
        cols = [normalise(h) for h in header]
        self.time = _first(cols, TIME_NAMES)
        self.patient = _first(cols, PATIENT_NAMES)
        self.parameter = _first(cols, ("parameter", "param", "label", "vital"))
        self.value = _first(cols, ("value", "valuenum", "reading"))
        self.wide: list[tuple[int, str]] = []
        if self.parameter is None or self.value is None:
            used = {self.time, self.patient}
            self.wide = [(i, ALIASES[c]) for i, c in enumerate(cols) if i not in used and c in ALIASES]
        wide = {i for i, _ in self.wide}
        self.ignored = [header[i].strip() for i, c in enumerate(cols)
                        if self.wide and i not in wide and i not in (self.time, self.patient)]
        missing = [n for n, i in (("timestamp", self.time), ("patient", self.patient)) if i is None]
        if not self.wide:
            missing += [n for n, i in (("parameter", self.parameter), ("value", self.value)) if i is None]
        self.missing = missing
        self.found = cols


class WideRows:
    """A wide file's rows as long rows ``[timestamp, patient, parameter, value]``, one per non-empty cell.

    ``line_num`` is the source line of the row being melted (as ``csv.reader`` has it), so rejections
    still name the file's own line."""

    def __init__(self, reader: Iterator[list[str]], layout: Layout) -> None:
        self.reader = reader
        assert layout.time is not None and layout.patient is not None
        self.it, self.ip, self.columns = layout.time, layout.patient, layout.wide
        self.width = max(self.it, self.ip) + 1

    @property
    def line_num(self) -> int:
        return int(getattr(self.reader, "line_num", 0))

    def __iter__(self) -> Iterator[list[str]]:
        it, ip, columns, width = self.it, self.ip, self.columns, self.width
        for row in self.reader:
            n = len(row)
            if n < width:
                yield row  # counted as a short row
                continue
            t, patient = row[it], row[ip]
            for i, param in columns:
                if i < n:
                    cell = row[i].strip()
                    if cell:
                        yield [t, patient, param, "" if cell.lower() in INVALID_MARKS else cell]


def _first(cols: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in cols:
            return cols.index(name)
    return None
