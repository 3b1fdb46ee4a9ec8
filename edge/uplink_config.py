"""``[uplink]`` of the gateway TOML and the outbox it names (re-exported by edge.uplink)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from edge.outbox import Outbox
from runtime.configbase import Section
from wire import messages


class UplinkConfig(Section):
    """``[uplink]`` of the gateway TOML."""

    host: str = "localhost"
    port: int = 8883
    site: str | None = None  # default: the [gateway] site
    client_id: str | None = None  # default: "pg-<gateway>"
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None  # a path or credential:NAME
    outbox_path: str = "/var/lib/pulsegate/outbox.sqlite"
    quota_mb: float = 512.0
    sync: Literal["full", "normal"] = "full"
    session_expiry_s: int = 7 * 24 * 3600
    max_inflight: int = 1000
    keepalive_s: int = 30
    status_interval_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    resume_holdoff_s: float = 0.0  # v1 had 1 s; receipts and PUBACK 0x10 handling made it unnecessary
    receipts: bool = True  # contract v2: forget a record only once the cloud receipted it; false = speak v1
    receipt_timeout_s: float = 5.0  # re-send an unreceipted record after this (doubling) once newer ones were
    receipt_silence_s: float = 300.0  # ... or after this (doubling) even while the cloud is silent
    max_unreceipted: int = 10000  # records published and not yet receipted, at most


def open_outbox(cfg: UplinkConfig, gateway: str, base: Path | None = None) -> Outbox:
    """The outbox named by ``[uplink]`` (``outbox_path`` relative to ``base`` if not absolute)."""
    path = Path(cfg.outbox_path)
    if base is not None and not path.is_absolute():
        path = base / path
    return Outbox(path, gateway, quota_bytes=int(cfg.quota_mb * 1024 * 1024), sync=cfg.sync,
                  wire_version=messages.VERSION if cfg.receipts else messages.V1)
