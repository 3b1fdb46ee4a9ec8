"""GPS: the NMEA 0183 codec (published example sentences), gpsd JSON, the route emulator on a real pty read
through the serial transport, coarse positions and the ETA."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.position import PositionTracker
from firmware_bridge.emulators.gps import GpsEmulator, Leg, Route, make_route, nmea_burst
from firmware_bridge.emulators.pty import PtyEmulator
from firmware_bridge.emulators.scenarios import make_scenario
from firmware_bridge.geo import coarse, haversine_m
from firmware_bridge.gps_source import GpsConfig, GpsdDecoder, GpsSource
from firmware_bridge.nmea import Fix, NmeaDecoder, checksum, sentence

# the classic examples of the NMEA 0183 references (with their published checksums)
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
VTG = b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48\r\n"


def test_published_vectors() -> None:
    assert checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,") == "47"
    d = NmeaDecoder()
    [rmc] = d.feed(RMC, 100.0)
    assert rmc.valid and rmc.kind == "RMC"
    assert rmc.lat == pytest.approx(48 + 7.038 / 60) and rmc.lon == pytest.approx(11 + 31.0 / 60)
    assert rmc.speed_kmh == pytest.approx(22.4 * 1.852) and rmc.course_deg == pytest.approx(84.4)
    [gga] = d.feed(GGA, 101.0)
    assert gga.valid and gga.speed_kmh == pytest.approx(22.4 * 1.852)  # carried from the RMC
    assert d.feed(VTG, 102.0) == []
    [gga2] = d.feed(GGA, 103.0)
    assert gga2.speed_kmh == pytest.approx(10.2)  # VTG's km/h
    assert sum(d.rejected.values()) == 0


def test_bad_input_is_counted_never_raised() -> None:
    d = NmeaDecoder()
    bad = GGA.replace(b"*47", b"*48")
    out = d.feed(bad + b"$GPGGA,no,checksum\r\n" + b"garbage\r\n" + b"$" + b"X" * 100 + b"*00\r\n"
                 + sentence("GPGGA,1,4807.0,N,bad,E,1,08,0.9,1,M,1,M,,") + sentence("GPGSV,1,1,00")
                 + b"\xff\xfe$\xff*00\r\n" + b"A" * 5000, 1.0)
    assert out == []
    assert d.rejected["checksum"] == 1 and d.rejected["no_checksum"] == 1 and d.rejected["no_start"] == 1
    assert d.rejected["overlong"] == 2 and d.rejected["field"] == 1 and d.rejected["ignored_type"] == 1
    assert d.rejected["not_ascii"] == 1
    # split across reads, south/west hemispheres, GN talker
    body = "GNRMC,000001,A,3351.000,S,15112.000,W,10.0,180.0,010126,,,A"
    raw = sentence(body)
    assert d.feed(raw[:10], 2.0) == []
    [f] = d.feed(raw[10:], 2.0)
    assert f.lat == pytest.approx(-(33 + 51 / 60)) and f.lon == pytest.approx(-(151 + 12 / 60))


def test_no_fix_is_a_state() -> None:
    d = NmeaDecoder()
    route = Route((52.0, 4.0), [Leg(52.01, 4.0, 36.0, tunnel=True)])
    fixes = d.feed(nmea_burst(route.at(10.0), 1_700_000_000.0), 1.0)
    assert [f.valid for f in fixes] == [False, False] and sum(d.rejected.values()) == 0


def test_gpsd_json() -> None:
    g = GpsdDecoder()
    out = g.feed(b'{"class":"VERSION","release":"3.22"}\n{"class":"TPV","mode":3,"lat":52.1,"lon":4.2,'
                 b'"speed":10.0,"track":90.0,"time":"2026-01-01T00:00:00Z"}\n{"class":"TPV","mode":1}\nnot json\n'
                 b'{"class":"TPV","mode":2}\n{"class":"TPV","mo', 5.0)
    assert [f.valid for f in out] == [True, False]
    assert out[0].speed_kmh == pytest.approx(36.0) and out[0].lat == 52.1
    assert g.rejected["json"] == 1 and g.rejected["field"] == 1


def test_route_and_eta() -> None:
    r = make_route("tunnel", minutes=20)
    (t0, t1), = r.tunnel_windows()
    assert t1 - t0 == pytest.approx(300.0, rel=0.02)  # a 5-minute tunnel
    assert r.duration_s == pytest.approx(1200.0, rel=0.01)
    assert not r.at((t0 + t1) / 2).fix and r.at(t0 - 1).fix and r.at(r.duration_s + 5).done
    tr = PositionTracker(route_factor=1.3, min_speed_kmh=20)
    s = r.at(0.0)
    tr.on_fix(Fix(1000.0, True, s.lat, s.lon, s.speed_kmh))
    dest = r.legs[-1].lat, r.legs[-1].lon
    eta, dist = tr.eta(dest, 1000.0) or (0, 0)
    assert dist == pytest.approx(haversine_m(s.lat, s.lon, *dest), abs=1)
    assert eta == pytest.approx(dist * 1.3 / (s.speed_kmh / 3.6), rel=0.01)
    tr.on_fix(Fix(1001.0, False))  # into a tunnel: the ETA counts down
    later = tr.eta(dest, 1061.0)
    assert later is not None and later[0] == pytest.approx(eta - 61, abs=2)
    p = tr.position()
    assert p is not None and not p.fix and p.lat == coarse(s.lat) and round(p.lat, 3) == p.lat


def test_coarse_precision() -> None:
    assert haversine_m(52.0, 4.0, 52.0005, 4.0) == pytest.approx(55.6, abs=0.5)  # max rounding error N-S
    assert coarse(52.123456) == 52.123 and coarse(-4.98765) == -4.988
    assert math.isclose(haversine_m(0, 0, 0.001, 0), 111.2, abs_tol=0.5)


async def test_gps_over_a_pty_through_the_serial_transport() -> None:
    route = make_route("city", minutes=10)
    emu = PtyEmulator(GpsEmulator(route), make_scenario("stable"), speed=20.0).start()
    fixes: list[Fix] = []
    src = GpsSource(GpsConfig(source="serial", port=emu.path, baudrate=4800), fixes.append)
    await src.start()
    task = asyncio.create_task(src.run())
    try:
        deadline = time.monotonic() + 10
        while len([f for f in fixes if f.valid and f.speed_kmh]) < 5 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    finally:
        await src.stop()
        await asyncio.wait_for(task, 5)
        emu.stop()
    good = [f for f in fixes if f.valid]
    assert len(good) >= 5 and src.nmea.sentences >= len(good) and sum(src.nmea.rejected.values()) == 0
    assert good[-1].speed_kmh is not None and good[-1].speed_kmh == pytest.approx(route.legs[0].speed_kmh, rel=0.02)
    assert abs(good[-1].lat - route.start[0]) < 0.05


def test_emulate_gps_command_on_a_pty(tmp_path: Path) -> None:
    import serial

    link = tmp_path / "ttyGPS"
    proc = subprocess.Popen([sys.executable, "-m", "pulsegate", "emulate", "gps", "--route", "rural", "--speed", "5",
                             "--link", str(link), "--duration", "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == str(link)
        d = NmeaDecoder()
        fixes: list[Fix] = []
        with serial.Serial(str(link), 4800, timeout=0.5) as port:
            deadline = time.monotonic() + 5
            while len(fixes) < 4 and time.monotonic() < deadline:
                fixes += d.feed(port.read(512), time.time())
        assert len(fixes) >= 4 and all(f.valid for f in fixes) and sum(d.rejected.values()) == 0
    finally:
        proc.wait(timeout=15)
    assert proc.returncode == 0


@pytest.fixture
def gpsd_port(tmp_path: Path) -> Iterator[int]:
    """The route emulator on a pty, read by a real gpsd (read-only, -b); yields gpsd's port."""
    import shutil

    from bench.localservices import free_port

    binary = shutil.which("gpsd") or "/usr/sbin/gpsd"
    assert Path(binary).exists(), "gpsd is not installed (apt-get install -y gpsd; make test does this)"
    emu = PtyEmulator(GpsEmulator(make_route("city", minutes=10)), make_scenario("stable"), speed=5.0).start()
    port = free_port()
    gpsd = subprocess.Popen([binary, "-N", "-n", "-b", "-S", str(port), "-F", str(tmp_path / "gpsd.sock"), emu.pts],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        gpsd.terminate()
        gpsd.wait(timeout=10)
        emu.stop()


async def test_gps_through_a_real_gpsd(gpsd_port: int) -> None:
    fixes: list[Fix] = []
    src = GpsSource(GpsConfig(source="gpsd", host="127.0.0.1", gpsd_port=gpsd_port), fixes.append)
    await src.start()
    task = asyncio.create_task(src.run())
    try:
        deadline = time.monotonic() + 15
        while len([f for f in fixes if f.valid]) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    finally:
        await src.stop()
        await asyncio.wait_for(task, 5)
    good = [f for f in fixes if f.valid]
    assert len(good) >= 3 and sum(src.gpsd.rejected.values()) == 0
    assert abs(good[-1].lat - 52.33) < 0.05 and good[-1].speed_kmh == pytest.approx(37.8, rel=0.05)
