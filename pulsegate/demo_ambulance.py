"""``pulsegate demo --ambulance``: one ambulance beside the ward, on an emulated route with a tunnel.

The ambulance gateway is a real ``pulsegate edge run`` process with its own
TOML (``kind = "ambulance"``): a Masimo oximeter (desaturation scenario) and a
GPS receiver on ptys, the route ``city`` played 20x faster than real time (20
simulated minutes in 1 real one), and one metered "cellular" link to the cloud
broker through a TCP proxy that is cut while the route is in its tunnel
(real seconds 27-39). Ten seconds in, the "crew" sends a stroke notice to
``city-general`` through the crew page; it shows on the cloud's arrivals board.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import secrets
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.linkproxy import ThreadedLinkProxy
from bench.localservices import free_port
from firmware_bridge.emulators.gps import HOSPITALS, GpsEmulator, Route, make_route
from firmware_bridge.emulators.pty import PtyEmulator, open_pty_emulator
from firmware_bridge.emulators.scenarios import make_scenario
from runtime.security.users import UserStore

if TYPE_CHECKING:
    from pulsegate.demo import DemoSecrets

GPS_SPEED = 20.0
GATEWAY = "amb-12"


def _secret(sec: DemoSecrets, name: str) -> str:
    """A random password in a 0600 file of the demo's credentials folder (made once)."""
    path = sec.file(name)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return path.read_text()


def broker_users(sec: DemoSecrets) -> dict[str, str]:
    """The cloud broker's accounts for the ambulance gateway and the arrivals service (examples' ACL)."""
    return {GATEWAY: _secret(sec, "mqtt-ambulance"), "arrivals": _secret(sec, "mqtt-arrivals")}


def arrivals_section(cloud_port: int, sec: DemoSecrets) -> str:
    return (f"\n[arrivals]                              # pre-arrival notices (pulsegate demo --ambulance)\n"
            f"enabled = true\n[[arrivals.brokers]]\nhost = \"127.0.0.1\"\nport = {cloud_port}\n"
            f"username = \"arrivals\"\npassword_file = {json.dumps(str(sec.file('mqtt-arrivals')))}\n")


class Session:
    """A logged-in HTTP session (cookie + CSRF token) against a PulseGate listener, with urllib."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.user, self.password = user, password
        self.csrf = ""

    def _call(self, path: str, body: dict[str, Any] | None) -> Any:
        headers = {"Origin": self.url}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers |= {"Content-Type": "application/json", "X-CSRF-Token": self.csrf}
        with self.opener.open(urllib.request.Request(self.url + path, data, headers), timeout=5) as r:
            return json.load(r)

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self.csrf:
            self.csrf = self._call("/auth/login", {"user": self.user, "password": self.password})["csrf"]
        return self._call(path, body)


def demo_account(users_file: Path, name: str, role: str, **scope: list[str]) -> str:
    """A demo login with a random password (printed by the demo; the folder is the user's own)."""
    users_file.parent.mkdir(parents=True, exist_ok=True)
    store = UserStore(users_file)
    password = secrets.token_urlsafe(12)
    if name in store.users:
        store.remove(name)
    store.add(name, password, [role], **scope)
    store.save()
    return password


class Ambulance:
    def __init__(self, work: Path, cloud_port: int, local_port: int, sec: DemoSecrets, trusted_key: Path,
                 stack: contextlib.ExitStack) -> None:
        self.work = work
        self.sec = sec
        self.route: Route = make_route("city", 20.0)
        self.gps = PtyEmulator(GpsEmulator(self.route), make_scenario("stable"), speed=GPS_SPEED).start()
        stack.callback(self.gps.stop)
        self.monitor = open_pty_emulator("masimo", "desaturation", seed=12)
        stack.callback(self.monitor.stop)
        self.link = ThreadedLinkProxy(cloud_port).start()
        stack.callback(self.link.stop)
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.t0 = time.monotonic()
        self.cuts = 0
        self._down = False
        self.notice_sent = False
        self.toml = self._config(local_port, sec.file("pseudonym-key"), trusted_key)
        self.crew_password = demo_account(work / "ambulance-state" / "users.json", "crew", "nurse", wards=["demo-ems"])
        self.ed_password = demo_account(work / "users.json", "ed", "nurse", sites=["*"])  # the cloud's users file
        self.crew = Session(self.url, "crew", self.crew_password)

    def _config(self, local_port: int, key: Path, trusted_key: Path) -> Path:
        hospitals = "".join(f'\n[[ambulance.hospitals]]\nid = "{h}"\nlat = {lat}\nlon = {lon}\n'
                            for h, (lat, lon) in HOSPITALS.items())
        path = self.work / "ambulance.toml"
        path.write_text(f"""# Written by `pulsegate demo --ambulance`. Validate with: pulsegate check-config {path}
[gateway]
id = "{GATEWAY}"
site = "demo-ems"
kind = "ambulance"
state_dir = {json.dumps(str(self.work / "ambulance-state"))}
pseudonym_key = {json.dumps(str(key))}  # shared within the hospital group: the ED sees the same pseudonym

[http]
listen = "127.0.0.1"
port = {self.http_port}

[local_bus]
port = {local_port}
username = "pulsegate"
password_file = {json.dumps(str(self.sec.file("mqtt-local-gateway")))}

[summaries]
interval_s = 10

[models]
trusted_keys = [{json.dumps(str(trusted_key))}]

[uplink]
host = "127.0.0.1"
port = {self.link.port}
username = "{GATEWAY}"
password_file = {json.dumps(str(self.sec.file("mqtt-ambulance")))}
outbox_path = "outbox.sqlite"
reconnect_min_s = 0.2
reconnect_max_s = 2.0

[uplink.budget]
bytes_per_hour = 65536

[[uplink.links]]
name = "cellular"
host = "127.0.0.1"
port = {self.link.port}
metered = true

[ambulance]
[ambulance.gps]
source = "serial"
port = {json.dumps(self.gps.path)}
{hospitals}
[[beds]]
id = "stretcher"
patient = "EPCR-DEMO-0001"

[[devices]]
driver = "masimo"
id = "rad8-stretcher"
bed = "stretcher"
port = {json.dumps(self.monitor.path)}
""")
        return path

    def step(self) -> None:
        """Call twice a second: cut the link in the tunnel, and send the crew's notice after 10 s."""
        t = (time.monotonic() - self.t0) * GPS_SPEED
        down = any(a <= t < b for a, b in self.route.tunnel_windows())
        if down != self._down:
            self._down = down
            self.cuts += int(down)
            self.link.set_up(not down)
        if not self.notice_sent and time.monotonic() - self.t0 > 10:
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.notice_sent = bool(self.crew.call("/crew/api/notice", {
                    "hospital": "city-general", "complaint": "stroke", "bed": "stretcher"})["ok"])

    def summary(self, api_url: str) -> dict[str, Any]:
        board: list[dict[str, Any]] = []
        with contextlib.suppress(OSError, ValueError, KeyError):
            board = Session(api_url, "ed", self.ed_password).call("/api/arrivals?hospital=city-general")["arrivals"]
        health: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as r:
            health = json.load(r).get("ambulance", {})
        return {"notice_sent": self.notice_sent, "notices_on_board": len(board),
                "board_revision": board[0]["rev"] if board else None, "link_cuts": self.cuts,
                "bytes_hour": (health.get("budget") or {}).get("bytes_hour"),
                "position": health.get("position")}
