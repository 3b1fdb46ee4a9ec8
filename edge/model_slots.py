"""Model slots: receive signed models from the cloud, verify, shadow, promote or roll back.

A gateway never runs an unsigned model, a tampered one, or one older than (or
as old as) the one it runs. The flow for ``vitals-anomaly``:

1. the cloud publishes a retained :class:`wire.model_offer.ModelOffer` on
   ``pg/v1/{site}/{gateway}/models``;
2. :class:`ModelSlots` writes it to ``{state_dir}/models/{name}/{version}.staging``,
   verifies signature and hash with the gateway's trusted keys, checks that
   name and version match the offer and that the version is newer than the
   active one, then renames it to ``{version}``;
3. the model is loaded through the one LiteRT wrapper and run in shadow
   (edge/shadow.py) beside the active model on the same batches;
4. promoted: ``ACTIVE`` in the slot folder names it, and the next start loads
   it; rejected: its folder is removed. Every step is an event on the uplink.

Offers for models this gateway does not run in-process (e.g. endoscopy-seg)
are verified and stored, and reported as installed; they are used at the next
start of the video pipeline.

Staged rollouts (cloud/rollout.py): an offer that names a ``rollout`` is shadowed with ``hold`` (the
gateway does not promote it by itself); every ``report_every_s`` a :class:`wire.messages.ShadowReport`
goes on the status stream, and the cloud's signed :class:`wire.rollout.RolloutCommand` on
``pg/v1/{site}/{gateway}/down/model_cmd`` promotes it or rolls it back. A command whose signature does
not verify with the gateway's trusted keys is refused and counted; a rollback is recorded in
``REJECTED`` even when the offer never arrived here, so the version is refused later too.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clinical.anomaly import MODEL_NAME, VitalsAnomalyModel
from clinical.litert import ModelError
from edge.shadow import ShadowResult, ShadowScorer
from runtime.logs import get_logger
from runtime.supervisor import Tier
from wire import topics
from wire.messages import VERSION, Event, Message, ShadowReport
from wire.model_manifest import ManifestError, load_public_key, verify_model_dir, version_tuple
from wire.model_offer import ModelOffer, OfferError, decode_offer, write_offer
from wire.rollout import RolloutCommand, RolloutError, verify_command

log = get_logger("edge.model_slots")
Publish = Callable[[str, Message], None]


def newest_verified(slot: Path, keys: Sequence[Ed25519PublicKey]) -> Path | None:
    """The slot's ACTIVE version if it still verifies, else None."""
    active = slot / "ACTIVE"
    if not active.exists():
        return None
    model_dir = slot / active.read_text().strip()
    try:
        verify_model_dir(model_dir, list(keys))
    except ManifestError as exc:
        log.error("active_model_invalid", model=slot.name, error=str(exc))
        return None
    return model_dir


