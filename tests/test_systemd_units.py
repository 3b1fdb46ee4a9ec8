"""systemd units pass `systemd-analyze verify` and score <= 2.0 in `systemd-analyze security` (systemd is in
the Makefile's DEB_PKGS, so these run for real)."""

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
        pytest.fail("systemd-analyze not installed (the Makefile's DEB_PKGS installs systemd)")
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


@pytest.mark.parametrize("unit", ["pulsegate-edge.service", "pulsegate-cloud.service"])
def test_unit_exposure_at_most_2(unit: str, tmp_path: Path) -> None:
    """`systemd-analyze security` scores the sandbox from 0 (locked down) to 10; the issue asks <= 2.0."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not installed (the Makefile's DEB_PKGS installs systemd)")
    (tmp_path / unit).write_text((UNITS / unit).read_text())
    res = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(tmp_path / unit)],
                         capture_output=True, text=True, timeout=60)
    line = next(x for x in res.stdout.splitlines() if "Overall exposure level" in x)
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 2.0, res.stdout
    text = (UNITS / unit).read_text()
    assert "UMask=0077" in text and "ProtectProc=invisible" in text and "CapabilityBoundingSet=\n" in text


def test_fhir_export_units_verify_and_are_locked_down(tmp_path: Path) -> None:
    """The periodic FHIR export: a oneshot service started by a timer (docs/interop.md)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not installed (the Makefile's DEB_PKGS installs systemd)")
    exe = Path(sys.executable).parent / "pulsegate"
    if not exe.exists():
        exe = Path(shutil.which("pulsegate") or sys.executable)
    for unit in ("pulsegate-fhir-export.service", "pulsegate-fhir-export.timer"):
        (tmp_path / unit).write_text((UNITS / unit).read_text().replace("/opt/pulsegate/bin/pulsegate", str(exe)))
    service = (UNITS / "pulsegate-fhir-export.service").read_text()
    assert "Type=oneshot" in service and "fhir export" in service and "--push" in service
    assert "LoadCredential=fhir-token:" in service and "UMask=0077" in service
    res = subprocess.run([analyze, "verify", "--man=no", "--recursive-errors=no",
                          str(tmp_path / "pulsegate-fhir-export.timer"), str(tmp_path / "pulsegate-fhir-export.service")],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines() if "pulsegate-fhir-export" in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
    res = subprocess.run([analyze, "security", "--offline=yes", "--no-pager",
                          str(tmp_path / "pulsegate-fhir-export.service")], capture_output=True, text=True, timeout=60)
    line = next(x for x in res.stdout.splitlines() if "Overall exposure level" in x)
    assert float(line.split(":")[1].split()[0]) <= 2.0, res.stdout
