"""Group commit: many concurrent submissions, one store transaction.

A submitter awaits its own future; the writer task drains everything queued
while the previous transaction ran and writes it in one go. Under load,
batches grow by themselves; when idle, a single reading is written at once.
A submission's future resolves only after its transaction committed, so an
acknowledged reading is on disk.

Two groups may be in flight at once: while one is inside the store's
transaction, the next is turned into rows on the event loop, so the database
does not wait for Python between commits. The store keeps concurrent
transactions apart (SQLite: one writer; PostgreSQL: rows locked in key order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from m2mhub.core.values import Value
from m2mhub.ingest.pipeline import IngestBatch, RejectHandler, Stage
from m2mhub.store.base import Store

log = logging.getLogger(__name__)

Item = tuple[int, int, dict[str, Value]]


class BatchWriter:
    """Writes readings through ``store.write_readings`` in coalesced transactions."""

    def __init__(self, store: Store, *, max_rows: int = 20_000, max_in_flight: int = 2) -> None:
        self.store = store
        self.max_rows = max_rows
        self.max_in_flight = max_in_flight
        self._queue: asyncio.Queue[tuple[list[Item], int, asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        self.rows_written = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="m2mhub-batch-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def write(self, readings: Sequence[Item], *, arrival_ms: int) -> None:
        """Queue readings and return once they are committed."""
        if self._task is None:
            raise RuntimeError("call BatchWriter.start() before write()")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((list(readings), arrival_ms, future))
        await future

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.max_in_flight)
        writing: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                first = await self._queue.get()
                group = [first]
                rows = sum(len(v) for _, _, v in first[0])
                while rows < self.max_rows and not self._queue.empty():
                    item = self._queue.get_nowait()
                    group.append(item)
                    rows += sum(len(v) for _, _, v in item[0])
                task = asyncio.create_task(self._write(group, slots))
                writing.add(task)
                task.add_done_callback(writing.discard)
        finally:
            # Cancelled: the groups already taken still commit and answer their waiters.
            if writing:
                await asyncio.gather(*writing, return_exceptions=True)

    async def _write(
        self, group: list[tuple[list[Item], int, asyncio.Future[None]]], slots: asyncio.Semaphore
    ) -> None:
        readings = [r for items, _, _ in group for r in items]
        arrival = max(a for _, a, _ in group)
        try:
            inserted = await self.store.write_readings(readings, arrival_ms=arrival)
        except Exception as exc:  # every waiter learns the write failed
            log.exception("telemetry write failed for %d readings", len(readings))
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc)
        else:
            self.transactions += 1
            self.rows_written += inserted
            for _, _, future in group:
                if not future.done():
                    future.set_result(None)
        finally:
            slots.release()
            for _ in group:
                self._queue.task_done()


def store_stage(writer: BatchWriter) -> Stage:
    """The pipeline's store stage: returns once the readings are committed.

    Many batches (MQTT messages received together) are handed to the writer
    as one submission: one future and one queue entry for all of them, and
    one transaction unless they pass ``max_rows``.
    """

    async def one(batch: IngestBatch) -> IngestBatch:
        pk = batch.device.pk
        await writer.write(
            [(pk, ts, values) for ts, values in batch.readings], arrival_ms=batch.arrival_ms
        )
        batch.stored = sum(len(values) for _, values in batch.readings)
        return batch

    async def many(batches: list[IngestBatch], on_reject: RejectHandler) -> list[IngestBatch]:
        await writer.write(
            [(b.device.pk, ts, values) for b in batches for ts, values in b.readings],
            arrival_ms=max(b.arrival_ms for b in batches),
        )
        for batch in batches:
            batch.stored = sum(len(values) for _, values in batch.readings)
        return batches

    return Stage(one, many)
