"""The cloud daemon's TOML config (ingest, InfluxDB, API, FHIR export, scheduled retraining)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from cloud.arrivals import ArrivalsConfig
from cloud.fhir.config import FhirConfig
from cloud.influx import InfluxConfig
from cloud.ingest import IngestConfig
from cloud.retrain_schedule import RetrainSection
from runtime.configbase import Section
from runtime.configload import load
from runtime.security.config import AuthSection, TlsSection


class CloudSection(Section):
    id: str = "cloud-1"
    state_dir: Path = Path("/var/lib/pulsegate-cloud")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class ApiSection(Section):
    """The REST API, dashboard, /metrics and /healthz."""

    listen: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    tls: TlsSection | None = None  # required on a non-loopback address (see docs/security.md)


class CloudConfig(Section):
    cloud: CloudSection
    api: ApiSection = ApiSection()
    auth: AuthSection = AuthSection()  # [auth.oidc] for staff; users_file (default state_dir/users.json) for tokens
    ingest: IngestConfig = IngestConfig()
    influx: InfluxConfig = InfluxConfig()
    arrivals: ArrivalsConfig = ArrivalsConfig()
    fhir: FhirConfig = FhirConfig()
    retrain: RetrainSection = RetrainSection()  # scheduled retraining (off by default; docs/learning-loop.md)


def load_cloud_config(path: Path) -> CloudConfig:
    return load(path, CloudConfig)
