"""The watch loop: events in, settled files batched, batches classified, moved and recorded.

Threads: the watchdog observer only queues paths; a pool of decode threads hashes and decodes
the next batches; the thread that calls `WatchService.run()` settles files, forms batches and
runs the model; one writer thread (`daemon.writer`) writes rows, moves files and reconciles
unmoved rows. So batch N+2 decodes while batch N+1 runs through the model and batch N is written
and moved.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections import deque
from contextlib import ExitStack
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from daemon.batcher import Batcher
from daemon.config import WatchSettings
from daemon.errors import ModelUnavailableError
from daemon.inbox import WatchedInbox
from daemon.intake import Arrival, InboxEventHandler, SettleTracker, scan_inbox
from daemon.locks import FolderLock
from daemon.models import ModelHolder, ServingModel
from daemon.mover import DestinationPlanner
from daemon.decode import DecodingBatch, prepare_file, submit_batch
from daemon.pipeline import BatchProcessor
from daemon.progress import RunSummary, record_batch, write_heartbeat
from daemon.reconcile import reconcile_unmoved
from daemon.writer import BatchWriter, WriteResult
from registry.errors import RegistryError

logger = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT = 2
# Classified batches held for the writer thread: the one it writes and the next one.
MAX_BATCHES_TO_WRITE = 2
# Maximum sleep of the loop, so stop requests and deadlines are noticed without an event.
MAX_SLEEP_SECONDS = 0.25
# After a scan stopped early because the settle tracker was full, the next one runs this soon.
FULL_TRACKER_RESCAN_SECONDS = 1.0
# After a batch failed on a database or file-system error, its files are retried this soon.
FAILED_BATCH_RETRY_SECONDS = 5.0
# Interval of the check that the inbox folder still exists and is the one locked.
INBOX_CHECK_SECONDS = 1.0


class WatchService:
    """Run `sortbox watch` until stopped; see the module docstring for the threads.

    Args:
        settings: Validated settings.
        registry: The opened registry.
        progress: Optional queue that receives each BatchOutcome, for callers that wait on work.
        clock: Monotonic time in seconds.
    """

    def __init__(
        self,
        settings: WatchSettings,
        registry,
        *,
        progress: queue.Queue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._registry = registry
        self._progress = progress
        self._clock = clock
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._model_check_requested = threading.Event()
        self._rescan_requested = threading.Event()
        self._events: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._daemon_id = uuid.uuid4().hex
        self.summary = RunSummary()
        # Set once the observer runs and the start-up scan is done: from then on no new file is
        # missed and every writer's close event is seen.
        self.started = threading.Event()

        self._tracker = SettleTracker(
            settings.settle_ms / 1000,
            close_timeout_seconds=settings.close_timeout_seconds,
            # Only inotify reports close-after-write; the polling observer cannot.
            expects_close_events=not settings.polling and sys.platform.startswith("linux"),
            clock=clock,
        )
        self._batcher: Batcher[str] = Batcher(
            settings.max_batch_size, settings.max_wait_ms / 1000, clock=clock
        )
        self._planner = DestinationPlanner(settings.output)
        self._processor = BatchProcessor(registry, settings, self._planner)
        self._holder = ModelHolder(registry, registry.resolve_model_name(settings.model_name))
        self._in_flight: deque[DecodingBatch] = deque()
        self._claimed: set[str] = set()
        # Paths skipped until an event shows they changed: symbolic links, unreadable files.
        self._ignored: set[str] = set()
        # Paths whose row is written but whose move failed; only reconciliation may touch them,
        # because processing them again would write a second row.
        self._stuck: set[str] = set()
        self._next_rescan = 0.0
        self._reported_rows: set[int] = set()
        self._writer: BatchWriter | None = None
        self._handler = InboxEventHandler(self._events, self._rescan_requested, self._wake)
        self._inbox = WatchedInbox(
            settings.inbox,
            self._handler,
            polling=settings.polling,
            recursive=settings.recursive,
            clock=clock,
        )

    def stop(self, reason: str = "stopped") -> None:
        """Ask the loop to stop after the batch in hand; safe from signal handlers and threads."""
        if not self._stop_requested.is_set():
            self.summary.stop_reason = reason
            self._stop_requested.set()
        self._wake.set()

    def request_model_check(self) -> None:
        """Check the alias now and retry a version that failed to load (SIGHUP)."""
        self._model_check_requested.set()
        self._wake.set()

    @property
    def inbox_missing(self) -> bool:
        """True while the inbox folder is deleted and no new folder exists at its path."""
        return self._inbox.missing_since is not None

    def backlog(self) -> int:
        """Files known in the inbox and not yet written: settling, waiting or decoding."""
        in_flight = sum(len(batch.paths) for batch in self._in_flight)
        to_write = self._writer.pending_files() if self._writer is not None else 0
        return len(self._tracker) + len(self._batcher) + in_flight + to_write + self._events.qsize()

    def run(self) -> RunSummary:
        """Run until stopped, or until the inbox is done with `once`/`exit_when_idle`.

        Raises:
            InboxLockedError: another daemon holds the inbox or output folder.
            ModelUnavailableError: with `once`, when no model can be served.
        """
        settings = self.settings
        with ExitStack() as locks:
            self._inbox.lock()
            locks.callback(self._inbox.close)
            output_lock = FolderLock(settings.output, "output folder")
            output_lock.acquire()
            locks.callback(output_lock.release)

            logger.info("watch starting (daemon %s): %s", self._daemon_id, settings.to_dict())
            reconcile_unmoved(self._registry, settings.inbox, reported_ids=self._reported_rows)
            if self._holder.load_now() is None and settings.once:
                self._holder.close()
                raise ModelUnavailableError(
                    f"the production alias of model {self._holder.model_name!r} points to no "
                    "version that loads; promote one with `sortbox models promote VERSION` and "
                    "run again"
                )

            decoder = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="decode")
            self._writer = BatchWriter(
                self._processor,
                self._registry,
                settings.inbox,
                self._reported_rows,
                self._wake,
                MAX_BATCHES_TO_WRITE,
            )
            self._inbox.start()
            try:
                self._loop(decoder)
            except Exception:
                self.summary.stop_reason = "error"
                raise
            finally:
                self._inbox.stop_observer()
                decoder.shutdown(wait=True, cancel_futures=True)
                # Classified batches are written and moved before the service stops.
                for result in self._writer.close():
                    self._apply(result)
                self._holder.close()
                if self._handler.dropped:
                    logger.warning(
                        "the event queue was full %d times; rescans found those files",
                        self._handler.dropped,
                    )
                self._heartbeat(stopped=True)
            logger.info(
                "watch stopped (%s): %d files in %d batches, %s",
                self.summary.stop_reason,
                self.summary.files,
                self.summary.batches,
                dict(self.summary.statuses),
            )
        return self.summary

    def _loop(self, decoder: ThreadPoolExecutor) -> None:
        settings = self.settings
        now = self._clock()
        self._next_rescan = now  # the start-up scan
        next_model_poll = now + settings.model_poll_seconds
        next_heartbeat = now
        next_inbox_check = now + INBOX_CHECK_SECONDS
        idle_since: float | None = None

        while not self._stop_requested.is_set():
            self._wake.clear()
            now = self._clock()

            if self._model_check_requested.is_set() or now >= next_model_poll:
                force = self._model_check_requested.is_set()
                self._model_check_requested.clear()
                self._holder.poll(force=force)
                next_model_poll = now + settings.model_poll_seconds
            had_model = self._holder.current is not None
            if self._holder.swap_if_ready() is not None and not had_model:
                self._next_rescan = now  # files left waiting for a model
            serving = self._holder.current

            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + settings.heartbeat_seconds

            if now >= next_inbox_check:
                if self._inbox.check():
                    # Paths skipped in the old folder may name new files in this one.
                    self._ignored.clear()
                    self._next_rescan = now
                next_inbox_check = now + INBOX_CHECK_SECONDS

            self._drain_events()
            if self._rescan_requested.is_set() or now >= self._next_rescan:
                self._rescan_requested.clear()
                _, complete = self._rescan(serving)
                interval = settings.rescan_seconds if complete else FULL_TRACKER_RESCAN_SECONDS
                self._next_rescan = now + interval
                self.started.set()

            ready, rejected = self._tracker.poll()
            for item in rejected:
                logger.warning("skipped %s: %s", item.path, item.reason)
                self._ignored.add(item.path)
                self.summary.skipped += 1
            for path in ready:
                if serving is None:
                    continue  # found again by the rescan after a model is promoted
                self._claimed.add(path)
                self._batcher.add(path)

            while serving is not None and len(self._in_flight) < MAX_BATCHES_IN_FLIGHT:
                paths = self._batcher.take()
                if not paths:
                    break
                self._in_flight.append(
                    submit_batch(decoder, paths, serving.input_size, settings.max_pixels, self._wake.set)
                )

            for result in self._writer.collect():
                self._apply(result)
            if self._in_flight and self._in_flight[0].done() and self._writer.has_room():
                self._classify(self._in_flight.popleft(), serving, decoder)
                continue

            idle = self.backlog() == 0 and not self._rescan_requested.is_set()
            if not idle:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            if idle and settings.once:
                added, _ = self._rescan(serving)
                if added == 0 and self.backlog() == 0:
                    self.stop("done")
                    break
                continue
            if idle and settings.exit_when_idle is not None and now - idle_since >= settings.exit_when_idle:
                self.stop("idle")
                break

            self._sleep(now, self._next_rescan, next_model_poll, next_heartbeat, next_inbox_check)

    def _sleep(self, now: float, *deadlines: float) -> None:
        candidates = list(deadlines)
        for deadline in (self._tracker.next_check(), self._batcher.deadline()):
            if deadline is not None:
                candidates.append(deadline)
        timeout = min(max(min(candidates) - now, 0.0), MAX_SLEEP_SECONDS)
        if timeout > 0:
            self._wake.wait(timeout)

    def _drain_events(self) -> None:
        for _ in range(self.settings.queue_size):
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event.path in self._claimed or event.path in self._stuck:
                continue
            self._ignored.discard(event.path)
            self._tracker.observe(event.path, event.arrival)

    def _rescan(self, serving: ServingModel | None) -> tuple[int, bool]:
        """Retry unmoved rows and scan the inbox for files no event announced.

        Returns:
            The number of files found, and False when the scan stopped early because the settle
            tracker was full.
        """
        self._writer.submit_reconcile()
        # A stuck path that reconciliation moved away may be reused by a new file. The
        # reconciliation just queued runs on the writer thread, so its moves count at the next scan.
        self._stuck = {path for path in self._stuck if os.path.lexists(path)}
        if serving is None:
            return 0, True

        added = 0
        for path in scan_inbox(self.settings.inbox, recursive=self.settings.recursive):
            if (
                path in self._claimed
                or path in self._tracker
                or path in self._ignored
                or path in self._stuck
            ):
                continue
            if len(self._tracker) >= self.settings.queue_size:
                return added, False
            self._tracker.observe(path, Arrival.SCAN)
            added += 1
        if added:
            logger.debug("scan found %d files", added)
        return added, True

    def _classify(self, batch: DecodingBatch, serving: ServingModel, decoder: ThreadPoolExecutor) -> None:
        prepared = [future.result() for future in batch.futures]
        if serving.input_size != batch.size:
            # The model was swapped for one with another input size while this batch decoded.
            max_pixels = self.settings.max_pixels
            prepared = list(
                decoder.map(lambda path: prepare_file(path, serving.input_size, max_pixels), batch.paths)
            )

        try:
            classified = self._processor.classify(prepared, serving)
        except (RegistryError, OSError) as error:
            self._apply(WriteResult(batch.paths, None, error))
            return
        self._writer.submit(classified)

    def _apply(self, result: WriteResult) -> None:
        """Release a finished batch's paths and count it; runs on the service thread."""
        self._claimed.difference_update(result.paths)
        if result.error is not None:
            if not isinstance(result.error, (RegistryError, OSError)):
                raise result.error
            logger.error(
                "batch of %d files failed: %s; its files stay in the inbox and are retried",
                len(result.paths),
                result.error,
            )
            self._next_rescan = min(self._next_rescan, self._clock() + FAILED_BATCH_RETRY_SECONDS)
            return
        self._stuck.update(result.outcome.stuck)
        self._ignored.update(result.outcome.unreadable)
        record_batch(self.summary, result.outcome, self._progress)

    def _heartbeat(self, *, stopped: bool = False) -> None:
        write_heartbeat(
            self._registry,
            self._daemon_id,
            self.settings,
            self._holder.current,
            backlog=self.backlog(),
            inbox_missing=self.inbox_missing,
            stop_reason=self.summary.stop_reason if stopped else None,
        )
