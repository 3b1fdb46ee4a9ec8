"""The interface between a protocol emulator and the link that carries its bytes (pty, TCP, MQTT)."""

from __future__ import annotations

from typing import Protocol


class ByteDevice(Protocol):
    """A device that emits bytes every ``period_s`` (device seconds) and may answer requests.

    ``t`` is scenario time (seconds since the emulator started, scaled by the
    speed factor) and ``wall`` the device clock (epoch seconds) at that moment.
    """

    period_s: float

    def produce(self, t: float, wall: float) -> bytes:
        """Bytes the device sends unprompted at this tick (may be empty)."""

    def receive(self, data: bytes, t: float, wall: float) -> bytes:
        """Bytes the device answers to what it received (may be empty)."""

    def reset(self) -> None:
        """The cable was pulled: forget any session state."""
