"""The writer thread: rows, moves and marks of classified batches, one batch at a time.

The service thread hands each classified batch to `BatchWriter.submit` and goes on with the
next batch's inference. One thread runs the jobs in the order they were submitted, so the
protocol steps of every file keep their order, and reconciliation of unmoved rows, submitted as
a job too, never runs while a batch is between its commit and its moves.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from daemon.pipeline import BatchOutcome, BatchProcessor, ClassifiedBatch
from daemon.reconcile import reconcile_unmoved
from registry.errors import RegistryError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    """A written batch: its outcome, or the error that stopped it."""

    paths: list[str]
    outcome: BatchOutcome | None
    error: BaseException | None


class BatchWriter:
    """Record classified batches on one thread, holding at most `max_batches` of them.

    Args:
        processor: Records each batch (`BatchProcessor.record`).
        registry: The opened registry, for reconciliation.
        inbox: The inbox whose unmoved rows are reconciled.
        reported_rows: Ids of unmoved rows already logged as unresolved, shared with start-up.
        wake: Set when a job finishes, so the service thread collects its result at once.
        max_batches: Capacity: the batch being written plus those waiting for it.
    """

    def __init__(
        self,
        processor: BatchProcessor,
        registry,
        inbox: Path,
        reported_rows: set[int],
        wake: threading.Event,
        max_batches: int,
    ):
        self._processor = processor
        self._registry = registry
        self._inbox = inbox
        self._reported_rows = reported_rows
        self._wake = wake
        self._max_batches = max_batches
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="writer")
        self._pending: deque[tuple[ClassifiedBatch, Future]] = deque()
        self._reconciling: Future | None = None

    def has_room(self) -> bool:
        return len(self._pending) < self._max_batches

    def pending_files(self) -> int:
        return sum(len(batch) for batch, _ in self._pending)

    def submit(self, batch: ClassifiedBatch) -> None:
        future = self._executor.submit(self._processor.record, batch)
        future.add_done_callback(lambda _: self._wake.set())
        self._pending.append((batch, future))

    def submit_reconcile(self) -> None:
        """Queue a reconciliation of unmoved rows unless one is already waiting."""
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = self._executor.submit(self._reconcile)

    def _reconcile(self) -> None:
        try:
            reconcile_unmoved(self._registry, self._inbox, reported_ids=self._reported_rows)
        except RegistryError as error:
            logger.error("cannot reconcile unmoved rows: %s", error)

    def collect(self) -> list[WriteResult]:
        """Return the results of the finished batches, oldest first, without waiting."""
        results = []
        while self._pending and self._pending[0][1].done():
            batch, future = self._pending.popleft()
            results.append(_result(batch, future))
        return results

    def close(self) -> list[WriteResult]:
        """Finish every submitted job, stop the thread and return the remaining results."""
        self._executor.shutdown(wait=True)
        results = [_result(batch, future) for batch, future in self._pending]
        self._pending.clear()
        return results


def _result(batch: ClassifiedBatch, future: Future) -> WriteResult:
    error = future.exception()
    if error is not None:
        return WriteResult(batch.paths, None, error)
    return WriteResult(batch.paths, future.result(), None)
