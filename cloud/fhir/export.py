"""``pulsegate fhir export``: read the cloud's InfluxDB, write a transaction Bundle, push it.

The argparse registration lives in pulsegate/commands/fhir.py; this module
holds the handler's logic so the demo and the tests call it directly.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from cloud.fhir.bundle import Entry, transaction
from cloud.fhir.config import FhirConfig
from cloud.fhir.push import FhirPusher, PushReport
from cloud.fhir.resources import build_entries
from cloud.fhir.source import read_export_data
from cloud.influx import InfluxWriter


async def export_entries(influx: InfluxWriter, since: str, cfg: FhirConfig) -> tuple[list[Entry], dict[str, Any]]:
    """The entries of everything InfluxDB holds for the last ``since``, and a summary (counts per type)."""
    data = await read_export_data(influx, since)
    entries = build_entries(data, cfg)
    counts = Counter(e.type for e in entries)
    summary: dict[str, Any] = {"since": since, "resources": len(entries), "by_type": dict(sorted(counts.items())),
                               "skipped_without_patient": data.skipped_no_patient}
    return entries, summary


def write_bundle(entries: list[Entry], out: Path) -> None:
    """One transaction Bundle, written atomically (a reader never sees half a file)."""
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(transaction(entries), separators=(",", ":")))
    os.replace(tmp, out)


async def run_export(influx: InfluxWriter, cfg: FhirConfig, since: str, out: Path | None = None,
                     push: bool = False, config_dir: Path | None = None) -> dict[str, Any]:
    """Export, write ``out`` when given, push to ``cfg.base_url`` when asked; the command's JSON report."""
    entries, summary = await export_entries(influx, since, cfg)
    if out is not None:
        write_bundle(entries, out)
        summary["out"] = str(out)
    if push:
        report: PushReport = await FhirPusher.from_config(cfg, config_dir).push(entries)
        summary["push"] = report.as_dict()
        summary["ok"] = report.ok
    else:
        summary["ok"] = True
    return summary
