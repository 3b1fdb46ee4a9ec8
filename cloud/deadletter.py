"""The ingest's dead-letter store: what could not be decoded or stored, kept for inspection.

One JSON line per entry in ``<dir>/deadletter-YYYYMMDD.jsonl``: when, why
(``reason`` is the metric label), the topic, and either the raw payload
(base64; a message that failed decoding or the topic check) or the refused
line-protocol point. Entries never block the stream: the message is
acknowledged once its dead letter is written, or once writing it failed (a
full disk is counted in ``write_errors`` and logged, and never stalls ingest). Writes happen in a worker
thread so the event loop never waits on the disk.

Inspect with ``read_entries(dir)`` (or ``jq`` on the files).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime.logs import get_logger

log = get_logger("cloud.deadletter")


class DeadLetters:
    def __init__(self, directory: Path | None) -> None:
        self.write_errors = 0
        self.directory = Path(directory) if directory else None
        self.counts: Counter[str] = Counter()
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self) -> Path:
        assert self.directory is not None
        return self.directory / time.strftime("deadletter-%Y%m%d.jsonl", time.gmtime())

    async def payloads(self, entries: list[tuple[str, str, bytes, str]]) -> None:
        """Keep undecodable messages: (reason, topic, payload, detail)."""
        for reason, *_ in entries:
            self.counts[reason] += 1
        recs = [{"ts": time.time(), "reason": r, "topic": t[:300], "detail": d[:500],
                 "payload_b64": base64.b64encode(p).decode()} for r, t, p, d in entries]
        await self._write(recs)

    async def points(self, entries: list[tuple[str, str, str]]) -> None:
        """Keep points InfluxDB refused: (reason, line, detail)."""
        for reason, *_ in entries:
            self.counts[reason] += 1
        recs = [{"ts": time.time(), "reason": r, "line": ln, "detail": d[:500]} for r, ln, d in entries]
        await self._write(recs)

    async def _write(self, recs: list[dict[str, Any]]) -> None:
        if not recs or self.directory is None:
            return
        text = "".join(json.dumps(r) + "\n" for r in recs)
        try:
            await asyncio.to_thread(self._append, text)
        except OSError as exc:
            # a full or read-only disk must not stall the stream: the rejection is still counted by reason
            # (pulsegate_ingest_deadletters_total) and the write failure too; only the copy is lost
            self.write_errors += 1
            log.error("deadletter_write_failed", error=str(exc)[:200], records=len(recs))

    def _append(self, text: str) -> None:
        with self._path().open("a", encoding="utf-8") as f:
            f.write(text)


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(Path(directory).glob("deadletter-*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for ln in f:
                if ln.strip():
                    yield json.loads(ln)
