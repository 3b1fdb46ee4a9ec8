"""Per-bed, per-parameter summaries over fixed intervals: the default uplink.

Intervals are aligned to wall-clock multiples of ``interval_s`` and stamped
with the interval's start (capture time), so a replayed summary lands on the
same InfluxDB point. Only valid samples enter count/min/max/mean/last;
invalid ones are counted separately. Optional raw numerics go to the ``bulk``
stream in batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from clinical.sample import DeviceEvent, Sample
from edge.pseudonym import Pseudonymizer
from wire.messages import VERSION, Message, Position, Raw, RawBatch, Score, Scores, Summary, SummaryItem

Publish = Callable[[str, Message], None]
ScoreSource = Callable[[], dict[str, tuple[int | None, float | None]]]  # bed -> (NEWS2, anomaly)


@dataclass(slots=True)
class _Acc:
    patient: str
    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    total: float = 0.0
    last: float = math.nan
    invalid: int = 0


class Summarizer:
    """A pipeline stage: accumulates samples, publishes one Summary per interval."""

    def __init__(
        self,
        gateway: str,
        publish: Publish,
        pseudonyms: Pseudonymizer,
        interval_s: float = 60.0,
        raw: bool = False,
        raw_batch: int = 500,
        patients: dict[str, str] | None = None,
        scores: ScoreSource | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.gateway = gateway
        self.publish = publish
        self.pseudonyms = pseudonyms
        self.interval_s = interval_s
        self.raw = raw
        self.raw_batch = raw_batch
        self.patients = patients if patients is not None else {}  # bed -> local patient reference
        self.scores = scores
        self._bucket: int | None = None
        self._acc: dict[tuple[str, str], _Acc] = {}
        self._raw: list[Raw] = []
        self._raw_since = 0.0
        self.raw_max_age_s = 5.0
        self._closed: list[tuple[int, dict[tuple[str, str], _Acc], float]] = []  # intervals waiting for tick()
        self.summaries_sent = 0
        # the ambulance's cellular budget (edge/budget.py): 1 raw sample in raw_every (0 = none); position
        self.raw_every = 1
        self._raw_n = 0
        self.position: Callable[[], Position | None] | None = None

    def set_interval(self, interval_s: float) -> None:
        """Change the interval from the next sample on: the open interval is closed (published at tick)."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if interval_s != self.interval_s:
            self._close()
            self._bucket = None
            self.interval_s = interval_s

    def on_sample(self, s: Sample) -> None:
        bucket = int(s.recv_wall // self.interval_s)
        if self._bucket is None:
            self._bucket = bucket
        elif bucket > self._bucket:
            self._close()  # only set aside here: building and encoding the message waits for tick()
            self._bucket = bucket
        key = (s.bed, s.parameter)
        acc = self._acc.get(key)
        if acc is None:
            if s.patient:  # a device that names the patient (HL7 PID-3) keeps the bed's reference current
                self.patients[s.bed] = s.patient
            acc = self._acc[key] = _Acc(self.pseudonyms.pseudonym(self.patients.get(s.bed, "")))
        if s.quality or s.value != s.value:  # flags set, or NaN
            acc.invalid += 1
        else:
            v = s.value
            acc.count += 1
            acc.total += v
            acc.last = v
            if v < acc.min:
                acc.min = v
            if v > acc.max:
                acc.max = v
        if self.raw and self.raw_every:
            self._raw_n += 1
            if self._raw_n % self.raw_every:
                return
            if not self._raw:
                self._raw_since = s.recv_mono
            self._raw.append(Raw(s.bed, acc.patient, s.parameter, int(s.recv_wall * 1e9), s.value, int(s.quality)))

    def on_device_event(self, event: DeviceEvent) -> None:
        pass

    def tick(self, now_mono: float, now_wall: float) -> None:
        if self._bucket is not None and int(now_wall // self.interval_s) > self._bucket:
            self._close()
            self._bucket = None
        while self._closed:
            self._publish_summary(*self._closed.pop(0))
        if self._raw and (len(self._raw) >= self.raw_batch or now_mono - self._raw_since >= self.raw_max_age_s):
            self._flush_raw()

    def flush(self) -> None:
        """Publish what has accumulated now (at shutdown)."""
        self._close()
        while self._closed:
            self._publish_summary(*self._closed.pop(0))
        self._flush_raw()

    def _close(self) -> None:
        if self._acc and self._bucket is not None:
            self._closed.append((self._bucket, self._acc, self.interval_s))
        self._acc = {}

    def _publish_summary(self, bucket: int, accs: dict[tuple[str, str], _Acc], interval_s: float) -> None:
        t = int(bucket * interval_s * 1e9)
        items = [
            SummaryItem(
                bed=bed,
                patient=a.patient,
                param=param,
                t=t,
                count=a.count,
                min=a.min if a.count else math.nan,
                max=a.max if a.count else math.nan,
                mean=a.total / a.count if a.count else math.nan,
                last=a.last,
                invalid=a.invalid,
            )
            for (bed, param), a in accs.items()
        ]
        pos = self.position() if self.position is not None else None
        self.publish("summaries", Summary(v=VERSION, gw=self.gateway, seq=0, interval_s=interval_s, items=items,
                                          position=pos))
        self.summaries_sent += 1
        if self.scores is not None:
            scored = [
                Score(bed, self.pseudonyms.pseudonym(self.patients.get(bed, "")), t, news2, anomaly)
                for bed, (news2, anomaly) in self.scores().items()
                if news2 is not None or anomaly is not None
            ]
            if scored:
                self.publish("summaries", Scores(v=VERSION, gw=self.gateway, seq=0, items=scored))

    def _flush_raw(self) -> None:
        if self._raw:
            batch, self._raw = self._raw, []
            self.publish("bulk", RawBatch(v=VERSION, gw=self.gateway, seq=0, items=batch))
