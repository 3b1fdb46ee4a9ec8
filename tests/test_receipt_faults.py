"""Fault tests of contract v2 receipts, with real mosquitto, influxd and processes (bench/faults.py runs them).

Each class runs once with fresh processes: the gateway must drain (exit 0 only once the cloud receipted
every record) and InfluxDB must hold every sequence number exactly once, or, for numbers the disk quota
dropped, report them in a gap and never store them too. `pulsegate bench faults --runs N` repeats them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import FAULTS, run_fault
from bench.localservices import Influxd

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_loses_nothing_and_doubles_nothing(fault: str, influx: Influxd, tmp_path: Path) -> None:
    got = await run_fault(fault, influx, tmp_path / fault)
    assert got["lost"] == 0, got
    assert got["duplicates"] == 0 and got["unexpected"] == 0 and got["conflicts"] == 0, got
    if fault == "lost_receipt":
        assert got["resent"] > 0  # the receipts were thrown away: the gateway had to re-send
    if fault == "quota_through_faults":
        assert got["dropped"] > 0 and got["reported_dropped"] == got["dropped"], got
