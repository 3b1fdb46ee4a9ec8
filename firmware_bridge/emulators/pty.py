"""Run a byte-level device emulator on a pseudo-terminal, like a device on a USB-serial cable.

:func:`open_pty_emulator` opens a pty, starts a thread that writes the
device's bytes to the master side and answers what the gateway writes, and
returns a :class:`PtyEmulator` handle. ``handle.path`` is a stable symlink to
the current ``/dev/pts/N`` (like udev's ``/dev/serial/by-id/...``): pulling the
cable (:meth:`PtyEmulator.unplug`, or a scenario's ``cable_pulled`` window)
closes the pty and removes the link; replugging opens a new pty and points the
link at it, so a gateway configured with the link path must notice the loss,
raise "disconnected", reopen with backoff and resume.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import tempfile
import threading
import time
import tty
from pathlib import Path

from firmware_bridge.emulators.device import ByteDevice
from firmware_bridge.emulators.scenarios import Scenario, make_scenario


class PtyEmulator:
    """Handle of a running pty emulator: ``path``, ``unplug()``, ``replug()``, ``stop()``."""

    def __init__(self, device: ByteDevice, scenario: Scenario, speed: float = 1.0,
                 link: str | os.PathLike[str] | None = None, wall_start: float | None = None) -> None:
        self.device = device
        self.scenario = scenario
        self.speed = speed
        self._tmpdir: str | None = None
        if link is None:
            self._tmpdir = tempfile.mkdtemp(prefix="pulsegate-pty-")
            link = Path(self._tmpdir) / "ttyEMU0"
        self.path = str(link)
        self.pts = ""
        self.wall_start = time.time() if wall_start is None else wall_start
        self.bytes_out = 0
        self.bytes_in = 0
        self.dropped = 0
        self.plug_count = 0
        self.muted = False  # device hangs: port stays, bytes stop (read-silence)
        self._master = -1
        self._slave = -1
        self._manual_unplug = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pty-emulator[{self.path}]", daemon=True)
        self._t0 = 0.0

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> PtyEmulator:
        self._plug()
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            self._unplug_locked()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> PtyEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def scenario_time(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def unplug(self) -> None:
        """Pull the cable: the pty and its link disappear until :meth:`replug`."""
        with self._lock:
            self._manual_unplug = True
            self._unplug_locked()

    def replug(self) -> None:
        with self._lock:
            self._manual_unplug = False
            if self._master < 0:
                self._plug_locked()

    # -- pty -------------------------------------------------------------------
    def _plug(self) -> None:
        with self._lock:
            self._plug_locked()

    def _plug_locked(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/NL translation: a raw byte pipe like a UART
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pts = os.ttyname(slave)
        tmp = self.path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.pts, tmp)
        os.replace(tmp, self.path)
        self.plug_count += 1
        self.device.reset()

    def _unplug_locked(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._master >= 0:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                self.dropped += len(view)  # nobody reads: a real UART just loses the bytes
                return
            except OSError:
                return
            self.bytes_out += n
            view = view[n:]

    # -- thread ----------------------------------------------------------------
    def _run(self) -> None:
        period = self.device.period_s / self.speed
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            t = (now - self._t0) * self.speed
            wall = self.wall_start + t
            with self._lock:
                pulled = self.scenario.at(t).cable_pulled
                if pulled and self._master >= 0:
                    self._unplug_locked()
                elif not pulled and self._master < 0 and not self._manual_unplug:
                    self._plug_locked()
                master = self._master
            timeout = max(0.0, min(next_tick - now, 0.05))
            if master >= 0:
                try:
                    ready, _, _ = select.select([master], [], [], timeout)
                except (OSError, ValueError):
                    ready = []
                if ready:
                    with self._lock:
                        try:
                            data = os.read(self._master, 4096) if self._master >= 0 else b""
                        except OSError:
                            data = b""
                        if data and not self.muted:
                            self.bytes_in += len(data)
                            self._write(self.device.receive(data, t, wall))
            else:
                self._stop.wait(timeout)
            now = time.monotonic()
            if now >= next_tick:
                t = (now - self._t0) * self.speed
                with self._lock:
                    if self._master >= 0 and not self.muted:
                        self._write(self.device.produce(t, self.wall_start + t))
                next_tick += period
                if next_tick < now - 1.0:
                    next_tick = now + period  # fell behind (suspended): do not burst


def make_device(protocol: str, scenario: Scenario) -> ByteDevice:
    """The emulator for a serial protocol: philips, masimo or nonin."""
    if protocol == "masimo":
        from firmware_bridge.emulators.masimo import MasimoEmulator

        return MasimoEmulator(scenario)
    if protocol == "nonin":
        from firmware_bridge.emulators.nonin import NoninEmulator

        return NoninEmulator(scenario)
    if protocol == "philips":
        from firmware_bridge.emulators.philips import PhilipsMonitorEmulator

        return PhilipsMonitorEmulator(scenario)
    raise ValueError(f"unknown serial protocol {protocol!r}; choose philips, masimo or nonin")


def open_pty_emulator(protocol: str, scenario: str | Scenario = "stable", seed: int = 0, speed: float = 1.0,
                      link: str | os.PathLike[str] | None = None) -> PtyEmulator:
    """Start an emulator of ``protocol`` on a new pty; returns the running handle (call ``stop()``)."""
    scn = make_scenario(scenario, seed) if isinstance(scenario, str) else scenario
    return PtyEmulator(make_device(protocol, scn), scn, speed=speed, link=link).start()
