"""Finish the moves that a crash or an error interrupted, using the unmoved prediction rows.

Each unmoved row names its source, its destination and the sha256 of its content. The file system
then shows which step of the batch protocol was reached:

- destination exists, source gone: the move finished, only the mark is missing;
- destination exists and is the same file (hard link) or has the row's content, source still
  there: the link or copy finished, so the source is removed;
- destination missing, source there with the row's content: the move never started, so it runs;
- anything else (both gone, or a different file at either path) is logged and left alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from daemon.mover import file_sha256, move_noreplace, partial_path, sync_folder
from registry.types import Prediction

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """Row ids by what reconciliation did with them."""

    moved: list[int] = field(default_factory=list)
    marked: list[int] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return len(self.moved) + len(self.marked)


def _content_matches(path: Path, sha256: str) -> bool:
    try:
        return file_sha256(path) == sha256
    except OSError:
        return False


def _is_inside(path: str, folder: Path) -> bool:
    return Path(path).is_relative_to(folder)


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def reconcile_row(row: Prediction) -> tuple[str, str | None]:
    """Bring one unmoved row's file to its destination if the protocol allows it.

    Returns:
        ("moved", None) when the file was moved now, ("marked", None) when only the mark was
        missing, or ("unresolved", reason) when the row must stay unmoved.
    """
    source = Path(row.source_path)
    destination = Path(row.destination_path)

    # A copy that a crash interrupted is never the destination itself, so it can go.
    partial = partial_path(destination)
    if os.path.lexists(partial):
        os.unlink(partial)

    source_exists = os.path.lexists(source)
    destination_exists = os.path.lexists(destination)

    if destination_exists and not source_exists:
        return "marked", None

    if destination_exists and source_exists:
        if _same_file(source, destination) or _content_matches(destination, row.content_sha256):
            os.unlink(source)
            sync_folder(source.parent)
            return "marked", None
        return "unresolved", (
            f"{destination} exists with other content than {source}; both files stay in place"
        )

    if source_exists:
        if not _content_matches(source, row.content_sha256):
            return "unresolved", (
                f"{source} now holds other content than when it was classified; it is "
                "processed as a new file"
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        move_noreplace(source, destination)
        sync_folder(destination.parent)
        return "moved", None

    # TODO: the registry has no call to close such a row (or to give it a new destination
    # after a foreign file took its name), so it stays unmoved and is checked at every start.
    return "unresolved", (
        f"neither {source} nor {destination} exists; the file was removed before it was moved"
    )


def reconcile_unmoved(
    registry, inbox: Path, *, reported_ids: set[int] | None = None
) -> ReconcileReport:
    """Reconcile every unmoved row whose source lies in `inbox`, then mark the finished ones.

    Rows from other inboxes belong to other daemons, whose batches may be in progress.

    Args:
        registry: The opened registry.
        inbox: The resolved inbox folder.
        reported_ids: Ids of unresolved rows already logged; they are checked again but logged
            only once. Updated in place.
    """
    report = ReconcileReport()
    for row in registry.unmoved_predictions():
        if not _is_inside(row.source_path, inbox):
            continue
        try:
            result, reason = reconcile_row(row)
        except OSError as error:
            result, reason = "unresolved", f"cannot finish the move of {row.source_path}: {error}"
        if result == "unresolved":
            if reported_ids is None or row.id not in reported_ids:
                logger.warning("unmoved row %s: %s", row.id, reason)
            if reported_ids is not None:
                reported_ids.add(row.id)
        getattr(report, result).append(row.id)

    done = report.moved + report.marked
    if done:
        registry.mark_moved(done)
    if done:
        logger.info(
            "reconciled unmoved rows: %d moved, %d marked, %d unresolved",
            len(report.moved),
            len(report.marked),
            len(report.unresolved),
        )
    return report
