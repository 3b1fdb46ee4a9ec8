"""Push export entries to a FHIR R4 server as transaction Bundles.

Entries go tier by tier (devices, then patients and monitors, then vitals,
NEWS2, alarms); before a tier is sent its ``urn:uuid:`` references are
replaced by the server's ``Type/id`` of what the earlier tiers created or
found, so every Bundle is small and self-contained (some servers cap
conditional transactions: Medplum at 8 entries).

Error policy (after cloud/delivery.py):

- 2xx: every entry's location is recorded (created, or found by its identifier).
- 400, 409, 412, 422: a transaction is all-or-nothing, so bisect until the
  refused entry is alone; it is reported with the server's OperationOutcome and
  the rest is sent. 413: split the Bundle in halves.
- 429, 5xx, no answer: back off (full jitter, doubling from ``backoff_min_s`` to
  ``backoff_max_s``, at least Retry-After) and resend, up to ``max_attempts``;
  then the push stops and everything not yet on the server is reported as unsent.
- 401, 403 (token), 404, 405 (base URL): stop; nothing more is sent, everything
  left is reported as unsent.

An entry whose dependency (its patient, its device) was refused is not sent
and is reported as skipped with the dependency's identifier; a link a
resource is valid without (NEWS2's derivedFrom, an alarm's evidence) to a
refused entry is left out and the resource is sent.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from cloud.fhir.bundle import Entry, prune, rewrite
from cloud.fhir.config import FhirConfig
from runtime.configbase import read_optional_secret
from runtime.logs import get_logger

log = get_logger("cloud.fhir")
_LOCATION = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]*)?/?$")
REJECT = {400, 409, 412, 422}
RETRY = {0, 408, 429, 500, 502, 503, 504}


@dataclass(slots=True)
class Problem:
    """An entry the server refused, or that could not be sent."""

    resource_type: str
    identifier: str  # system|value
    status: int
    outcome: dict[str, Any] | None = None  # the server's OperationOutcome
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"resourceType": self.resource_type, "identifier": self.identifier, "status": self.status,
                "outcome": self.outcome, "reason": self.reason}


@dataclass(slots=True)
class PushReport:
    created: int = 0
    existing: int = 0  # found by identifier (conditional create matched) or updated in place
    requests: int = 0
    retries: int = 0
    rejected: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # a dependency was refused
    unsent: list[Problem] = field(default_factory=list)  # retries exhausted, or not authorised

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.skipped or self.unsent)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "requests": self.requests,
                "retries": self.retries, "rejected": [p.as_dict() for p in self.rejected],
                "skipped": [p.as_dict() for p in self.skipped], "unsent": [p.as_dict() for p in self.unsent]}


class StopPush(RuntimeError):
    """Not authorised, or the server stayed unreachable / overloaded: nothing more is sent this time."""


Sleep = Callable[[float], Awaitable[None]]


class FhirPusher:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0, bundle_max_entries: int = 50,
                 max_attempts: int = 6, backoff_min_s: float = 0.5, backoff_max_s: float = 30.0,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.bundle_max_entries = bundle_max_entries
        self.max_attempts = max_attempts
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, cfg: FhirConfig, base: Any = None) -> FhirPusher:
        if not cfg.base_url:
            raise ValueError("[fhir] base_url is not set")
        return cls(cfg.base_url, read_optional_secret(cfg.token_file, base), cfg.timeout_s, cfg.bundle_max_entries,
                   cfg.max_attempts, cfg.backoff_min_s, cfg.backoff_max_s)

    async def push(self, entries: list[Entry]) -> PushReport:
        report = PushReport()
        resolved: dict[str, str] = {}  # fullUrl -> Type/id on the server
        failed: dict[str, str] = {}  # fullUrl -> identifier of the refused entry it stands for
        async with aiohttp.ClientSession(timeout=self.timeout, headers=self.headers) as http:
            self._http = http
            try:
                for tier in sorted({e.tier for e in entries}):
                    ready = []
                    for e in (e for e in entries if e.tier == tier):
                        missing = [d for d in e.deps if d not in resolved]
                        if missing:
                            bad = failed.get(missing[0], missing[0])
                            report.skipped.append(Problem(e.type, f"{e.system}|{e.value}", 0,
                                                          reason=f"dependency not on the server: {bad}"))
                            failed[e.full_url] = f"{e.system}|{e.value}"
                            continue
                        ready.append(e)
                    for i in range(0, len(ready), self.bundle_max_entries):
                        await self._send(ready[i:i + self.bundle_max_entries], resolved, failed, report)
            except StopPush as exc:
                done = set(resolved) | set(failed)
                report.unsent += [Problem(e.type, f"{e.system}|{e.value}", 0, reason=str(exc))
                                  for e in entries if e.full_url not in done]
            finally:
                self._http = None
        log.info("fhir_push_done", created=report.created, existing=report.existing, rejected=len(report.rejected),
                 skipped=len(report.skipped), unsent=len(report.unsent), requests=report.requests)
        return report

    async def _post(self, bundle: dict[str, Any], report: PushReport) -> tuple[int, Any]:
        """POST with retries for 429/5xx/no answer; returns (status, JSON body or None)."""
        assert self._http is not None
        status, body = 0, None
        for attempt in range(self.max_attempts):
            retry_after = None
            report.requests += 1
            try:
                async with self._http.post(self.base_url + "/", json=bundle) as resp:
                    status = resp.status
                    try:
                        body = await resp.json(content_type=None)
                    except ValueError:
                        body = None
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status, body = 0, {"error": f"{type(exc).__name__}: {exc}"[:300]}
            if status in (401, 403):
                raise StopPush(f"FHIR server answered {status}: check [fhir] token_file")
            if status in (404, 405):
                raise StopPush(f"FHIR server answered {status} to a transaction: check [fhir] base_url")
            if status not in RETRY:
                return status, body
            if attempt == self.max_attempts - 1:
                answer = status or "nothing"
                raise StopPush(f"FHIR server answered {answer} {self.max_attempts} times: {str(body)[:200]}")
            report.retries += 1
            delay = random.uniform(0, min(self.backoff_max_s, self.backoff_min_s * 2 ** attempt))
            delay = max(delay, min(retry_after or 0.0, self.backoff_max_s))
            log.warning("fhir_push_retry", status=status, attempt=attempt + 1, delay_s=round(delay, 2))
            await self.sleep(delay)
        return status, body

    async def _send(self, chunk: list[Entry], resolved: dict[str, str], failed: dict[str, str],
                    report: PushReport) -> None:
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [e.bundle_entry(rewrite(prune(e.resource, {d for d in e.soft_deps if d not in resolved}),
                                                    resolved)) for e in chunk]}
        status, body = await self._post(bundle, report)
        if 200 <= status < 300 and isinstance(body, dict) and len(body.get("entry") or []) == len(chunk):
            for e, r in zip(chunk, body["entry"], strict=True):
                where = _location(r)
                if where is None:
                    failed[e.full_url] = f"{e.system}|{e.value}"
                    report.rejected.append(Problem(e.type, f"{e.system}|{e.value}", status,
                                                   r.get("response", {}).get("outcome"), "no location in response"))
                    continue
                resolved[e.full_url] = where
                if str(r.get("response", {}).get("status", "")).startswith("201"):
                    report.created += 1
                else:
                    report.existing += 1
            return
        if len(chunk) > 1 and (status in REJECT or status == 413):
            half = len(chunk) // 2
            await self._send(chunk[:half], resolved, failed, report)
            await self._send(chunk[half:], resolved, failed, report)
            return
        outcome = body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
        for e in chunk:  # refused alone (or an answer that does not say where each entry went)
            failed[e.full_url] = f"{e.system}|{e.value}"
            report.rejected.append(Problem(e.type, f"{e.system}|{e.value}", status, outcome,
                                           "" if outcome else str(body)[:300] if body else "no answer"))
        log.warning("fhir_resource_rejected", status=status, resource_type=chunk[0].type, count=len(chunk))


def _location(entry: dict[str, Any]) -> str | None:
    resp = entry.get("response") or {}
    m = _LOCATION.search(str(resp.get("location") or ""))
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    res = entry.get("resource") or {}
    if res.get("resourceType") and res.get("id"):
        return f"{res['resourceType']}/{res['id']}"
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
