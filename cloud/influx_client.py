"""A writer on influxdb-client's async API (``InfluxDBClientAsync``) for the v2 write endpoint.

``[influx] writer = "influxdb-client"`` (with ``api = "v2"``, ``org``,
``bucket``, ``token_file``). It posts the same line protocol as
:class:`cloud.influx.InfluxWriter` to ``/api/v2/write`` through the client's
``WriteApiAsync`` (aiohttp underneath), and maps its answers onto the same
:class:`cloud.influx.WriteResponse`, so the delivery policy (retry, split,
dead letters) is the same. Which writer is the default and why, with the
figures of ``pulsegate bench influx-writers``: docs/uplink-ingest.md.

Queries (the API, the benches) stay on InfluxQL through
:class:`cloud.influx.InfluxWriter`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from cloud.influx import InfluxConfig, InfluxError, InfluxWriter, LineWriter, WriteResponse, retry_after
from runtime.configbase import read_optional_secret


class InfluxClientWriter:
    """One bucket of one organisation, written through ``influxdb_client.client.influxdb_client_async``."""

    def __init__(self, url: str, org: str, bucket: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.org, self.bucket = org, bucket
        self.database = bucket
        self._token = token
        self._timeout_ms = int(timeout_s * 1000)
        self._client: Any = None
        self._api: Any = None
        self.requests = 0
        self.bytes_sent = 0

    @classmethod
    def from_config(cls, cfg: InfluxConfig, base: Path | None = None) -> InfluxClientWriter:
        assert cfg.org is not None  # InfluxConfig checks it for api = "v2"
        return cls(cfg.url, cfg.org, cfg.bucket_name, read_optional_secret(cfg.token_file, base), cfg.timeout_s)

    def _write_api(self) -> Any:
        if self._api is None:
            # imported here: influxdb-client is a dependency of the cloud extra only
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            self._client = InfluxDBClientAsync(url=self.url, token=self._token or "", org=self.org,
                                               timeout=self._timeout_ms, enable_gzip=False)
            self._api = self._client.write_api()
        return self._api

    async def write(self, lines: list[str]) -> WriteResponse:
        """POST one batch; never raises for HTTP or connection errors (see WriteResponse.status)."""
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        body = "\n".join(lines)
        self.requests += 1
        self.bytes_sent += len(body)
        try:
            await self._write_api().write(bucket=self.bucket, org=self.org, record=body,
                                          write_precision=WritePrecision.NS)
        except ApiException as exc:
            headers: Any = exc.headers or {}
            return WriteResponse(int(exc.status or 0), str(exc.body or exc.reason or "")[:2000],
                                 retry_after(headers.get("Retry-After")))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return WriteResponse(0, f"{type(exc).__name__}: {exc}"[:500])
        return WriteResponse(204)

    async def create_database(self) -> None:
        raise InfluxError(f"bucket {self.bucket!r} not found: buckets are created by the operator "
                          "(examples/influxdb2/)")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._api = None


def open_writer(cfg: InfluxConfig, base: Path | None = None) -> LineWriter:
    """The writer ``[influx] writer`` names."""
    if cfg.writer == "influxdb-client":
        return InfluxClientWriter.from_config(cfg, base)
    return InfluxWriter.from_config(cfg, base)
