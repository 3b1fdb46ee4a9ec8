"""Async InfluxDB HTTP client over aiohttp: writes (v1 ``/write`` or v2 ``/api/v2/write``) and InfluxQL.

Writes go to ``/write?db=&rp=`` (``api = "v1"``: InfluxDB 1.x, and the v1
compatibility endpoint of 2.x / 3.x) or to ``/api/v2/write?org=&bucket=``
(``api = "v2"``: InfluxDB 2.x, 3.x), always line protocol with
``precision=ns``. Authentication is either a username and password (HTTP Basic,
1.x) or a token (``Authorization: Token <token>``: 2.x / 3.x tokens, and the
``username:password`` token of 1.8+). The token and the password are read from
a file or a systemd credential, never from the TOML. Queries are InfluxQL on
``/query`` (1.x, and the v1 compatibility API of 2.x with a DBRP mapping).

This module does one request per call and reports what happened; the
retry/split/dead-letter policy lives in cloud/delivery.py. The writer on
influxdb-client's async API is cloud/influx_client.py.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
from pydantic import model_validator

from runtime.configbase import Section, read_optional_secret


class InfluxConfig(Section):
    """``[influx]`` of the cloud TOML."""

    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"  # write endpoint: /write (1.x, v1 compat) or /api/v2/write (2.x, 3.x)
    writer: Literal["http", "influxdb-client"] = "http"  # influxdb-client: its async API (api = "v2" only)
    database: str = "pulsegate"  # v1: database (and DBRP name on 2.x); v2: the default bucket name
    org: str | None = None  # v2: organisation (name)
    bucket: str | None = None  # v2: bucket (default: database)
    username: str | None = None
    password_file: str | None = None
    token_file: str | None = None  # path or credential:NAME; Authorization: Token <token>
    timeout_s: float = 30.0
    raw_days: int = 30  # retention of raw points and summaries
    rollup_days: int = 0  # 0 = keep hourly rollups forever
    rollup_interval: str = "1h"

    @model_validator(mode="after")
    def _auth(self) -> InfluxConfig:
        if self.token_file and (self.username or self.password_file):
            raise ValueError("[influx]: token_file and username/password_file exclude each other")
        if self.api == "v2" and not self.org:
            raise ValueError('[influx] api = "v2" needs org')
        if self.writer == "influxdb-client" and self.api != "v2":
            raise ValueError('[influx] writer = "influxdb-client" needs api = "v2"')
        return self

    @property
    def bucket_name(self) -> str:
        return self.bucket or self.database


class LineWriter(Protocol):
    """What the delivery policy and the ingest need of a writer (cloud/influx.py, cloud/influx_client.py)."""

    requests: int
    bytes_sent: int

    async def write(self, lines: list[str]) -> WriteResponse: ...

    async def create_database(self) -> None: ...

    async def close(self) -> None: ...


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
    """One database (v1) or one bucket of one organisation (v2) on one InfluxDB server."""

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        retention_policy: str | None = None,
        token: str | None = None,
        api: Literal["v1", "v2"] = "v1",
        org: str | None = None,
        bucket: str | None = None,
    ) -> None:
        if api == "v2" and not org:
            raise ValueError("the v2 write API needs an organisation")
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.api, self.org, self.bucket = api, org, bucket or database
        self._headers: dict[str, str] = {}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif username:
            basic = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.bytes_sent = 0

    @classmethod
    def from_config(cls, cfg: InfluxConfig, base: Path | None = None) -> InfluxWriter:
        password = read_optional_secret(cfg.password_file, base)
        token = read_optional_secret(cfg.token_file, base)
        return cls(cfg.url, cfg.database, cfg.username, password, cfg.timeout_s, token=token, api=cfg.api,
                   org=cfg.org, bucket=cfg.bucket_name)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    def _write_target(self) -> tuple[str, dict[str, str]]:
        if self.api == "v2":
            assert self.org is not None
            return f"{self.url}/api/v2/write", {"org": self.org, "bucket": self.bucket, "precision": "ns"}
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        return f"{self.url}/write", params

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def write(self, lines: list[str]) -> WriteResponse:
        """POST one batch; never raises for HTTP or connection errors (see WriteResponse.status)."""
        body = "\n".join(lines).encode()
        url, params = self._write_target()
        self.requests += 1
        self.bytes_sent += len(body)
        try:
            async with self._http().post(url, params=params, data=body) as resp:
                text = await resp.text()
                retry = retry_after(resp.headers.get("Retry-After"))
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
        if self.api == "v2":
            raise InfluxError(f"bucket {self.bucket!r} not found: buckets are created by the operator "
                              "(examples/influxdb2/)")
        await self.query(f'CREATE DATABASE "{_ident(self.database)}"', method="POST", database="")


def _ident(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
