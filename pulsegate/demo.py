"""``pulsegate demo``: a ward gateway and the cloud, on one machine.

Starts, with data under one folder: a mosquitto as the cloud broker, a
mosquitto as the gateway's local bus, InfluxDB 1.x; device emulators on real
pseudo-terminals; the cloud daemon and the edge daemon as real processes with
their own TOML files (written into the folder, so they can be read and
reused). Runs until Ctrl-C (SIGINT: figures printed), SIGTERM (stops at once)
or ``--duration`` seconds; ``--json`` then prints one JSON object with what was
read, uplinked and stored (the last counted by querying InfluxDB).

Either signal stops everything the demo started (edge and cloud daemons,
both mosquittos, influxd, the emulators) and leaves no process and no port.
A port already taken is one line naming it and the flag or key that sets it.

Secure like a real install (docs/security.md): one demo account per role with a
random password, printed at start (the login of the nurse page, the live view
and the cloud dashboard); both brokers take no anonymous client (passwords,
examples/mosquitto ACLs); InfluxDB has authentication on. The temporary folder
(keys, passwords, data) is removed at exit; ``--state-dir`` keeps it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.localservices import Influxd, Mosquitto, free_port, stop_process
from runtime.ports import check_free

REPO = Path(__file__).resolve().parents[1]
DEMO_BEDS = (  # bed, driver, emulator protocol, scenario
    ("bed-01", "philips_mib", "philips", "stable"),
    ("bed-02", "masimo", "masimo", "desaturation"),
    ("bed-03", "philips_mib", "philips", "deterioration"),
    ("bed-04", "masimo", "masimo", "probe_off"),
    ("bed-05", "nonin_oem3", "nonin", "artifact"),
    ("bed-06", "philips_mib", "philips", "cable_pull"),
)
DATABASE = "pulsegate"


class Stopped(Exception):
    """SIGTERM: stop everything now (the ExitStack unwinds: daemons, brokers, influxd, emulators)."""


def _on_sigterm(signum: int, frame: object) -> None:
    _stopping()
    raise Stopped()


def _stopping() -> None:
    """Once stopping, further SIGTERM/SIGINT are ignored: the cleanup itself is bounded (30 s a daemon)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class DemoResult:
    samples_read: int
    messages_uplinked: int
    points_in_influxdb: int
    alarms_in_influxdb: int
    beds_in_influxdb: list[str]
    duration_s: float
    state_dir: str
    state_removed: bool = False
    ambulance: dict[str, Any] | None = None
    fhir: dict[str, Any] | None = None  # --fhir-out: what the export wrote

    def as_dict(self) -> dict[str, Any]:
        out = self.__dict__.copy()
        for optional in ("fhir", "ambulance"):
            if out[optional] is None:
                del out[optional]
        return out


