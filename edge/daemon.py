"""The gateway daemon: builds the components from the config and supervises them.

Sinks: HTTP (nurse page, /metrics, /healthz), the uplink, the local alarm bus.
Pipeline: clinical stage (bed state, NEWS2, anomaly model, alarms), summaries.
Sources: the configured devices, the endoscopy video pipeline.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import Histogram

from clinical.alarms.manager import AuditRecord
from clinical.alarms.model import AlarmUpdate
from clinical.anomaly import MODEL_NAME as ANOMALY_MODEL
from clinical.anomaly import VitalsAnomalyModel
from clinical.feedback import REJECT_REASONS
from clinical.stage import ClinicalStage
from edge.alarm_bus import Delivered, LocalAlarmPublisher
from edge.ambulance import AmbulanceService
from edge.budget import Budget
from edge.config import EdgeConfig
from edge.crew_page.app import CREW_RULES
from edge.feedback import Feedback, LocalActions
from edge.gateway_status import ambulance_metrics, uplink_metrics
from edge.links import LinkConfig, LinkSet
from edge.model_slots import ModelSlots, newest_verified
from edge.nurse_page.app import NURSE_RULES, NursePage
from edge.outbox import Outbox
from edge.pipeline import Pipeline
from edge.pseudonym import Pseudonymizer
from edge.shadow import ShadowScorer
from edge.summaries import Summarizer
from edge.uplink import Uplink, open_outbox
from edge.video.config import VideoConfig
from firmware_bridge.sources import make_source
from runtime.configbase import read_optional_secret, read_secret
from runtime.httpserver import HttpServer
from runtime.logs import get_logger
from runtime.metrics import new_registry
from runtime.security.audit import Audit
from runtime.security.listener import register_metrics, secure_listener
from runtime.security.users import UserStore
from runtime.supervisor import Component, Progress, Supervisor
from runtime.version import __version__
from wire.messages import VERSION, Alarm, Event, Message
from wire.model_manifest import ManifestError, load_public_key, version_tuple

log = get_logger("edge.daemon")


def alarm_message(gateway: str, pseudonyms: Pseudonymizer, u: AlarmUpdate) -> Alarm:
    """The uplink message of one alarm state change (the patient as a pseudonym)."""
    a = u.alarm
    return Alarm(
        v=VERSION, gw=gateway, seq=0, alarm_id=a.alarm_id, bed=a.bed,
        patient=pseudonyms.pseudonym(a.patient), t=int(a.t_wall * 1e9), state=u.event.value,  # type: ignore[arg-type]
        priority=a.priority.label, kind=a.kind.value, source=a.source,  # type: ignore[arg-type]
        condition=a.condition, score=a.score, value=a.value, param=a.param, by=u.by or a.acked_by,
        latency_ms=a.latency_ms(), changed=int((a.t_wall + (u.at_mono - a.recv_mono)) * 1e9),
    )


class EdgeDaemon:
    def __init__(self, cfg: EdgeConfig, config_dir: Path) -> None:
        self.cfg = cfg
        gw = cfg.gateway.id
        self.gateway = gw
        self.pseudonyms = Pseudonymizer(read_secret(cfg.gateway.pseudonym_key, config_dir))
        self.progress = Progress()
        self.registry, self.collector = new_registry()
        self.outbox: Outbox | None = None
        self.uplink: Uplink | LinkSet | None = None
        self.budget: Budget | None = None
        if cfg.uplink is not None:
            self.outbox = open_outbox(cfg.uplink, gw, cfg.gateway.state_dir)
            u = cfg.uplink
            software = f"pulsegate {__version__}"
            if u.links or u.budget is not None:  # handover and/or a cellular budget (an ambulance)
                if u.budget is not None:
                    self.budget = Budget(u.budget, state_path=cfg.gateway.state_dir / "budget.json")
                # a budget without [[uplink.links]]: the one [uplink] broker is the metered (cellular) link
                links = u.links or [LinkConfig(name="default", host=u.host, port=u.port, metered=True)]
                self.uplink = LinkSet.from_config(u, links, self.outbox, gw, config_dir, software,
                                                  cfg.gateway.site, self.budget)
            else:
                self.uplink = Uplink.from_config(u, self.outbox, gw, config_dir, software=software,
                                                 site=cfg.gateway.site)
        self.summarizer = Summarizer(
            gw, self.publish, self.pseudonyms, cfg.summaries.interval_s, cfg.summaries.raw,
            patients={b.id: b.patient for b in cfg.beds},
        )
        self.model_versions: dict[str, str] = {}
        self.local_alarms: LocalAlarmPublisher | None = None
        if cfg.local_bus.enabled:
            self.local_alarms = LocalAlarmPublisher(cfg.local_bus.host, cfg.local_bus.port, gw,
                                                    username=cfg.local_bus.username,
                                                    password=read_optional_secret(cfg.local_bus.password_file,
                                                                                  config_dir),
                                                    on_delivered=self._on_delivered)
        self.alarm_latency = Histogram(
            "pulsegate_alarm_latency_seconds", "Sample received -> alarm published on the local bus (PUBACK)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry,
        )
        self.shadow = self._anomaly_model()
        self.clinical = ClinicalStage(
            cfg.clinical, cfg.beds, on_alarm=self._on_alarm, on_audit=self._on_audit, scorer=self.shadow
        )
        self.slots: ModelSlots | None = None
        if cfg.uplink is not None and self.uplink is not None:
            u = cfg.uplink
            self.uplink.models = self.model_versions
            self.slots = ModelSlots(
                cfg.gateway.state_dir, gw, cfg.gateway.site, self._trusted_keys(), self.publish,
                host=u.links[0].host if u.links else u.host, port=u.links[0].port if u.links else u.port,
                username=u.username, password=self._uplink_password(),
                tls=(u.tls_ca_file, u.tls_cert_file, u.tls_key_file), shadow=self.shadow,
                on_promote=lambda: self.clinical.set_scorer(self.shadow), versions=self.model_versions,
            )
        # every listener: TLS, login or token, roles, bounded input, audit (runtime/security, docs/security.md)
        self.audit = Audit()
        self.ward = cfg.auth.ward or cfg.gateway.site
        users_file = cfg.auth.users_file or cfg.gateway.state_dir / "users.json"
        users = None if cfg.auth.insecure_no_auth else UserStore(users_file)
        rules = NURSE_RULES + (CREW_RULES if cfg.ambulance is not None else ())  # the ambulance's crew page
        self.http_security = secure_listener("nurse", cfg.http.listen, cfg.auth, cfg.http.tls, rules,
                                             ward=self.ward, base=config_dir, audit=self.audit, users=users)
        self.listeners = [self.http_security]
        self.feedback = Feedback(gw, self.clinical, self.pseudonyms, self.publish, self._patient_of)
        self.local_actions: LocalActions | None = None
        if cfg.local_bus.enabled:  # the local MQTT alarm API: acknowledge with a verdict, clinical events
            lb = cfg.local_bus
            self.local_actions = LocalActions(self.feedback, lb.host, lb.port, lb.username,
                                              read_optional_secret(lb.password_file, config_dir))
        self.nurse = NursePage(
            self.clinical.snapshot, self.clinical.acknowledge, self.cloud_up, self.clinical.silence,
            title=f"PulseGate {gw}", max_silence_s=cfg.clinical.max_silence_s, security=self.http_security,
            ward=self.ward, trends_provider=lambda bed, hours: self.clinical.trends(bed, hours),
            link_info=self.cloud_link, feedback=self.feedback,
        )
        # local delivery first (nurse call, page), then the uplink (on_alarm)
        self.clinical.sinks[:0] = [s.offer for s in (self.local_alarms, self.nurse) if s is not None]
        self.summarizer.scores = self.clinical.scores
        self.pipeline = Pipeline([self.clinical, self.summarizer], self.progress)
        self.sources: list[Component] = [
            make_source(d, self.pipeline.feed, self.pipeline.feed_event) for d in cfg.devices
        ]
        self.video: list[Component] = []
        self._findings_present: dict[str, bool] = {}
        if cfg.video is not None:
            from edge.video.liveview import LIVE_RULES
            from edge.video.service import video_components

            live = None
            if cfg.video.enabled and cfg.video.live_port is not None:
                live = secure_listener("live", cfg.video.live_host, cfg.auth, cfg.http.tls, LIVE_RULES,
                                       base=config_dir, audit=self.audit, users=users)
                self.listeners.append(live)
            self.video = video_components(self._video_config(cfg.video), self._on_finding, self.progress,
                                          list(cfg.models.trusted_keys), security=live)
        self.ambulance: AmbulanceService | None = None
        if cfg.ambulance is not None:
            self._ambulance(cfg, config_dir)
        self.app = web.Application()
        self.nurse.setup(self.app)
        if self.ambulance is not None:
            from edge.crew_page.app import CrewPage

            CrewPage(self.ambulance.sender, self.ambulance.status, title=f"PulseGate {gw} crew",
                     security=self.http_security, ward=self.ward).setup(self.app)
        self.http = HttpServer(self.app, cfg.http.listen, cfg.http.port, self.registry, self.health,
                               security=self.http_security, port_key="http.port in the gateway config")
        self._metrics()

    def _ambulance(self, cfg: EdgeConfig, config_dir: Path) -> None:
        """GPS, budget governor, pre-arrival notices and the ED's acknowledgements (edge/ambulance.py)."""
        from firmware_bridge.gps_source import GpsSource

        assert cfg.ambulance is not None
        links = self.uplink if isinstance(self.uplink, LinkSet) else None
        lb = cfg.local_bus
        local = (lb.host, lb.port, lb.username, read_optional_secret(lb.password_file, config_dir)) \
            if lb.enabled else None
        amb = self.ambulance = AmbulanceService(
            cfg.ambulance, self.gateway, cfg.gateway.site, self.publish, self.clinical.snapshot,
            lambda bed: self.pseudonyms.pseudonym(self.summarizer.patients.get(bed, "")), self.summarizer, links,
            self.budget, local,
        )
        self.summarizer.position = amb.tracker.position
        if cfg.ambulance.gps is not None:
            self.sources.append(GpsSource(cfg.ambulance.gps, amb.tracker.on_fix))

    def _patient_of(self, bed: str) -> str:
        b = self.clinical.beds.get(bed)
        return self.summarizer.patients.get(bed, "") or (b.st.patient if b is not None else "")

    def _uplink_password(self) -> str | None:
        up = self.uplink
        if isinstance(up, LinkSet):
            return up.links[0][2].password
        return None if up is None else up.password

    def _anomaly_model(self) -> ShadowScorer | None:
        """The active vitals-anomaly model, in a ShadowScorer so that new versions can be tried beside it.

        The newer of the configured model and the one last promoted by the model slots wins; both must
        verify against the trusted keys.
        """
        a = self.cfg.clinical.anomaly
        keys = a.trusted_keys or list(self.cfg.models.trusted_keys)
        candidates = []
        if a.model_dir is not None:
            candidates.append(a.model_dir)
        promoted = newest_verified(self.cfg.gateway.state_dir / "models" / ANOMALY_MODEL,
                                   [load_public_key(k) for k in keys])
        if promoted is not None:
            candidates.append(promoted)
        if not candidates:
            return None
        if not keys:
            raise ValueError(
                "clinical.anomaly.model_dir is set but no trusted key: a gateway never runs an unsigned model"
            )
        models = [VitalsAnomalyModel(d, a.num_threads, keys) for d in candidates]
        best = max(models, key=lambda m: version_tuple(m.version))
        self.model_versions[ANOMALY_MODEL] = best.version
        return ShadowScorer(best)

    def _video_config(self, video: VideoConfig) -> VideoConfig:
        """Use the endoscopy model the model slots installed when it is newer than the configured one."""
        from clinical.endoscopy.segmodel import MODEL_NAME as VIDEO_MODEL
        from wire.model_manifest import resolve_model_dir

        keys = [load_public_key(k) for k in (video.trusted_keys or self.cfg.models.trusted_keys)]
        installed = newest_verified(self.cfg.gateway.state_dir / "models" / VIDEO_MODEL, keys) if keys else None
        if installed is None:
            return video
        try:
            configured = version_tuple(resolve_model_dir(video.models_dir, VIDEO_MODEL, video.model_version).name)
        except ManifestError:
            configured = ()
        if version_tuple(installed.name) <= configured:
            return video
        self.model_versions[VIDEO_MODEL] = installed.name
        return video.model_copy(update={"models_dir": installed.parent.parent, "model_version": installed.name})

    def _trusted_keys(self) -> list[Path]:
        return list(self.cfg.clinical.anomaly.trusted_keys or self.cfg.models.trusted_keys)

    def cloud_up(self) -> bool:
        return self.uplink is not None and self.uplink.connected

    def cloud_link(self) -> dict[str, object]:
        """For the nurse page's link indicator: whether an uplink is configured, connected, its backlog."""
        return {"configured": self.uplink is not None, "connected": self.cloud_up(),
                "backlog": self.outbox.backlog() if self.outbox is not None else None}

    # -- uplink ------------------------------------------------------------------------------------------
    def publish(self, stream: str, msg: Message) -> None:
        """Hand a message to the outbox (non-blocking); dropped when no uplink is configured."""
        if self.outbox is not None:
            self.outbox.append(stream, msg)

    def _on_alarm(self, u: AlarmUpdate) -> None:
        self.publish("alarms", alarm_message(self.gateway, self.pseudonyms, u))

    def _on_delivered(self, d: Delivered) -> None:
        a = d.update.alarm
        if d.update.event.value == "raised" and not d.update.detail.get("resumed"):  # not a silence expiring
            self.alarm_latency.observe(max(0.0, d.delivered_mono - a.recv_mono))

    def _on_audit(self, r: AuditRecord) -> None:
        self.publish(  # the manager logs the audit record itself
            "events",
            Event(v=VERSION, gw=self.gateway, seq=0, t=int(r.at_wall * 1e9), kind="alarm_" + r.action, bed=r.bed,
                  detail={"alarm_id": r.alarm_id, "condition": r.condition, "by": r.by, "duration_s": r.duration_s}),
        )

    def _on_finding(self, finding: object) -> None:
        """Endoscopy findings: every one to the bulk lane (no pixels); raise/clear also as events."""
        from clinical.endoscopy.postprocess import PolypFinding

        if not isinstance(finding, PolypFinding):
            return
        self.publish("bulk", finding.to_message(self.gateway, 0))
        if finding.present != self._findings_present.get(finding.room, False):
            self._findings_present[finding.room] = finding.present
            kind = "polyp_finding_raised" if finding.present else "polyp_finding_cleared"
            log.info(kind, room=finding.room, confidence=round(finding.confidence, 3), area=round(finding.area, 4))
            self.publish("events", Event(v=VERSION, gw=self.gateway, seq=0, t=finding.t_ns, kind=kind,
                                         detail={"room": finding.room, "confidence": round(finding.confidence, 4),
                                                 "area": round(finding.area, 5)}))

    # -- health and metrics ------------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        """Readiness (/readyz, /healthz): the pipeline makes progress and, when enabled, the local alarm
        bus (nurse call, pagers) is connected. The cloud link is reported but never makes the gateway
        unready: local alarms work without it (the outbox keeps the backlog)."""
        stalled = time.monotonic() - self.progress.last
        pipeline_ok = stalled < 5.0
        bus_ok = self.local_alarms is None or self.local_alarms.connected
        backlog = self.outbox.backlog() if self.outbox else 0
        uplink_up = bool(self.uplink and self.uplink.connected)
        return {
            "ok": pipeline_ok and bus_ok,
            "gateway": self.gateway,
            "pipeline_stalled_s": round(stalled, 2),
            "uplink_connected": uplink_up,
            "backlog": backlog,
            **({"ambulance": self.ambulance.status()} if self.ambulance is not None else {}),
            "components": {
                "pipeline": {"ok": pipeline_ok, "stalled_s": round(stalled, 2)},
                "local_bus": {"ok": bus_ok, "enabled": self.local_alarms is not None},
                "uplink": {"ok": uplink_up or self.uplink is None, "essential": False,
                           "configured": self.uplink is not None, "backlog": backlog},
            },
        }

    def _metrics(self) -> None:
        c = self.collector
        register_metrics(c, self.audit, *self.listeners)
        c.counter("pulsegate_samples", "Samples fed into the pipeline", lambda: self.pipeline.samples)
        c.counter("pulsegate_device_events", "Technical device events", lambda: self.pipeline.events)
        c.counter("pulsegate_summaries", "Summary messages produced", lambda: self.summarizer.summaries_sent)
        c.gauge("pulsegate_beds", "Beds known to the clinical stage", lambda: len(self.clinical.beds))
        c.counter("pulsegate_alarms_raised", "Alarms raised", lambda: self.clinical.stats()["alarms_raised"])
        c.counter("pulsegate_anomaly_batches", "Batched anomaly-model invokes",
                  lambda: self.clinical.stats()["anomaly_batches"])
        c.counter("pulsegate_alarm_sink_errors", "Alarm sinks that raised",
                  lambda: self.clinical.stats()["sink_errors"])
        c.gauge("pulsegate_alarms_open", "Open alarms by priority", self._open_alarms, labels=("priority",))
        if self.local_alarms is not None:
            la = self.local_alarms
            c.counter("pulsegate_local_alarms_published", "Alarm updates on the local bus", lambda: la.published)
            c.counter("pulsegate_local_alarms_dropped", "Alarm updates dropped (local queue full)", lambda: la.dropped)
        fb = self.feedback
        c.counter("pulsegate_verdicts_sent", "Nurse verdicts accepted and sent up", lambda: fb.verdicts_sent)
        c.counter("pulsegate_verdicts_rejected", "Verdicts refused (free text, identifier, unknown code); the "
                  "acknowledgement still happened",
                  lambda: {(k,): float(fb.verdicts_rejected[k]) for k in REJECT_REASONS}, labels=("reason",))
        c.counter("pulsegate_clinical_events", "Clinical events recorded and sent up", lambda: fb.events_sent)
        c.counter("pulsegate_clinical_events_rejected", "Clinical events refused", lambda: fb.events_rejected)
        if self.uplink is not None:
            uplink_metrics(c, self.uplink)
        if self.ambulance is not None:
            ambulance_metrics(c, self.ambulance, self.budget)
        if self.slots is not None:
            sl = self.slots
            c.counter("pulsegate_model_offers", "Model offers received", lambda: sl.received)
            c.counter("pulsegate_model_offers_rejected", "Offers or shadow candidates rejected", lambda: sl.rejected)
            c.counter("pulsegate_rollout_commands", "Signed rollout commands received", lambda: sl.commands)
            c.counter("pulsegate_rollout_commands_refused", "Rollout commands refused (signature, form)",
                      lambda: sl.commands_refused)

    def _open_alarms(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {("high",): 0.0, ("medium",): 0.0, ("low",): 0.0}
        for a in self.clinical.manager.open_alarms():
            key = (a.priority.label,)
            counts[key] = counts.get(key, 0.0) + 1
        return counts

    def components(self) -> list[Component]:
        sinks: list[Component] = [self.http]
        if self.local_alarms is not None:
            sinks.append(self.local_alarms)
        if self.uplink is not None:
            sinks.append(self.uplink)
        if self.slots is not None:
            sinks.append(self.slots)
        pipeline: list[Component] = [self.pipeline] if self.ambulance is None else [self.pipeline, self.ambulance]
        if self.local_actions is not None:
            pipeline.append(self.local_actions)
        return [*sinks, *pipeline, *self.sources, *self.video]

    async def run(self, stop: asyncio.Event | None = None, install_signals: bool = True) -> int:
        sup = Supervisor(self.components(), progress=self.progress)
        try:
            return await sup.run(stop, install_signals)
        finally:
            if self.outbox is not None:
                self.outbox.close()
