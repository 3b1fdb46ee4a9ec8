"""A local server for the InfluxDB v2 write API with token authentication, from Debian packages.

No InfluxDB 2.x or 3.x server is installable on the development machines
(Debian ships influxdb 1.6.7, which has neither ``/api/v2/write`` nor token
authentication: both came with 1.8). The v2 write path is therefore tested
against the nearest real thing Debian has, the ``victoria-metrics`` package:

* ``victoria-metrics`` serves ``/api/v2/write?org=&bucket=&precision=`` with
  InfluxDB line protocol (each field becomes the series
  ``<measurement>_<field>``, the bucket becomes the label ``db``) and answers
  ``/api/v1/export`` to read it back;
* ``vmauth`` in front of it checks the token: ``Authorization: Token <t>``
  (and ``Bearer <t>``) must match a configured token, else the request is
  refused (vmauth 1.79 answers 400 with "cannot find the provided auth token").

What this does not show about real InfluxDB 2.x / 3.x (organisations and
buckets that must exist, 401/404 bodies, tasks): docs/uplink-ingest.md.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.localservices import _stop, _wait_tcp, find_binary, free_port


@dataclass
class V2WriteServer:
    """victoria-metrics behind vmauth; ``url`` is the token-checked endpoint, ``backend_url`` the bare one."""

    workdir: Path
    token: str = "pg-test-token"
    port: int = 0
    backend_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    def start(self, timeout: float = 20.0) -> V2WriteServer:
        vm = find_binary("victoria-metrics", "apt-get install -y victoria-metrics")
        vmauth = find_binary("vmauth", "apt-get install -y victoria-metrics")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend_port = self.backend_port or free_port()
        self.port = self.port or free_port()
        auth = self.workdir / "vmauth.yml"
        auth.write_text(f'users:\n- bearer_token: "{self.token}"\n  url_prefix: "{self.backend_url}"\n')
        with (self.workdir / "vm.log").open("ab") as logf:
            self.procs.append(subprocess.Popen(
                [vm, f"-storageDataPath={self.workdir}/data", f"-httpListenAddr=127.0.0.1:{self.backend_port}",
                 "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR"],
                stdout=logf, stderr=logf))
            _wait_tcp(self.backend_port, self.procs[-1], "victoria-metrics", timeout)
            self.procs.append(subprocess.Popen(
                [vmauth, f"-auth.config={auth}", f"-httpListenAddr=127.0.0.1:{self.port}", "-loggerLevel=ERROR"],
                stdout=logf, stderr=logf))
            _wait_tcp(self.port, self.procs[-1], "vmauth", timeout)
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            _stop(p, False)
        self.procs.clear()

    def flush(self) -> None:
        """Make what was written searchable now (victoria-metrics buffers for about a second)."""
        with urllib.request.urlopen(f"{self.backend_url}/internal/force_flush", timeout=10):
            pass

    def export(self, series: str, within_s: float = 10.0, expect: int = 1) -> list[dict[str, Any]]:
        """Every stored row of ``series`` (JSON lines of /api/v1/export: metric labels, values, timestamps)."""
        deadline = time.monotonic() + within_s
        rows: list[dict[str, Any]] = []
        while True:
            self.flush()
            q = urllib.parse.urlencode({"match[]": f'{{__name__="{series}"}}', "start": "0"})
            with urllib.request.urlopen(f"{self.backend_url}/api/v1/export?{q}", timeout=10) as r:
                rows = [json.loads(ln) for ln in r.read().decode().splitlines() if ln.strip()]
            if sum(len(x["values"]) for x in rows) >= expect or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)

    def __enter__(self) -> V2WriteServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