def fhir_export(influx_url: str, out: Path, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """The FHIR R4 transaction Bundle of everything the demo's InfluxDB holds (``pulsegate fhir export``)."""
    import asyncio

    from cloud.fhir.config import FhirConfig
    from cloud.fhir.export import run_export
    from cloud.influx import InfluxWriter

    async def export() -> dict[str, Any]:
        influx = InfluxWriter(influx_url, DATABASE, *(auth or (None, None)))
        try:
            return await run_export(influx, FhirConfig(), "1d", out=out)
        finally:
            await influx.close()

    return asyncio.run(export())


def _toml_str(v: object) -> str:
    return json.dumps(str(v))


HL7_BED, WEARABLE_BED, WEARABLE_MAC = "bed-07", "bed-08", "C4:7C:8D:6A:12:34"


DEMO_ROLES: tuple[tuple[str, str, list[str], list[str]], ...] = (  # user name, role, wards, sites
    ("nurse", "nurse", ["demo-hospital"], []),
    ("charge", "charge_nurse", ["*"], []),
    ("viewer", "viewer", [], ["*"]),
    ("clinician", "clinician", [], []),
    ("admin", "admin", ["*"], ["*"]),
    ("nurse-call", "service", ["*"], []),
)
LOCAL_BUS_ACL = REPO / "examples" / "mosquitto" / "local-bus.acl"
CLOUD_ACL = REPO / "examples" / "mosquitto" / "pulsegate.acl"


@dataclass
class DemoSecrets:
    """Everything the demo makes up: broker, InfluxDB and staff passwords, each in a 0600 file of ``creds``."""

    creds: Path
    passwords: dict[str, str]

    @classmethod
    def make(cls, creds: Path) -> DemoSecrets:
        creds.mkdir(parents=True, exist_ok=True)
        creds.chmod(0o700)
        names = ("mqtt-gateway", "mqtt-ingest", "mqtt-local-gateway", "mqtt-ble-bridge", "mqtt-nurse-call",
                 "influx-admin")
        out = cls(creds, {n: secrets.token_urlsafe(18) for n in names})
        for name, pw in out.passwords.items():
            out.file(name).write_text(pw)
            out.file(name).chmod(0o600)
        return out

    def file(self, name: str) -> Path:
        return self.creds / name


def make_demo_users(path: Path) -> list[tuple[str, str, str]]:
    """One account per role (random passwords; the service account gets an API token instead)."""
    from runtime.security.users import UserStore

    store = UserStore(path)
    out = []
    for name, role, wards, sites in DEMO_ROLES:
        if name in store.users:
            store.remove(name)
        password = secrets.token_urlsafe(12)
        store.add(name, password, [role], wards, sites)
        out.append((name, role, store.new_token(name) if role == "service" else password))
    store.save()
    return out


def video_available() -> bool:
    return (REPO / "examples" / "video" / "kvasir-demo.mp4").exists() and (REPO / "models" / "endoscopy-seg").is_dir()


def write_configs(work: Path, cloud_port: int, local_port: int, influx_url: str, http_port: int, api_port: int,
                  ptys: dict[str, str], live_port: int | None, hl7_port: int, sec: DemoSecrets | None = None
                  ) -> tuple[Path, Path]:
    """The edge and cloud TOML files; ``live_port`` None: no endoscopy room."""
    creds = work / "credentials"
    sec = sec or DemoSecrets.make(creds)
    key = creds / "pseudonym-key"
    if not key.exists():
        key.write_text(secrets.token_hex(32))
        key.chmod(0o600)
    users = work / "users.json"
    all_beds = [bed for bed, *_rest in DEMO_BEDS] + [HL7_BED, WEARABLE_BED]
    beds = "".join(f'\n[[beds]]\nid = "{bed}"\npatient = "DEMO-{i:04d}"\n' for i, bed in enumerate(all_beds, 1))
    devices = "".join(
        f'\n[[devices]]\ndriver = "{driver}"\nid = "{bed}-{proto}"\nbed = "{bed}"\nport = {_toml_str(ptys[bed])}\n'
        for bed, driver, proto, _ in DEMO_BEDS
    )
    devices += (
        f'\n[[devices]]\ndriver = "hl7_mllp"\nid = "central-station"\nbed = "{HL7_BED}"\nhost = "127.0.0.1"\n'
        f'port = {hl7_port}\nbed_map = {{ "7" = "{HL7_BED}" }}\n'
        f'\n[[devices]]\ndriver = "wearable_mqtt"\nid = "ble-bridge"\nbed = "{WEARABLE_BED}"\nport = {local_port}\n'
        f'devices = {{ "{WEARABLE_MAC}" = "{WEARABLE_BED}" }}\nusername = "pulsegate"\n'
        f'password_file = {_toml_str(sec.file("mqtt-local-gateway"))}\n'
    )
    video_section = ""
    clip = REPO / "examples" / "video" / "kvasir-demo.mp4"
    if live_port is not None:
        video_section = (
            f"\n[video]\nsource = {_toml_str(clip)}\nroom = \"endoscopy-1\"\nfps_limit = 10.0\n"
            f"live_port = {free_port()}\nlive_host = \"127.0.0.1\"\nthreads = 1\n"
        )
    anomaly = ""
    versions = sorted((REPO / "models" / "vitals-anomaly").glob("*/manifest.json"))
    if versions:
        anomaly = f"\n[clinical.anomaly]\nmodel_dir = {_toml_str(versions[-1].parent)}\n"
    edge = work / "edge.toml"
    edge.write_text(
        f"""# Written by `pulsegate demo`. Validate with: pulsegate check-config {edge}
[gateway]
id = "ward7-gw1"
site = "demo-hospital"
state_dir = {_toml_str(work / "edge-state")}
pseudonym_key = {_toml_str(key)}

[http]
listen = "127.0.0.1"
port = {http_port}

[auth]
users_file = {_toml_str(users)}

[local_bus]
port = {local_port}
username = "pulsegate"
password_file = {_toml_str(sec.file("mqtt-local-gateway"))}

[summaries]
interval_s = 5

[models]
trusted_keys = [{_toml_str(REPO / "examples" / "keys" / "dev-signing.pub")}]  # development key: see examples/keys

[uplink]
host = "127.0.0.1"
port = {cloud_port}
username = "ward7-gw1"
password_file = {_toml_str(sec.file("mqtt-gateway"))}
outbox_path = "outbox.sqlite"
status_interval_s = 5
{anomaly}{beds}{devices}{video_section}"""
    )
    cloud = work / "cloud.toml"
    cloud.write_text(
        f"""# Written by `pulsegate demo`. Validate with: pulsegate check-config {cloud}
[cloud]
id = "demo-cloud"
state_dir = {_toml_str(work / "cloud-state")}

[api]
listen = "127.0.0.1"
port = {api_port}

[auth]
users_file = {_toml_str(users)}

[ingest]
host = "127.0.0.1"
port = {cloud_port}
client_id = "pg-ingest-demo"
username = "ingest"
password_file = {_toml_str(sec.file("mqtt-ingest"))}
deadletter_dir = {_toml_str(work / "cloud-state" / "deadletter")}
flush_s = 0.5

[influx]
url = "{influx_url}"
database = "{DATABASE}"
username = "admin"
password_file = {_toml_str(sec.file("influx-admin"))}
"""
    )
    return edge, cloud


def _influx_query(url: str, q: str, auth: tuple[str, str] | None) -> dict[str, Any]:
    headers = {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()} if auth else {}
    req = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode({"db": DATABASE, "q": q}).encode(),
                                 method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        body: dict[str, Any] = json.load(r)
    return body


def influx_counts(url: str, auth: tuple[str, str] | None = None) -> tuple[int, int]:
    """(points in all measurements, alarm points): the largest field count per measurement."""
    try:
        body = _influx_query(url, "SELECT count(*) FROM /.*/", auth)
    except OSError:
        return 0, 0
    total = alarms = 0
    for result in body.get("results", []):
        for series in result.get("series", []) or []:
            n = max((v for v in series["values"][0][1:] if isinstance(v, int)), default=0)
            total += n
            if series["name"] == "alarms":
                alarms = n
    return total, alarms


def influx_beds(url: str, auth: tuple[str, str] | None = None) -> list[str]:
    try:
        body = _influx_query(url, 'SHOW TAG VALUES FROM "vitals" WITH KEY = "bed"', auth)
    except OSError:
        return []
    series = (body.get("results") or [{}])[0].get("series") or []
    return sorted(v[1] for s in series for v in s["values"])


def scrape(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


@contextlib.contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield proc
    finally:
        stop_process(proc, 30.0)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("pulsegate ")]
            raise RuntimeError(f"daemon exited with {proc.returncode} during start"
                               + (f": {said[-1]}" if said else f"; see {log}"))
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def addresses(work: Path, edge_url: str, cloud_url: str, live_port: int | None, influx_url: str, cloud_mqtt: int,
              local_mqtt: int) -> list[str]:
    """Every address the demo serves, each with what it is."""
    live = f"http://127.0.0.1:{live_port}/" if live_port is not None else "(off: --no-video, or no clip/model)"
    rows = [
        ("nurse station", f"{edge_url}/", "beds, alarms, acknowledge; open a bed for its trends"),
        ("endoscopy live view", live, "annotated video, processed fps, latency"),
        ("cloud fleet dashboard", f"{cloud_url}/", "ward, trends, alarm burden, gateways, models"),
        ("gateway metrics", f"{edge_url}/metrics", "Prometheus; health: /livez /readyz"),
        ("cloud metrics", f"{cloud_url}/metrics", "Prometheus; health: /livez /readyz"),
        ("InfluxDB", influx_url, f"database {DATABASE}; InfluxQL, for Grafana"),
        ("cloud broker", f"mqtt://127.0.0.1:{cloud_mqtt}", "MQTT, gateways -> cloud ingest"),
        ("gateway local bus", f"mqtt://127.0.0.1:{local_mqtt}", "MQTT, alarms for nurse call and pagers"),
    ]
    width = max(len(r[0]) for r in rows) + 1
    return [f"PulseGate demo running (state in {work})"] + [
        f"  {name + ':':<{width}} {url:<32} {what}" for name, url, what in rows]


def run(duration: float | None, state_dir: Path | None, http_port: int, video: bool, say: Any,
        fhir_out: Path | None = None, ambulance: bool = False) -> DemoResult:
    """Run the demo; raises PortInUseError (http port taken), Stopped (SIGTERM) or RuntimeError."""
    check_free("127.0.0.1", http_port, "--http-port (http.port in the demo's edge.toml)")
    work = state_dir or Path(tempfile.mkdtemp(prefix="pulsegate-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm), signal.getsignal(signal.SIGINT)
    try:
        result = _run(work, duration, http_port, video, say, fhir_out, ambulance)
    except KeyboardInterrupt:
        _stopping()  # Ctrl-C during the start: the ExitStack already stopped what had started
        raise
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        if state_dir is None:  # our temporary folder: keys, passwords and data go with it
            shutil.rmtree(work, ignore_errors=True)
    result.state_removed = state_dir is None
    return result


def _run(work: Path, duration: float | None, http_port: int, video: bool, say: Any,
         fhir_out: Path | None, ambulance: bool = False) -> DemoResult:
    from firmware_bridge.emulators.hl7 import Hl7Sender
    from firmware_bridge.emulators.pty import open_pty_emulator
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.emulators.wearable import WearablePublisher

    t0 = time.monotonic()
    sec = DemoSecrets.make(work / "credentials")
    pw = sec.passwords
    accounts = make_demo_users(work / "users.json")
    amb_users: dict[str, str] = {}
    if ambulance:  # pulsegate/demo_ambulance.py: its gateway and the cloud's arrivals service on the cloud broker
        from pulsegate.demo_ambulance import broker_users

        amb_users = broker_users(sec)
    with contextlib.ExitStack() as stack:
        cloud_broker = Mosquitto(work / "cloud-broker", users={"ward7-gw1": pw["mqtt-gateway"],
                                                               "ingest": pw["mqtt-ingest"], **amb_users},
                                 acl=CLOUD_ACL.read_text()).start()
        stack.callback(cloud_broker.stop)
        local_bus = Mosquitto(work / "local-bus", users={"pulsegate": pw["mqtt-local-gateway"],
                                                         "ble-bridge": pw["mqtt-ble-bridge"],
                                                         "nurse-call": pw["mqtt-nurse-call"]},
                              acl=LOCAL_BUS_ACL.read_text()).start()
        stack.callback(local_bus.stop)
        influx_auth = ("admin", pw["influx-admin"])
        influx = Influxd(work / "influxdb", admin=influx_auth).start()
        stack.callback(influx.stop)
        ptys = {}
        for i, (bed, _driver, proto, scenario) in enumerate(DEMO_BEDS):
            emu = open_pty_emulator(proto, scenario, seed=i)
            stack.callback(emu.stop)
            ptys[bed] = emu.path
        api_port, hl7_port = free_port(), free_port()
        live_port = free_port() if video and video_available() else None
        http_port = http_port or free_port()
        edge_toml, cloud_toml = write_configs(
            work, cloud_broker.port, local_bus.port, influx.url, http_port, api_port, ptys, live_port, hl7_port, sec
        )
        if ambulance:
            from pulsegate.demo_ambulance import arrivals_section

            with cloud_toml.open("a") as f:
                f.write(arrivals_section(cloud_broker.port, sec))
        exe = [sys.executable, "-m", "pulsegate"]
        cloud = stack.enter_context(_process([*exe, "cloud", "run", "--config", str(cloud_toml)], work / "cloud.log"))
        _wait_http(f"http://127.0.0.1:{api_port}", cloud, work / "cloud.log")
        edge = stack.enter_context(_process([*exe, "edge", "run", "--config", str(edge_toml)], work / "edge.log"))
        edge_url = f"http://127.0.0.1:{http_port}"
        _wait_http(edge_url, edge, work / "edge.log")
        hl7 = Hl7Sender("127.0.0.1", hl7_port, make_scenario("deterioration", 7), beds=["7"])
        hl7.start()
        stack.callback(hl7.stop)
        wearable = WearablePublisher("127.0.0.1", local_bus.port, make_scenario("stable", 8), devices=[WEARABLE_MAC],
                                     username="ble-bridge", password=pw["mqtt-ble-bridge"])
        wearable.start()
        stack.callback(wearable.stop)
        amb = None
        if ambulance:
            from pulsegate.demo_ambulance import Ambulance

            amb = Ambulance(work, cloud_broker.port, local_bus.port, sec,
                            REPO / "examples" / "keys" / "dev-signing.pub", stack)
            amb_proc = stack.enter_context(_process([*exe, "edge", "run", "--config", str(amb.toml)],
                                                    work / "ambulance.log"))
            _wait_http(amb.url, amb_proc, work / "ambulance.log")
            say(f"  ambulance {amb.url}/crew (log in: crew / {amb.crew_password})  ->  arrivals board "
                f"http://127.0.0.1:{api_port}/arrivals?hospital=city-general (ed / {amb.ed_password}); "
                "notice after 10 s; link cut in the tunnel, real s 27-39")
        say("\n".join([
            *addresses(work, edge_url, f"http://127.0.0.1:{api_port}", live_port, influx.url, cloud_broker.port,
                       local_bus.port),
            f"  InfluxDB user admin, password in {sec.file('influx-admin')}; brokers take no anonymous client"
            f" (nurse-call password in {sec.file('mqtt-nurse-call')})",
            "  demo accounts (nurse page, live view, cloud dashboard; made for this run only):",
            *(f"    {name:<11} {role:<13} {'API token' if role == 'service' else 'password'} {cred}"
              for name, role, cred in accounts),
            f"  configs: {edge_toml}  {cloud_toml}",
            f"  logs:    {work}/edge.log  {work}/cloud.log",
            "Ctrl-C or SIGTERM stops everything."]))
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                for name, proc in (("edge", edge), ("cloud", cloud)):
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} daemon exited with {proc.returncode}; see {work}/{name}.log")
                if amb is not None:
                    amb.step()
                time.sleep(0.5)
        except KeyboardInterrupt:
            _stopping()
            say("stopping: counting what reached InfluxDB, then stopping everything")
        # let the uplink drain and the ingest catch up before counting
        settle = time.monotonic() + 15
        last = -1
        metrics = scrape(edge_url)
        while time.monotonic() < settle:
            metrics = scrape(edge_url)
            points, _ = influx_counts(influx.url, influx_auth)
            if metrics.get("pulsegate_outbox_backlog", 1) == 0 and points == last:
                break
            last = points
            time.sleep(1.0)
        points, alarms = influx_counts(influx.url, influx_auth)
        fhir = None
        if fhir_out is not None:
            summary = fhir_export(influx.url, fhir_out, influx_auth)
            fhir = {"out": str(fhir_out), "resources": summary["resources"], "by_type": summary["by_type"]}
            say(f"FHIR export: {summary['resources']} resources in {fhir_out}")
        return DemoResult(
            samples_read=int(metrics.get("pulsegate_samples_total", 0)),
            messages_uplinked=int(metrics.get("pulsegate_uplink_acked_total", 0)),
            points_in_influxdb=points,
            alarms_in_influxdb=alarms,
            beds_in_influxdb=influx_beds(influx.url, influx_auth),
            duration_s=round(time.monotonic() - t0, 1),
            state_dir=str(work),
            fhir=fhir,
            ambulance=None if amb is None else amb.summary(f"http://127.0.0.1:{api_port}"),
        )
