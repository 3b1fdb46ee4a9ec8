"""Async InfluxDB 1.x HTTP client over aiohttp: /write, /query, databases, RPs, CQs.

Only the 1.x API is used (``/write`` with line protocol and ``precision=ns``,
``/query`` with InfluxQL), which InfluxDB 2.x serves through its v1
compatibility endpoints and 3.x Core serves too. This module does one request
per call and reports what happened; the retry/split/dead-letter policy lives in
cloud/delivery.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from runtime.configbase import Section, read_optional_secret


class InfluxConfig(Section):
    """``[influx]`` of the cloud TOML."""

    url: str = "http://127.0.0.1:8086"
    database: str = "pulsegate"
    username: str | None = None
    password_file: str | None = None
    timeout_s: float = 30.0
    raw_days: int = 30  # retention of raw points and summaries
    rollup_days: int = 0  # 0 = keep hourly rollups forever
    rollup_interval: str = "1h"


@dataclass(frozen=True, slots=True)
class WriteResponse:
    status: int  # HTTP status; 0 = no response (connection refused, timeout)
    body: str = ""
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 204 or self.status == 200


class InfluxError(RuntimeError):
    pass


class InfluxWriter:
    """One database on one InfluxDB 1.x server."""

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        retention_policy: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self._auth = aiohttp.BasicAuth(username, password or "") if username else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.bytes_sent = 0

    @classmethod
    def from_config(cls, cfg: InfluxConfig, base: Path | None = None) -> InfluxWriter:
        password = read_optional_secret(cfg.password_file, base)
        return cls(cfg.url, cfg.database, cfg.username, password, cfg.timeout_s)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auth=self._auth)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def write(self, lines: list[str]) -> WriteResponse:
        """POST one batch; never raises for HTTP or connection errors (see WriteResponse.status)."""
        body = "\n".join(lines).encode()
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        self.requests += 1
        self.bytes_sent += len(body)
        try:
            async with self._http().post(f"{self.url}/write", params=params, data=body) as resp:
                text = await resp.text()
                retry = _retry_after(resp.headers.get("Retry-After"))
                return WriteResponse(resp.status, text[:2000], retry)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return WriteResponse(0, f"{type(exc).__name__}: {exc}"[:500])

    async def query(self, q: str, method: str = "GET", database: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the ``results`` list; raises InfluxError on an error."""
        params = {"q": q, "epoch": "ns"}
        db = database if database is not None else self.database
        if db:
            params["db"] = db
        try:
            if method == "GET":
                req = self._http().get(f"{self.url}/query", params=params)
            else:
                req = self._http().post(f"{self.url}/query", data=params)
            async with req as resp:
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise InfluxError(f"query failed: {exc}") from None
        if resp.status >= 400 or "error" in data:
            raise InfluxError(str(data.get("error", resp.status)))
        results: list[dict[str, Any]] = data.get("results", [])
        for r in results:
            if "error" in r:
                raise InfluxError(str(r["error"]))
        return results

    async def rows(self, q: str) -> list[dict[str, Any]]:
        """Convenience: a SELECT's rows as dicts (all series concatenated, tags merged in)."""
        out: list[dict[str, Any]] = []
        for r in await self.query(q):
            for s in r.get("series", []):
                cols = s["columns"]
                for values in s["values"]:
                    row = dict(zip(cols, values, strict=True))
                    row.update(s.get("tags", {}))
                    out.append(row)
        return out

    async def ping(self) -> bool:
        try:
            async with self._http().get(f"{self.url}/ping") as resp:
                return resp.status == 204
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def create_database(self) -> None:
        await self.query(f'CREATE DATABASE "{_ident(self.database)}"', method="POST", database="")


def _ident(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