class ModelSlots:
    name = "model-slots"
    tier = Tier.SINK
    essential = False  # see runtime/supervisor.py

    def __init__(
        self,
        state_dir: Path,
        gateway: str,
        site: str,
        trusted_keys: Sequence[Path],
        publish: Publish,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        tls: tuple[str | None, str | None, str | None] = (None, None, None),
        shadow: ShadowScorer | None = None,
        on_promote: Callable[[], None] | None = None,
        versions: dict[str, str] | None = None,
        num_threads: int = 1,
        report_every_s: float = 10.0,
    ) -> None:
        self.root = state_dir / "models"
        self.gateway, self.site = gateway, site
        self.key_paths = [Path(k) for k in trusted_keys]
        if not self.key_paths:
            raise ValueError("model slots need trusted keys: a gateway never runs an unsigned model")
        self.keys = [load_public_key(k) for k in self.key_paths]
        self.publish = publish
        self.host, self.port, self.username, self.password, self.tls = host, port, username, password, tls
        self.shadow = shadow
        if shadow is not None:
            shadow.on_decision = self._on_decision
        self.on_promote = on_promote
        self.versions = versions if versions is not None else {}  # name -> active version (shown in status)
        for active in self.root.glob("*/ACTIVE"):  # what earlier runs installed or promoted: never go back below it
            with contextlib.suppress(OSError, ManifestError):
                v = active.read_text().strip()
                cur = self.versions.get(active.parent.name)
                if cur is None or version_tuple(v) > version_tuple(cur):
                    self.versions[active.parent.name] = v
        self.num_threads = num_threads
        self.received = 0
        self.rejected = 0
        self.installed = 0
        self.report_every_s = report_every_s
        self.rollout = ""  # the staged rollout whose candidate is in shadow here
        self.commands = 0
        self.commands_refused = 0
        self._pending_promote: set[tuple[str, str]] = set()
        self._stop = asyncio.Event()

    # -- offers --------------------------------------------------------------------------------------------
    async def handle(self, payload: bytes) -> str:
        """Process one offer; returns what happened (for logs, events and tests). Never raises.

        Disk writes, verification and model loading run in a worker thread; the
        shadow hand-over and the events happen on the event loop.
        """
        self.received += 1
        offer: ModelOffer | None = None
        try:
            offer = decode_offer(payload)
            return await self._install(offer)
        except (OfferError, ManifestError, ModelError, OSError, ValueError) as exc:
            self.rejected += 1
            log.warning("model_rejected", error=str(exc)[:300])
            self._event("model_rejected", {"error": str(exc)[:300]})
            if offer is not None and offer.rollout and offer.name == MODEL_NAME:
                self._report(offer.rollout, offer.version, "rejected", str(exc)[:300])
            return "rejected"

    async def _install(self, offer: ModelOffer) -> str:
        topics.check_id("model", offer.name)
        new = version_tuple(offer.version)
        if offer.version in self._rejected(offer.name):
            raise ManifestError(f"{offer.name} {offer.version} was rolled back here before")
        current = self.versions.get(offer.name)
        if offer.name == MODEL_NAME and self.shadow is not None:  # what the stage really runs counts too
            running = self.shadow.active.version
            if current is None or version_tuple(running) > version_tuple(current):
                current = running
        if current is not None and new <= version_tuple(current):
            raise ManifestError(f"{offer.name} {offer.version} is not newer than the active {current}")
        if self.shadow is not None and self.shadow.candidate is not None and offer.name == MODEL_NAME:
            if new <= version_tuple(self.shadow.candidate.version):
                raise ManifestError(f"{offer.name} {offer.version} is not newer than the one in shadow")
        slot = self.root / offer.name
        final = await asyncio.to_thread(self._store, offer, slot)
        if offer.name == MODEL_NAME and self.shadow is not None:
            try:  # verified again as it is loaded: nothing on disk is trusted between check and use
                candidate = await asyncio.to_thread(VitalsAnomalyModel, final, self.num_threads, self.key_paths)
            except ModelError as exc:  # signed, but not a model this gateway can run (e.g. another feature spec)
                self.rollout = offer.rollout  # reported as rolled back in the rollout that offered it
                self._record_decision(ShadowResult(offer.version, False, 0, 0, 0.0, 0, f"load: {exc}"[:300]))
                return "rolled_back"
            except ManifestError:
                shutil.rmtree(final, ignore_errors=True)
                raise
            self.shadow.begin(candidate, hold=bool(offer.rollout))
            self.rollout = offer.rollout
            log.info("model_shadow", model=offer.name, version=offer.version, rollout=offer.rollout or None)
            self._event("model_shadow", {"model": offer.name, "version": offer.version, "rollout": offer.rollout})
            if offer.rollout:
                self._report(offer.rollout, offer.version, "shadow")
                if (offer.rollout, offer.version) in self._pending_promote:  # the promote came first
                    self.shadow.promote("promoted by the cloud before the offer arrived here")
            return "shadow"
        (slot / "ACTIVE").write_text(offer.version)
        self.versions[offer.name] = offer.version
        self.installed += 1
        log.info("model_installed", model=offer.name, version=offer.version)
        self._event("model_installed", {"model": offer.name, "version": offer.version})
        return "installed"

    def _store(self, offer: ModelOffer, slot: Path) -> Path:
        staging = slot / f"{offer.version}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            write_offer(offer, staging)
            manifest = verify_model_dir(staging, self.keys)
            if manifest.name != offer.name or manifest.version != offer.version:
                raise ManifestError(f"offer says {offer.name} {offer.version}, signed manifest {manifest.name} "
                                    f"{manifest.version}")
            final = slot / offer.version
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            return final
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _rejected(self, name: str) -> set[str]:
        try:
            return set((self.root / name / "REJECTED").read_text().split())
        except OSError:
            return set()

    def _on_decision(self, r: ShadowResult) -> None:
        """Called from the scorer on the pipeline's tick: must never raise into it."""
        try:
            self._record_decision(r)
        except OSError as exc:
            log.error("model_decision_not_persisted", model=MODEL_NAME, version=r.version, error=str(exc))

    def _record_decision(self, r: ShadowResult) -> None:
        if self.rollout:
            rollout, self.rollout = self.rollout, ""
            self._report(rollout, r.version, "promoted" if r.promoted else "rolled_back", r.reason)
        slot = self.root / MODEL_NAME
        detail: dict[str, str | int | float | bool | None] = {
                  "model": MODEL_NAME, "version": r.version, "rounds": r.rounds, "beds": r.beds,
                  "agreement": round(r.agreement, 4), "reason": r.reason}
        if r.promoted:
            (slot / "ACTIVE").write_text(r.version)
            self.versions[MODEL_NAME] = r.version
            self.installed += 1
            log.info("model_promoted", **detail)
            self._event("model_promoted", detail)
            if self.on_promote is not None:
                self.on_promote()
        else:
            shutil.rmtree(slot / r.version, ignore_errors=True)
            self._reject_version(r.version)
            self.rejected += 1
            log.warning("model_rolled_back", **detail)
            self._event("model_rolled_back", detail)

    def _reject_version(self, version: str) -> None:
        slot = self.root / MODEL_NAME
        if version in self._rejected(MODEL_NAME):
            return
        slot.mkdir(parents=True, exist_ok=True)
        with (slot / "REJECTED").open("a") as f:  # the retained offer comes back on every reconnect
            f.write(version + "\n")

    # -- staged rollouts -----------------------------------------------------------------------------------
    def _report(self, rollout: str, version: str, state: str, reason: str = "") -> None:
        sh = self.shadow
        fig = None
        if sh is not None:
            fig = sh.figures() if state == "shadow" else sh.last_figures
            if fig is not None and fig.version != version:
                fig = None
        active = self.versions.get(MODEL_NAME, "") if sh is None else sh.active.version
        msg = ShadowReport(v=VERSION, gw=self.gateway, seq=0, t=time.time_ns(), model=MODEL_NAME, version=version,
                           active=active, rollout=rollout, state=state, reason=reason[:300])  # type: ignore[arg-type]
        if fig is not None:
            msg.rounds, msg.bed_windows, msg.agreement = fig.rounds, fig.bed_windows, round(fig.agreement, 4)
            msg.cand_alarms, msg.active_alarms, msg.errors, msg.invalid = (fig.cand_alarms, fig.active_alarms,
                                                                           fig.errors, fig.invalid)
            msg.invoke_ms_p50, msg.invoke_ms_max = round(fig.invoke_ms_p50, 3), round(fig.invoke_ms_max, 3)
            msg.cand_beds, msg.active_beds, msg.both_beds = fig.cand_beds, fig.active_beds, fig.both_beds
        self.publish("status", msg)

    def handle_command(self, payload: bytes) -> str:
        """A signed promote/rollback from the cloud; returns what happened. Never raises."""
        self.commands += 1
        try:
            c = verify_command(payload, self.keys)
            topics.check_id("rollout", c.rollout)
            version_tuple(c.version)
        except (RolloutError, ValueError) as exc:
            self.commands_refused += 1
            log.warning("rollout_command_refused", error=str(exc)[:200])
            self._event("rollout_command_refused", {"error": str(exc)[:200]})
            return "refused"
        if c.model != MODEL_NAME:
            return "ignored"
        return self._command(c)

    def _command(self, c: RolloutCommand) -> str:
        sh = self.shadow
        in_shadow = sh is not None and sh.candidate is not None and sh.candidate.version == c.version \
            and self.rollout == c.rollout
        if c.action == "rollback":
            if c.version == self.versions.get(MODEL_NAME):
                log.warning("rollback_of_active_ignored", version=c.version, rollout=c.rollout)
                return "ignored"
            if in_shadow and sh is not None:
                sh.reject(f"rolled back by the cloud: {c.reason}"[:300])
            else:
                self._reject_version(c.version)
                self._event("model_rolled_back", {"model": MODEL_NAME, "version": c.version, "rollout": c.rollout,
                                                  "reason": f"rolled back by the cloud: {c.reason}"[:300]})
            return "rolled_back"
        if in_shadow and sh is not None:
            sh.promote(f"promoted by the cloud: {c.reason}"[:300])
            return "promoted"
        cur = self.versions.get(MODEL_NAME)
        if c.version not in self._rejected(MODEL_NAME) and (cur is None or version_tuple(c.version) >
                                                           version_tuple(cur)):
            self._pending_promote.add((c.rollout, c.version))
            return "pending"
        return "ignored"

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(self.report_every_s)
            sh = self.shadow
            if self.rollout and sh is not None and sh.candidate is not None:
                self._report(self.rollout, sh.candidate.version, "shadow")

    def _event(self, kind: str, detail: dict[str, str | int | float | bool | None]) -> None:
        self.publish("events", Event(v=VERSION, gw=self.gateway, seq=0, t=time.time_ns(), kind=kind, detail=detail))

    # -- component -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stop.clear()

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        backoff = 0.5
        topic = topics.models(self.site, self.gateway)
        reporter = asyncio.ensure_future(self._reporter())
        try:
            await self._serve(topic, backoff)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    async def _serve(self, topic: str, backoff: float) -> None:
        import aiomqtt

        while not self._stop.is_set():
            try:
                ca, cert, key = self.tls
                tls_params = aiomqtt.TLSParameters(ca_certs=ca, certfile=cert, keyfile=key) if ca or cert else None
                async with aiomqtt.Client(self.host, self.port, identifier=f"pg-{self.gateway}-models",
                                          username=self.username, password=self.password, tls_params=tls_params,
                                          timeout=10) as client:
                    await client.subscribe(topic, qos=1)
                    await client.subscribe(topics.model_cmd(self.site, self.gateway), qos=1)
                    backoff = 0.5
                    receive = asyncio.ensure_future(self._receive(client))
                    stop = asyncio.ensure_future(self._stop.wait())
                    await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                    for t in (receive, stop):
                        t.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await t
            except aiomqtt.MqttError as exc:
                log.warning("models_link_down", error=str(exc)[:200], retry_in_s=backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)

    async def _receive(self, client: object) -> None:
        async for message in client.messages:  # type: ignore[attr-defined]
            payload = message.payload
            if not isinstance(payload, bytes | bytearray) or not payload:
                continue
            if str(message.topic).endswith("/" + topics.DOWNLINK_MODEL_CMD):
                self.handle_command(bytes(payload))
            else:
                await self.handle(bytes(payload))
