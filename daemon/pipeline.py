"""One batch from files to rows and moves, in the order that makes every file count once.

Exactly-once protocol, per batch:

1. Hash every file (its identity is the content sha256) and decode it (`prepare_file`, on the
   decode threads, so it overlaps the previous batch's inference).
2. Classify (`BatchProcessor.classify`, on the service thread), then, on the one writer thread
   (`BatchProcessor.record`), look up earlier rows of the same content again and choose each
   file's destination name without creating it.
3. Commit one prediction row per file with that destination and `moved_at` NULL.
4. Move each file to its destination (hard link, then unlink the source).
5. Flush the touched folders and mark the moved rows.

Steps 2 (from the second lookup) to 5 of batch N run on the writer thread while batch N+1 goes
through the model. Batches are written one at a time and in order, so the second lookup sees
every row of the batches classified before, and content seen in batch N is a duplicate in
batch N+1.

A kill at any instant leaves each file in one of three states. In the inbox without a row, it
is processed again after a restart. With an unmoved row, in the inbox or at its destination,
start-up reconciliation finishes the move or the mark. At its destination with a moved row, it
is done.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daemon.config import DuplicatePolicy, WatchSettings
from daemon.decode import PreparedFile
from daemon.errors import UnsafeCategoryError
from daemon.models import ServingModel
from daemon.mover import DestinationPlanner, move_noreplace, sync_folder
from registry.types import NewPrediction, Prediction, PredictionStatus

logger = logging.getLogger(__name__)

TOP_K = 3


@dataclass
class BatchOutcome:
    """Result of one batch, for the log and for callers that wait on progress."""

    batch_id: str | None
    model_label: str
    rows: list[Prediction] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    decode_ms: float = 0.0
    inference_ms: float = 0.0
    database_ms: float = 0.0
    move_ms: float = 0.0

    def count(self, status: PredictionStatus) -> int:
        return sum(1 for row in self.rows if row.status is status)


@dataclass
class ClassifiedBatch:
    """A batch after inference, waiting for the writer thread to record and move it."""

    paths: list[str]
    outcome: BatchOutcome
    plans: list["_Plan"]
    model_version_id: int

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class _Plan:
    prepared: PreparedFile
    status: PredictionStatus
    category: str | None = None
    confidence: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    duplicate_of: int | None = None
    model_version_id: int | None = None
    copies_plan: "_Plan | None" = None
    inference_ms: float | None = None
    row: Prediction | None = None
    destination: Path | None = None


class BatchProcessor:
    """Classify prepared files, write their rows and move them, following the module protocol.

    `classify` runs on the service thread and `record` on the writer thread; the planner is used
    by `record` only.

    Args:
        registry: The opened registry; it may be shared by threads.
        settings: Validated watch settings.
        planner: Destination planner of the output folder.
    """

    def __init__(self, registry, settings: WatchSettings, planner: DestinationPlanner):
        self._registry = registry
        self._settings = settings
        self._planner = planner

    def _is_review(self, confidence: float) -> bool:
        threshold = self._settings.review_below
        return threshold is not None and confidence < threshold

    def _earlier(self, sha256s: list[str], serving_version_id: int) -> dict[str, Prediction]:
        """Look up, in one query, the earlier row of each content that a duplicate may follow."""
        version_id = None if self._settings.duplicates is DuplicatePolicy.REUSE else serving_version_id
        found = self._registry.find_predictions_by_contents(sha256s, model_version_id=version_id)
        usable = {}
        for sha256, earlier in found.items():
            if earlier.category is None:
                continue
            try:
                self._planner.folder_for(earlier.category)
            except UnsafeCategoryError:
                continue
            usable[sha256] = earlier
        return usable

    def classify(self, prepared: list[PreparedFile], serving: ServingModel) -> ClassifiedBatch:
        """Run the first part of step 2: sort out unusable files, find duplicates and classify."""
        outcome = BatchOutcome(batch_id=None, model_label=serving.label)
        live = []
        for item in prepared:
            if item.vanished:
                logger.info("skipped %s: it disappeared before it was read", item.path)
                outcome.vanished.append(item.path)
            elif item.unreadable is not None:
                logger.error("skipped %s: cannot read it (%s)", item.path, item.unreadable)
                outcome.unreadable.append(item.path)
            else:
                live.append(item)
        outcome.decode_ms = sum(item.decode_ms for item in prepared)
        batch = ClassifiedBatch([item.path for item in prepared], outcome, [], serving.version.id)
        if not live:
            return batch

        started = time.perf_counter()
        batch.plans = self._plan(live, serving)
        outcome.database_ms += (time.perf_counter() - started) * 1000

        outcome.inference_ms = self._classify(batch.plans, serving)
        for item in prepared:
            item.pixels = None  # the writer queue should not hold decoded images
        return batch

    def record(self, batch: ClassifiedBatch) -> BatchOutcome:
        """Run the rest of step 2 and steps 3 to 5 for a classified batch."""
        outcome = batch.outcome
        plans = batch.plans
        if not plans:
            return outcome

        started = time.perf_counter()
        outcome.batch_id = self._registry.start_batch(batch.model_version_id, len(plans))
        logger.info("batch %s started: %d files with %s", outcome.batch_id, len(plans), outcome.model_label)
        self._recheck_duplicates(plans, batch.model_version_id)
        self._commit_rows(plans, outcome)
        outcome.database_ms += (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        moved_ids = self._move(plans, outcome)
        outcome.move_ms = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        if moved_ids:
            self._registry.mark_moved(moved_ids)
        self._registry.finish_batch(outcome.batch_id)
        outcome.database_ms += (time.perf_counter() - started) * 1000
        return outcome

    def _recheck_duplicates(self, plans: list[_Plan], serving_version_id: int) -> None:
        """Turn into duplicates the files whose content a batch written after their lookup holds."""
        candidates = [
            plan
            for plan in plans
            if plan.status in (PredictionStatus.CLASSIFIED, PredictionStatus.REVIEW)
            and plan.copies_plan is None
            and plan.duplicate_of is None
        ]
        if not candidates:
            return
        found = self._earlier([plan.prepared.sha256 for plan in candidates], serving_version_id)
        for plan in candidates:
            earlier = found.get(plan.prepared.sha256)
            if earlier is None:
                continue
            plan.status = PredictionStatus.DUPLICATE
            plan.duplicate_of = earlier.id
            if self._settings.duplicates is DuplicatePolicy.REUSE:
                plan.category = earlier.category
                plan.confidence = earlier.confidence
                plan.top_k = earlier.top_k
                plan.model_version_id = earlier.model_version_id

    def _plan(self, live: list[PreparedFile], serving: ServingModel) -> list[_Plan]:
        plans: list[_Plan] = []
        primaries: dict[str, _Plan] = {}
        found = self._earlier(
            [item.sha256 for item in live if item.error is None], serving.version.id
        )
        for item in live:
            if item.error is not None:
                plans.append(_Plan(item, PredictionStatus.FAILED))
                continue
            primary = primaries.get(item.sha256)
            if primary is not None:
                # Same content twice in one batch: the copy follows the first file's result.
                plans.append(_Plan(item, PredictionStatus.DUPLICATE, copies_plan=primary))
                continue
            earlier = found.get(item.sha256)
            if earlier is not None and self._settings.duplicates is DuplicatePolicy.REUSE:
                plan = _Plan(
                    item,
                    PredictionStatus.DUPLICATE,
                    category=earlier.category,
                    confidence=earlier.confidence,
                    top_k=earlier.top_k,
                    duplicate_of=earlier.id,
                    model_version_id=earlier.model_version_id,
                )
            else:
                plan = _Plan(item, PredictionStatus.CLASSIFIED, model_version_id=serving.version.id)
                if earlier is not None:
                    plan.duplicate_of = earlier.id
            primaries[item.sha256] = plan
            plans.append(plan)
        return plans

    def _classify(self, plans: list[_Plan], serving: ServingModel) -> float:
        from vision.inference import predict_batch

        to_run = [
            plan
            for plan in plans
            if plan.status is PredictionStatus.CLASSIFIED and plan.copies_plan is None
        ]
        if not to_run:
            return 0.0
        images = np.stack([plan.prepared.pixels for plan in to_run])

        started = time.perf_counter()
        results = predict_batch(serving.model, images, serving.version.class_names, top_k=TOP_K)
        elapsed_ms = (time.perf_counter() - started) * 1000

        share_ms = elapsed_ms / len(to_run)
        for plan, result in zip(to_run, results):
            plan.category = result.category
            plan.confidence = float(result.confidence)
            plan.top_k = tuple((name, float(value)) for name, value in result.top_k)
            plan.inference_ms = share_ms
            if plan.duplicate_of is not None:
                # Reclassified by the version that classified it before: record a duplicate.
                plan.status = PredictionStatus.DUPLICATE
            elif self._is_review(plan.confidence):
                plan.status = PredictionStatus.REVIEW
        return elapsed_ms

    def _destination(self, plan: _Plan) -> Path:
        name = os.path.basename(plan.prepared.path)
        if plan.status is PredictionStatus.FAILED:
            folder = self._planner.folder_for(None, failed=True)
        else:
            folder = self._planner.folder_for(
                plan.category, review=self._is_review(plan.confidence)
            )
        return self._planner.reserve(folder, name)

    def _new_row(self, plan: _Plan, batch_id: str) -> NewPrediction:
        prepared = plan.prepared
        return NewPrediction(
            content_sha256=prepared.sha256,
            file_name=os.path.basename(prepared.path),
            source_path=prepared.path,
            destination_path=os.fspath(plan.destination),
            status=plan.status,
            model_version_id=plan.model_version_id,
            category=plan.category,
            confidence=plan.confidence,
            top_k=plan.top_k,
            error=plan.prepared.error,
            batch_id=batch_id,
            decode_ms=prepared.decode_ms,
            inference_ms=plan.inference_ms,
            duplicate_of=plan.duplicate_of,
        )

    def _commit_rows(self, plans: list[_Plan], outcome: BatchOutcome) -> None:
        first = [plan for plan in plans if plan.copies_plan is None]
        copies = [plan for plan in plans if plan.copies_plan is not None]

        for plan in first:
            plan.destination = self._destination(plan)
        rows = self._registry.add_predictions([self._new_row(plan, outcome.batch_id) for plan in first])
        for plan, row in zip(first, rows):
            plan.row = row

        if copies:
            # The copies point at their first file's row, so they are written once its id exists.
            for plan in copies:
                source = plan.copies_plan
                plan.category = source.category
                plan.confidence = source.confidence
                plan.top_k = source.top_k
                plan.model_version_id = source.model_version_id
                plan.duplicate_of = source.duplicate_of or source.row.id
                plan.destination = self._destination(plan)
            rows = self._registry.add_predictions(
                [self._new_row(plan, outcome.batch_id) for plan in copies]
            )
            for plan, row in zip(copies, rows):
                plan.row = row
        outcome.rows = [plan.row for plan in plans]

    def _move(self, plans: list[_Plan], outcome: BatchOutcome) -> list[int]:
        moved_ids: list[int] = []
        folders: set[Path] = set()
        for plan in plans:
            source = Path(plan.prepared.path)
            try:
                move_noreplace(source, plan.destination)
            except FileNotFoundError:
                logger.warning(
                    "%s disappeared after its prediction row %s was written; the row stays "
                    "unmoved",
                    plan.prepared.path,
                    plan.row.id,
                )
                outcome.vanished.append(plan.prepared.path)
                continue
            except OSError as error:
                logger.error(
                    "cannot move %s to %s (row %s): %s; reconciliation retries it",
                    plan.prepared.path,
                    plan.destination,
                    plan.row.id,
                    error,
                )
                outcome.stuck.append(plan.prepared.path)
                continue
            self._planner.release(plan.destination)
            moved_ids.append(plan.row.id)
            outcome.moved.append(plan.prepared.path)
            folders.add(plan.destination.parent)
            folders.add(source.parent)
            if plan.status is PredictionStatus.FAILED:
                logger.warning(
                    "failed %s: %s; moved to %s", plan.prepared.path, plan.prepared.error, plan.destination
                )

        for folder in folders:
            sync_folder(folder)
        return moved_ids
