"""Cross-references of the gateway config, checked after the types: every bed a device names (its
``bed``, an HL7 ``bed_map`` value, a wearable ``devices`` value) must be defined by a ``[[beds]]``
table. A gateway without any ``[[beds]]`` table takes its beds from the devices (each appears with
its first sample), so there is nothing to check against then."""

from __future__ import annotations

from typing import TYPE_CHECKING

from firmware_bridge.config import Hl7MllpConfig, WearableMqttConfig

if TYPE_CHECKING:
    from edge.config import EdgeConfig

Loc = tuple[str | int, ...]
UNASSIGNED = "unassigned"


def reference_problems(cfg: EdgeConfig) -> list[tuple[Loc, str]]:
    """(key path, message) for each reference to a bed that no [[beds]] table defines."""
    beds = {b.id for b in cfg.beds}
    if not beds:
        return []
    known = ", ".join(sorted(beds))
    out: list[tuple[Loc, str]] = []

    def check(loc: Loc, bed: str) -> None:
        if bed != UNASSIGNED and bed not in beds:
            out.append((loc, f"bed {bed!r} is not defined by any [[beds]] table (defined: {known})"))

    for i, d in enumerate(cfg.devices):
        check(("devices", i, "bed"), d.bed)
        if isinstance(d, Hl7MllpConfig):
            for key, bed in d.bed_map.items():
                check(("devices", i, "bed_map", key), bed)
        elif isinstance(d, WearableMqttConfig):
            for key, bed in d.devices.items():
                check(("devices", i, "devices", key), bed)
    return out
