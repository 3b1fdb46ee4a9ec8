"""Test harness: a real mosquitto and a real influxd per test session.

Both start on free loopback ports with data in a temp folder and stop at the
end of the session. A missing binary fails the test with a message naming it.
Tests that need them take the ``broker`` / ``influx`` fixtures; every test
gets a unique topic prefix / database from ``unique`` so tests never share state.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.localservices import Influxd, Mosquitto, ServiceError
from cloud.training.endoscopy_data import default_kvasir_dir

KVASIR = default_kvasir_dir()  # $PULSEGATE_KVASIR, else ../shared/data/kvasir-seg beside the checkout


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def broker(services_dir: Path) -> Iterator[Mosquitto]:
    try:
        b = Mosquitto(services_dir / "mosquitto").start()
    except ServiceError as exc:
        pytest.fail(str(exc))
    yield b
    b.stop()


@pytest.fixture(scope="session")
def influx(services_dir: Path) -> Iterator[Influxd]:
    try:
        i = Influxd(services_dir / "influxdb").start()
    except ServiceError as exc:
        pytest.fail(str(exc))
    yield i
    i.stop()


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def kvasir() -> Path:
    if not (KVASIR / "images").is_dir():
        pytest.skip(f"Kvasir-SEG data not found at {KVASIR} (set PULSEGATE_KVASIR)")
    return KVASIR


@pytest.fixture(autouse=True)
def verify_cleanup() -> Iterator[None]:
    """Fail a test that leaves threads behind (after home-assistant's conftest)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon and not t.name.startswith(("asyncio_", "ThreadPool"))
    ]
    for t in leaked:
        t.join(timeout=2)
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
