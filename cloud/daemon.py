"""The cloud daemon: ingest worker(s) into InfluxDB, plus the HTTP API and /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from cloud.api import API_RULES, FleetApi
from cloud.arrivals import ArrivalsService
from cloud.arrivals_api import ARRIVALS_RULES, ArrivalsApi
from cloud.config import CloudConfig
from cloud.influx import InfluxWriter
from cloud.influx_client import open_writer
from cloud.ingest import IngestWorker
from cloud.retrain_schedule import RetrainScheduler
from runtime.configbase import read_optional_secret
from runtime.httpserver import HttpServer
from runtime.metrics import new_registry
from runtime.security.audit import Audit
from runtime.security.listener import register_metrics, secure_listener
from runtime.supervisor import Component, Progress, Supervisor

HEALTH_PING_S = 2.0


class CloudDaemon:
    def __init__(self, cfg: CloudConfig, config_dir: Path) -> None:
        self.cfg = cfg
        self.progress = Progress()
        self.registry, self.collector = new_registry()
        self.influx = InfluxWriter.from_config(cfg.influx, config_dir)  # queries (API); v1 schema
        self.writer = open_writer(cfg.influx, config_dir)  # the ingest's writes ([influx] writer)
        ingest_cfg = cfg.ingest
        self.ingest = IngestWorker.from_config(ingest_cfg, self.writer, cfg.influx, config_dir, self.registry)
        self.app = web.Application()
        self.api = FleetApi(self.influx)
        self.api.setup(self.app)
        self.arrivals: ArrivalsService | None = None
        if cfg.arrivals.enabled:  # pre-arrival notices from ambulances (cloud/arrivals.py), a page of its own
            i = cfg.ingest
            brokers = [(b.host, b.port, b.username, read_optional_secret(b.password_file, config_dir), b.tls_ca_file)
                       for b in cfg.arrivals.brokers] or [
                (i.host, i.port, i.username, read_optional_secret(i.password_file, config_dir), i.tls_ca_file)]
            self.arrivals = ArrivalsService(brokers, cfg.arrivals.keep_s, client_id=f"pg-arrivals-{cfg.cloud.id}")
            arrivals_api = ArrivalsApi(self.arrivals, self.influx)
            arrivals_api.setup(self.app)
        # staff through OIDC ([auth.oidc]), machines with API tokens (users_file), scoped to their sites
        self.audit = Audit()
        rules = (ARRIVALS_RULES if cfg.arrivals.enabled else ()) + API_RULES  # before the fleet's /api/*
        self.security = secure_listener("api", cfg.api.listen, cfg.auth, cfg.api.tls, rules, base=config_dir,
                                        users_file=cfg.cloud.state_dir / "users.json", audit=self.audit)
        register_metrics(self.collector, self.audit, self.security)
        if self.arrivals is not None:
            arrivals_api.security = self.security
        self.retrain: RetrainScheduler | None = None
        if cfg.retrain.enabled:  # scheduled retraining, one node at a time (its lock)
            r = cfg.retrain
            key = None
            if r.key_file is not None:
                from runtime.configbase import secret_path

                key = secret_path(r.key_file, config_dir)
            self.retrain = RetrainScheduler(r, cfg.cloud.id, cfg.cloud.state_dir, self.influx, key)
        self.http = HttpServer(self.app, cfg.api.listen, cfg.api.port, self.registry, self.health,
                               security=self.security, port_key="api.port in the cloud config")

    async def health(self) -> dict[str, object]:
        """Readiness (/readyz, /healthz): the ingest is subscribed on the broker AND InfluxDB answers its
        ping (within 2 s); either missing means no message can be stored, so the cloud is not ready."""
        try:
            influx_ok = await asyncio.wait_for(self.influx.ping(), HEALTH_PING_S)
        except TimeoutError:
            influx_ok = False
        broker_ok = bool(self.ingest.connected)
        return {"ok": broker_ok and influx_ok, "ingest_connected": broker_ok, "influx_reachable": influx_ok,
                "components": {"broker": {"ok": broker_ok}, "influxdb": {"ok": influx_ok}}}

    def components(self) -> list[Component]:
        return [self.http, self.ingest, *([self.arrivals] if self.arrivals is not None else []),
                *([self.retrain] if self.retrain is not None else [])]

    async def run(self, stop: asyncio.Event | None = None, install_signals: bool = True) -> int:
        try:
            return await Supervisor(self.components(), progress=self.progress).run(stop, install_signals)
        finally:
            await self.influx.close()
            await self.writer.close()
