"""The gateway's TOML config: one frozen model, validated at start.

Sections owned by other modules are imported from them (devices from
firmware_bridge.config, uplink from edge.outbox/uplink, clinical from
edge.alarms, video from edge.video.config) and composed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from clinical.alarms.profiles import BedConfig, ClinicalConfig, check_beds
from edge.ambulance import AmbulanceSection
from edge.budget import BudgetConfig
from edge.config_refs import reference_problems
from edge.links import LinkConfig
from edge.uplink import UplinkConfig
from edge.video.config import VideoConfig
from firmware_bridge.config import DeviceConfig
from runtime.configbase import Section
from runtime.configload import load
from runtime.security.config import AuthSection, TlsSection
from wire.topics import TopicError, check_id


class GatewaySection(Section):
    id: str
    site: str
    state_dir: Path = Path("/var/lib/pulsegate")
    pseudonym_key: str = Field(
        description="file path or credential:NAME holding the HMAC key (>= 16 bytes); never the key itself"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    kind: Literal["ward", "ambulance"] = "ward"  # ambulance: GPS, cellular budget, links, pre-arrival notices

    @field_validator("id", "site")
    @classmethod
    def _ids(cls, v: str) -> str:
        try:
            return check_id("gateway/site", v)
        except TopicError as exc:
            raise ValueError(str(exc)) from None


class HttpSection(Section):
    """The nurse page, /metrics, /healthz; its TLS pair serves the endoscopy live view too."""

    listen: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tls: TlsSection | None = None  # required on a non-loopback address (see docs/security.md)


class LocalBusSection(Section):
    """The gateway's own broker (nurse call, pagers, BLE bridges)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None  # the broker allows no anonymous client (examples/mosquitto, docs/security.md)
    password_file: str | None = None  # a path or credential:NAME


class SummariesSection(Section):
    interval_s: float = Field(60.0, ge=1.0, le=3600.0)
    raw: bool = False


class ModelsSection(Section):
    dir: Path = Path("models")
    trusted_keys: tuple[Path, ...] = ()


class EdgeUplinkConfig(UplinkConfig):
    """``[uplink]`` plus, for an ambulance, ``[[uplink.links]]`` in priority order and ``[uplink.budget]``."""

    links: list[LinkConfig] = Field(default_factory=list)
    budget: BudgetConfig | None = None

    @model_validator(mode="after")
    def _links(self) -> EdgeUplinkConfig:
        names = [lk.name for lk in self.links]
        if len(set(names)) != len(names):
            raise ValueError(f"uplink.links: repeated name(s) in {names}")
        return self


class EdgeConfig(Section):
    gateway: GatewaySection
    http: HttpSection = HttpSection()
    auth: AuthSection = AuthSection()  # users_file defaults to state_dir/users.json
    local_bus: LocalBusSection = LocalBusSection()
    summaries: SummariesSection = SummariesSection()
    models: ModelsSection = ModelsSection()
    uplink: EdgeUplinkConfig | None = None  # None: no cloud (a stand-alone ward)
    ambulance: AmbulanceSection | None = None  # [gateway] kind = "ambulance" only
    clinical: ClinicalConfig = ClinicalConfig()
    beds: list[BedConfig] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    video: VideoConfig | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> EdgeConfig:
        check_beds(self.clinical, self.beds)
        if self.uplink is not None and self.uplink.site not in (None, self.gateway.site):
            raise ValueError(f"uplink.site {self.uplink.site!r} differs from gateway.site {self.gateway.site!r}")
        if self.gateway.kind == "ambulance":
            if self.ambulance is None or not self.ambulance.hospitals:
                raise ValueError("an ambulance gateway needs [ambulance] with at least one [[ambulance.hospitals]]")
        elif self.ambulance is not None:
            raise ValueError('[ambulance] is set but [gateway] kind is not "ambulance"')
        ids = [d.id for d in self.devices]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"devices: repeated id(s) {sorted(dup)}")
        return self


    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Beds named by devices but not defined (edge/config_refs.py); run by runtime.configload."""
        return reference_problems(self)


def load_edge_config(path: Path) -> EdgeConfig:
    return load(path, EdgeConfig)
