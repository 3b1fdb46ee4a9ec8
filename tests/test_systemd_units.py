"""systemd units pass `systemd-analyze verify` (where systemd-analyze exists)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[1] / "systemd"


@pytest.mark.parametrize("unit", ["pulsegate-edge.service", "pulsegate-cloud.service"])
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    text = (UNITS / unit).read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    assert "StateDirectory=" in text and "NoNewPrivileges=yes" in text
    # point ExecStart at this environment's real console script so verify can check it
    exe = Path(sys.executable).parent / "pulsegate"
    if not exe.exists():
        exe = Path(shutil.which("pulsegate") or sys.executable)
    (tmp_path / unit).write_text(text.replace("/opt/pulsegate/bin/pulsegate", str(exe)))
    res = subprocess.run(
        [analyze, "verify", "--man=no", "--recursive-errors=no", str(tmp_path / unit)],
        capture_output=True, text=True, timeout=60,
    )
    problems = [line for line in (res.stdout + res.stderr).splitlines() if unit in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr


def test_tmpfiles_and_sysusers_present() -> None:
    assert "d /etc/pulsegate" in (UNITS / "pulsegate.tmpfiles.conf").read_text()
    assert "u pulsegate" in (UNITS / "pulsegate.sysusers.conf").read_text()
