"""After a PUBACK 0x10 "no matching subscribers": publish one record at a time until the broker has one again.

mosquitto 2.0 forgets shared subscriptions across a restart; until the ingest
workers re-subscribe it answers QoS 1 publishes with reason 0x10 and drops
them. The uplink keeps such records (edge/uplink.py) and, from the first 0x10,
sends a single probe record, waiting 50 ms doubling to 2 s whenever the probe
itself comes back 0x10 (the rest of the window that went out before the first
0x10 arrived does not count). The first accepted PUBACK ends it. This replaced
contract v1's fixed 1 s resume hold-off after every lost link.
"""

from __future__ import annotations

PROBE_MIN_S, PROBE_MAX_S = 0.05, 2.0


class Probe:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.probing = False
        self.mid = -1  # the one record published while probing
        self.delay_s = PROBE_MIN_S
        self.resume_at = 0.0  # monotonic; nothing is published before it

    def space(self, now: float, inflight: int) -> int | None:
        """Records that may go now: 0 while waiting, 1 while probing, None when not probing."""
        if now < self.resume_at:
            return 0
        if self.probing:
            return 0 if inflight else 1
        return None

    def published(self, mid: int) -> None:
        if self.probing:
            self.mid = mid

    def no_subscribers(self, mid: int, now: float) -> bool:
        """A PUBACK 0x10; True if it started a probing spell (log it once)."""
        started = not self.probing
        if started:
            self.probing, self.delay_s, self.mid = True, PROBE_MIN_S, -1
        elif mid == self.mid:  # the probe came back 0x10 too: wait longer
            self.delay_s = min(self.delay_s * 2, PROBE_MAX_S)
        else:
            return False  # the rest of the window that went out before the first 0x10 came back
        self.resume_at = now + self.delay_s
        return started

    def accepted(self) -> bool:
        """A PUBACK with a subscriber; True if it ended a probing spell."""
        ended = self.probing
        if ended:
            self.probing, self.delay_s = False, PROBE_MIN_S
        return ended
