"""Bundle entries with stable identities, and transaction Bundles of them.

Every exported resource carries a stable business identifier (system, value)
built from what identifies it in InfluxDB (gateway, bed, parameter, capture
time; the pseudonym; the alarm id). Its entry in a transaction is a
conditional create (``ifNoneExist: identifier=system|value``), so a re-export
finds the resource already there instead of creating a second one; alarms,
whose state changes after they are first exported, are conditional updates
(``PUT DetectedIssue?identifier=...``). The entry's ``fullUrl`` is a UUID
derived from the identifier, so the same data always gives the same Bundle.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

_NS = uuid.UUID("6f1f0c2e-4a39-5d55-9d2b-5075c5e6a7e1")


def full_url(system: str, value: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, system + '|' + value)}"


def token(system: str, value: str) -> str:
    """A FHIR token search value ``system|value``, escaped for a search and for a URL query."""
    def esc(s: str) -> str:
        return quote(s.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$"), safe="/:")
    return f"identifier={esc(system)}|{esc(value)}"


SOFT = frozenset({"derivedFrom", "evidence"})  # links a resource stays valid without (see prune)


def references(obj: Any, soft: bool = False) -> Iterator[str]:
    """Every ``urn:uuid:`` reference inside a resource (``soft``: only those under SOFT keys, else the others)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str) and v.startswith("urn:uuid:"):
                if not soft:
                    yield v
            elif k in SOFT:
                if not soft:
                    continue
                yield from references(v, soft=False)
            else:
                yield from references(v, soft)
    elif isinstance(obj, list):
        for v in obj:
            yield from references(v, soft)


def prune(resource: dict[str, Any], gone: set[str] | dict[str, str]) -> dict[str, Any]:
    """A copy without the soft links (derivedFrom, evidence) to entries the server refused."""
    out = dict(resource)
    if "derivedFrom" in out:
        kept = [r for r in out["derivedFrom"] if r.get("reference") not in gone]
        if kept:
            out["derivedFrom"] = kept
        else:
            del out["derivedFrom"]
    if "evidence" in out:
        evidence = []
        for ev in out["evidence"]:
            detail = [r for r in ev.get("detail", []) if r.get("reference") not in gone]
            if detail or ev.get("code"):
                evidence.append({**ev, "detail": detail} if detail else {k: v for k, v in ev.items() if k != "detail"})
        if evidence:
            out["evidence"] = evidence
        else:
            del out["evidence"]
    return out


@dataclass(slots=True)
class Entry:
    """One resource of the export; ``tier`` orders the push (what is referenced goes first)."""

    resource: dict[str, Any]
    system: str
    value: str
    tier: int
    update: bool = False  # conditional update instead of conditional create
    full_url: str = ""
    deps: tuple[str, ...] = field(default=())  # must be on the server first
    soft_deps: tuple[str, ...] = field(default=())  # linked if they are (derivedFrom, evidence)

    def __post_init__(self) -> None:
        self.resource["identifier"] = [{"system": self.system, "value": self.value}]
        self.full_url = full_url(self.system, self.value)
        self.deps = tuple(dict.fromkeys(references(self.resource)))
        self.soft_deps = tuple(dict.fromkeys(references(self.resource, soft=True)))

    @property
    def type(self) -> str:
        return str(self.resource["resourceType"])

    def request(self) -> dict[str, str]:
        search = token(self.system, self.value)
        if self.update:
            return {"method": "PUT", "url": f"{self.type}?{search}"}
        return {"method": "POST", "url": self.type, "ifNoneExist": search}

    def bundle_entry(self, resource: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"fullUrl": self.full_url, "resource": resource or self.resource, "request": self.request()}


def transaction(entries: Iterable[Entry]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [e.bundle_entry() for e in entries]}


def rewrite(obj: Any, resolved: dict[str, str]) -> Any:
    """A copy of ``obj`` with its ``urn:uuid:`` references replaced by the server's ``Type/id`` where known."""
    if isinstance(obj, dict):
        return {k: (resolved.get(v, v) if k == "reference" and isinstance(v, str) else rewrite(v, resolved))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [rewrite(v, resolved) for v in obj]
    return obj
