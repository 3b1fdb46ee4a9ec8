"""Device config validation, the emulate commands and the codec benchmark command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from firmware_bridge.config import (
    Hl7MllpConfig,
    MasimoConfig,
    NoninConfig,
    PhilipsMibConfig,
    WearableMqttConfig,
    parse_device,
)
from firmware_bridge.masimo import MasimoDecoder

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_per_driver_come_from_the_devices() -> None:
    p = parse_device({"driver": "philips_mib", "id": "mp50", "port": "/dev/ttyUSB0"})
    assert isinstance(p, PhilipsMibConfig) and (p.baudrate, p.bytesize, p.parity, p.stopbits) == (115200, 8, "N", 1)
    m = parse_device({"driver": "masimo", "id": "rad8", "port": "/dev/ttyUSB1"})
    assert isinstance(m, MasimoConfig) and m.baudrate == 9600 and m.silence_timeout_s == 5.0
    n = parse_device({"driver": "nonin_oem3", "id": "n", "port": "/dev/ttyUSB2", "bed": "4"})
    assert isinstance(n, NoninConfig) and n.baudrate == 9600 and n.bed == "4"
    h = parse_device({"driver": "hl7_mllp", "id": "cms", "bed_map": {"12": "bed-12"}})
    assert isinstance(h, Hl7MllpConfig) and h.port == 2575
    w = parse_device({"driver": "wearable_mqtt", "id": "ble", "devices": {"C4:7C:8D:6A:12:34": "9"}})
    assert isinstance(w, WearableMqttConfig) and w.topic_prefix == "pulsegate/ble"


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as exc:
        parse_device(data)
    return str(exc.value)


def test_unknown_driver_names_the_supported_ones() -> None:
    msg = _error({"driver": "drager_medibus", "id": "x", "port": "/dev/ttyS0"})
    assert "drager_medibus" in msg and "'philips_mib', 'masimo', 'nonin_oem3', 'hl7_mllp', 'wearable_mqtt'" in msg


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"driver": "masimo", "baudrate": 19200}, "talks 9600 baud 8N1 only; 19200 baud 8N1 is impossible"),
        ({"driver": "philips_mib", "baudrate": 9600}, "talks 115200 baud 8N1 only"),
        ({"driver": "nonin_oem3", "parity": "E"}, "9600 baud 8E1 is impossible"),
        ({"driver": "nonin_oem3", "bytesize": 9}, "bytesize"),
        ({"driver": "masimo", "stopbits": 3}, "stopbits must be 1, 1.5 or 2"),
        ({"driver": "masimo", "baudrate": 12}, "not a serial baud rate"),
        ({"driver": "masimo", "reconnect_initial_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"driver": "masimo", "colour": "red"}, "Extra inputs are not permitted"),
        ({"driver": "wearable_mqtt", "topic_prefix": "a/#"}, "topic_prefix"),
    ],
)
def test_impossible_settings_are_rejected_clearly(extra: dict[str, object], needle: str) -> None:
    data: dict[str, object] = {"id": "dev1", "port": "/dev/ttyUSB0"}
    if extra.get("driver") == "wearable_mqtt":
        data.pop("port")
    data.update(extra)
    assert needle in _error(data)


def _pulsegate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pulsegate", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_emulate_masimo_prints_a_pty_path_that_carries_lines() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pulsegate", "emulate", "masimo", "--speed", "20",
                             "--duration", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        try:
            import tty

            tty.setraw(fd)
            data = b""
            while data.count(b"\n") < 3:
                data += os.read(fd, 4096)
        finally:
            os.close(fd)
        d = MasimoDecoder()
        d.feed(data, 0, 0)
        assert d.stats.frames >= 2
    finally:
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_bench_codecs_prints_every_codec_as_json() -> None:
    out = _pulsegate("bench", "codecs", "--json", "--scale", "0.02", "--repeats", "1")
    result = json.loads(out.stdout)
    assert set(result["codecs"]) == {"masimo", "nonin_oem3", "philips_mib", "hl7_mllp", "gatt"}
    for fig in result["codecs"].values():
        assert fig["frames"] > 0 and fig["bad_frames"] == 0 and fig["mb_per_s"] > 0
    assert out.returncode == (0 if result["serial_codecs_meet_floor"] else 1)
