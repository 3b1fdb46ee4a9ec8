"""Start a private mosquitto and influxd on free loopback ports.

Used by ``pulsegate demo``, the test harness and the benchmarks: each gets its
own broker and database with data in a folder of its own, and stops them at
the end. InfluxDB is Debian's ``influxdb`` 1.x package (``influxd -config``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_binary(name: str, hint: str) -> str:
    for cand in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise ServiceError(f"{name} not found: install it with `{hint}` (make test / make demo do this)")


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with {proc.returncode} during start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"{name} did not listen on port {port} within {timeout}s")


@dataclass
class Mosquitto:
    """A mosquitto 2 broker. ``extra_conf`` adds lines (TLS listeners, ACLs). With ``users`` (name ->
    password) no anonymous client is allowed, the passwords are hashed by ``mosquitto_passwd`` and ``acl``
    (mosquitto acl_file text) says who may read and write which topics."""

    workdir: Path
    port: int = 0
    extra_conf: str = ""
    users: dict[str, str] = field(default_factory=dict)
    acl: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = find_binary("mosquitto", "apt-get install -y mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        conf = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        # as root, mosquitto would drop to user "mosquitto", which cannot write our folder
        run_as = "user root\n" if os.geteuid() == 0 else ""
        auth = "allow_anonymous true\n"
        if self.users:
            auth = f"allow_anonymous false\npassword_file {self._password_file()}\n"
            if self.acl:
                (self.workdir / "acl").write_text(self.acl)
                auth += f"acl_file {self.workdir / 'acl'}\n"
        conf.write_text(
            run_as
            + "per_listener_settings false\n"
            f"listener {self.port} 127.0.0.1\n"
            + auth +
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "max_packet_size 20000000\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + self.extra_conf
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_tcp(self.port, self.proc, "mosquitto", timeout)
        return self

    def _password_file(self) -> Path:
        path = self.workdir / "passwords"
        path.write_text("")
        path.chmod(0o600)
        tool = find_binary("mosquitto_passwd", "apt-get install -y mosquitto")
        for name, password in self.users.items():
            subprocess.run([tool, "-b", str(path), name, password], check=True, capture_output=True, timeout=30)
        return path

    def stop(self, kill: bool = False) -> None:
        _stop(self.proc, kill)
        self.proc = None


@dataclass
class Influxd:
    """An InfluxDB 1.x server with its own meta/data/wal folders. With ``admin`` (user, password) HTTP
    authentication is on and that admin user is created at start (InfluxDB allows the first one)."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    admin: tuple[str, str] | None = None
    data_conf: str = '  wal-fsync-delay = "0s"\n'  # the [data] settings (the fleet bench: a server's)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Influxd:
        binary = find_binary("influxd", "apt-get install -y influxdb")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        rpc = free_port()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{self.workdir}/meta"\n'
            f'[data]\n  dir = "{self.workdir}/data"\n  wal-dir = "{self.workdir}/wal"\n'
            "  query-log-enabled = false\n" + self.data_conf
            + '[monitor]\n  store-enabled = false\n'
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n  max-body-size = 0\n"
            + ("  auth-enabled = true\n" if self.admin else "")
            +
            "[continuous_queries]\n  enabled = true\n"
        )
        with (self.workdir / "influxd.log").open("ab") as logf:
            self.proc = subprocess.Popen([binary, "-config", str(conf)], stdout=logf, stderr=logf)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"influxd exited with {self.proc.returncode}; see {self.workdir}/influxd.log")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as r:
                    if r.status == 204:
                        if self.admin:
                            self._create_admin(*self.admin)
                        return self
            time.sleep(0.1)
        raise ServiceError(f"influxd did not answer /ping within {timeout}s")

    def _create_admin(self, user: str, password: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", user) or "'" in password or "\\" in password:
            raise ServiceError("influxd admin: a plain user name and a password without quotes")
        q = urllib.parse.urlencode({"q": f"CREATE USER {user} WITH PASSWORD '{password}' WITH ALL PRIVILEGES"})
        req = urllib.request.Request(f"{self.url}/query", data=q.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 200:
                raise ServiceError(f"influxd: cannot create the admin user ({r.status})")

    def stop(self, kill: bool = False) -> None:
        _stop(self.proc, kill)
        self.proc = None


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL), wait up to ``timeout``, then kill: a child never outlives its owner."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop(proc: subprocess.Popen[bytes] | None, kill: bool) -> None:
    if proc is not None:
        stop_process(proc, 10.0, kill)


@contextlib.contextmanager
def running(workdir: Path) -> Iterator[tuple[Mosquitto, Influxd]]:
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        influx = Influxd(workdir / "influxdb").start()
    except BaseException:
        broker.stop()
        raise
    try:
        yield broker, influx
    finally:
        influx.stop()
        broker.stop()
