"""Progress of a watch run: counts for the caller, a log line per batch, the heartbeat row."""

from __future__ import annotations

import logging
import os
import queue
import socket
from collections import Counter
from dataclasses import dataclass, field

from daemon.config import WatchSettings
from daemon.models import ServingModel
from daemon.pipeline import BatchOutcome
from daemon.status import (
    STATE_INBOX_MISSING,
    STATE_KEY,
    STATE_RUNNING,
    STATE_STOPPED,
    STOP_REASON_KEY,
)
from registry.errors import RegistryError

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """Counts of a run.

    `stop_reason` is "done", "idle", "interrupted", "terminated", "stopped" or "error".
    """

    stop_reason: str = "stopped"
    batches: int = 0
    statuses: Counter = field(default_factory=Counter)
    skipped: int = 0

    @property
    def files(self) -> int:
        return sum(self.statuses.values())


def record_batch(summary: RunSummary, outcome: BatchOutcome, progress: queue.Queue | None) -> None:
    """Count a written batch in `summary`, log it and put it on the `progress` queue if given."""
    if outcome.batch_id is None:
        return
    summary.batches += 1
    statuses = Counter(row.status.value for row in outcome.rows)
    summary.statuses.update(statuses)
    logger.info(
        "batch %s: %d files with %s (%s); decode %.0f ms (summed over threads), inference "
        "%.0f ms, database %.0f ms, move %.0f ms",
        outcome.batch_id,
        len(outcome.rows),
        outcome.model_label,
        ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())),
        outcome.decode_ms,
        outcome.inference_ms,
        outcome.database_ms,
        outcome.move_ms,
    )
    if progress is not None:
        progress.put(outcome)


def write_heartbeat(
    registry,
    daemon_id: str,
    settings: WatchSettings,
    serving: ServingModel | None,
    *,
    backlog: int,
    inbox_missing: bool,
    stop_reason: str | None = None,
) -> None:
    """Write the heartbeat row; the last one of a run records the clean stop and its reason.

    The state travels in the settings JSON under keys that no setting uses, because the
    heartbeat row has no column for it. A registry error is logged, not raised.

    Args:
        stop_reason: The run's stop reason for its last heartbeat; None while it runs.
    """
    if stop_reason is not None:
        state = {STATE_KEY: STATE_STOPPED, STOP_REASON_KEY: stop_reason}
    else:
        state = {STATE_KEY: STATE_INBOX_MISSING if inbox_missing else STATE_RUNNING}
    try:
        registry.heartbeat(
            daemon_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            model_version_id=serving.version.id if serving is not None else None,
            backlog=backlog,
            settings={**settings.to_dict(), **state},
        )
    except RegistryError as error:
        logger.error("cannot write the heartbeat: %s", error)
