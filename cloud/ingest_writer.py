"""The ingest worker's writer: batches to InfluxDB, up to ``write_concurrency`` at once, acknowledged in order.

InfluxDB takes concurrent writes on several cores, so while one batch is
being written the next is already on its way (a drain after an outage is
bound by InfluxDB's write rate). MQTT wants PUBACKs in the order the PUBLISHes
came, so each batch, once written, waits for its predecessor before its
dead letters, receipts and acknowledgements go out. A batch that was not
written (the worker stopping) is never acknowledged, nor is any batch after
it: the broker redelivers them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cloud.delivery import DeliveryAborted
from runtime.logs import get_logger

if TYPE_CHECKING:
    from cloud.ingest import IngestWorker, _Batch

log = get_logger("cloud.ingest")


async def write_batches(w: IngestWorker, batches: asyncio.Queue[_Batch | None]) -> None:
    """Take batches until None; at most ``w.write_concurrency`` in flight."""
    running: set[asyncio.Task[bool]] = set()
    prev: asyncio.Task[bool] | None = None
    try:
        while True:
            w._writer_busy = len(running) >= w.write_concurrency
            if w._writer_busy:
                await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
                continue
            w._arrived.set()  # the writer can take more: the collector may hand over what it has
            batch = await batches.get()
            if batch is None:
                break
            prev = asyncio.create_task(_write(w, batch, prev))
            running.add(prev)
            prev.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    finally:
        for t in running:
            t.cancel()
        w._writer_busy = False


async def _write(w: IngestWorker, batch: _Batch, prev: asyncio.Task[bool] | None) -> bool:
    try:
        rejected = await w.delivery.deliver(batch.lines)
    except DeliveryAborted:
        log.warning("ingest_batch_abandoned", messages=len(batch.mids), points=len(batch.lines))
        return False  # not acknowledged: the broker redelivers
    before_ok = True if prev is None else await prev
    if rejected:
        await w.deadletters.points([(f"influx_{r.status}", r.line, r.reason) for r in rejected])
    if batch.dead:
        await w.deadletters.payloads(batch.dead)
    w.batches += 1
    if w.on_written is not None:
        w.on_written(w.batches)
    w.receipts.written(batch.marks)  # written (also from a lost link's batch): receipts may say so
    if before_ok:
        w._ack(batch)
    return before_ok
