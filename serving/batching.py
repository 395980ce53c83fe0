"""Server-side dynamic batching: concurrent small requests share one model call.

The batcher is greedy: when the model is idle a request runs at once (no added latency for a lone
client); while a batch runs, new requests queue and the next call takes all of them, up to
``max_batch_size`` rows. ``max_wait_ms`` optionally holds an idle model back a little longer to fill
bigger batches, trading latency for throughput. One model call runs at a time, in a worker thread, so
the event loop keeps accepting and decoding requests meanwhile (or, with ``on_loop``, on the event loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable

import numpy as np

from kfpc.components import defaults as D

Columns = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]


@dataclasses.dataclass
class _Pending:
    columns: Columns
    rows: int
    future: asyncio.Future
    enqueued: float


class DynamicBatcher:
    """Joins the feature columns of queued requests into one model call and splits the outputs.

    Args:
        predict: the model call, columns -> outputs; every output's first axis is the row.
        max_batch_size: most rows in one call (a single larger request still runs alone).
        max_wait_ms: longest an idle model waits for more requests before a call; 0 = greedy.
        on_batch: called with (rows, requests) of every model call, e.g. for a metric.
        on_loop: call the model on the event loop itself instead of on the worker thread.
    """

    def __init__(
        self,
        predict: Callable[[Columns], Outputs],
        max_batch_size: int = D.MAX_BATCH_SIZE,
        max_wait_ms: float = D.MAX_BATCH_WAIT_MS,
        on_batch: Callable[[int, int], None] | None = None,
        on_loop: bool = False,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._on_batch = on_batch
        self._queue: list[_Pending] = []
        self._queued_rows = 0
        self._worker: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._executor = None if on_loop else concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="kfpc-batch")

    async def predict(self, columns: Columns, rows: int) -> Outputs:
        """Queue one request's columns and wait for its slice of a batched call.

        Args:
            columns: one array per feature, ``rows`` long.
            rows: number of rows.
        Returns:
            the outputs for these rows only.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append(_Pending(columns, rows, future, time.monotonic()))
        self._queued_rows += rows
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())
        elif self._wakeup is not None:
            self._wakeup.set()
        return await future

    async def _run(self) -> None:
        # One worker task at a time; its wake-up event belongs to its own event loop.
        self._wakeup = asyncio.Event()
        batch: list[_Pending] = []
        try:
            while self._queue:
                await self._fill()
                batch = self._take()
                await self._call(batch)
                batch = []
        except BaseException as err:
            # Whatever stops the worker (a cancelled task at shutdown, a bug), no request may wait forever.
            for pending in batch + self._queue:
                if not pending.future.done():
                    if isinstance(err, asyncio.CancelledError):
                        pending.future.cancel()
                    else:
                        pending.future.set_exception(err)
            self._queue.clear()
            self._queued_rows = 0
            raise

    async def _fill(self) -> None:
        """With ``max_wait_ms``, hold an idle model until the queue fills or the oldest request's wait ends."""
        if self.max_wait_s <= 0:
            return
        deadline = self._queue[0].enqueued + self.max_wait_s
        while self._queued_rows < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _call(self, batch: list[_Pending]) -> None:
        """One model call for ``batch``; every request gets its rows of the outputs, or the call's error."""
        try:
            if len(batch) == 1:
                merged = batch[0].columns
            else:
                merged = {name: np.concatenate([p.columns[name] for p in batch]) for name in batch[0].columns}
            if self._executor is None:
                outputs = self._predict(merged)
            else:
                outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, merged)
            if self._on_batch is not None:
                self._on_batch(sum(p.rows for p in batch), len(batch))
        except Exception as err:  # every waiter must hear of the failure, not hang
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(err)
            return
        start = 0
        for pending in batch:
            end = start + pending.rows
            if not pending.future.done():  # the client may have gone away
                pending.future.set_result({name: value[start:end] for name, value in outputs.items()})
            start = end

    def _take(self) -> list[_Pending]:
        batch, rows = [], 0
        while self._queue and (not batch or rows + self._queue[0].rows <= self.max_batch_size):
            pending = self._queue.pop(0)
            batch.append(pending)
            rows += pending.rows
        self._queued_rows -= rows
        return batch

    def close(self) -> None:
        """Stop the worker thread (queued requests still finish)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
