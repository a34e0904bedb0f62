"""Prediction rows, batches and daemon heartbeats: the daemon's side of the registry.

The daemon moves each file exactly once with this protocol: `add_predictions` commits the rows
with their chosen destination and `moved_at` NULL, the daemon moves the files, then `mark_moved`
sets `moved_at`. After a crash, `unmoved_predictions` lists the rows whose move may not have
happened, so start-up can finish or redo them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from registry import filters, lookups
from registry.convert import to_heartbeat, to_prediction
from registry.database import Database
from registry.errors import ConflictError, InvalidValueError, NotFoundError
from registry.orm import SqlBatch, SqlDaemonHeartbeat, SqlPrediction, utc_now
from registry.textpaths import encode_path
from registry.types import (
    DaemonHeartbeat,
    NewPrediction,
    Prediction,
    PredictionFilter,
    PredictionStatus,
)

logger = logging.getLogger(__name__)

# Rows fetched per round trip while streaming; bounds memory at any table size.
STREAM_CHUNK_ROWS = 1000

# Ids per UPDATE ... WHERE id IN (...); SQLite allows 32766 bound parameters per statement.
_ID_CHUNK = 500

_MATCHING_STATUSES = (PredictionStatus.CLASSIFIED, PredictionStatus.REVIEW)


class PredictionsMixin:
    """Methods of `Registry` for predictions, batches and heartbeats.

    `resolve_model_name` comes from VersionsMixin.
    """

    _db: Database
    resolve_model_name: Callable[[str | None], str]

    def start_batch(self, model_version_id: int | None, size: int) -> str:
        """Record the start of a batch of `size` files and return its new id."""
        if size < 0:
            raise InvalidValueError(f"invalid batch size {size}: give 0 or more files")
        batch_id = uuid.uuid4().hex
        with self._db.session_scope() as session:
            session.add(SqlBatch(id=batch_id, model_version_id=model_version_id, size=size))
        return batch_id

    def finish_batch(self, batch_id: str) -> None:
        """Record the end time of a batch."""
        with self._db.session_scope() as session:
            batch = session.get(SqlBatch, batch_id)
            if batch is None:
                raise NotFoundError(f"batch {batch_id!r} not found; start it with start_batch")
            batch.finished_at = utc_now()

    def add_predictions(self, rows: list[NewPrediction]) -> list[Prediction]:
        """Insert prediction rows in one transaction, with `moved_at` NULL, and return them.

        Raises:
            ConflictError: A row would be a second `classified` row for the same content and
                model version; the daemon should store it as a duplicate instead.
        """
        if not rows:
            return []
        for row in rows:
            _validate_new_prediction(row)
        try:
            with self._db.session_scope() as session:
                created = [_prediction_row(row) for row in rows]
                session.add_all(created)
                session.flush()
                ids = [row.id for row in created]
        except sa.exc.IntegrityError as error:
            raise ConflictError(
                f"could not store {len(rows)} predictions: {error.orig}; a file with the same "
                "content was already classified by this model version, so store it as a duplicate"
            ) from error
        return self._predictions_by_id(ids)

    def mark_moved(self, prediction_ids: Iterable[int]) -> None:
        """Set `moved_at` on predictions whose file reached its destination."""
        ids = list(prediction_ids)
        now = utc_now()
        with self._db.session_scope() as session:
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                session.execute(
                    sa.update(SqlPrediction)
                    .where(SqlPrediction.id.in_(chunk), SqlPrediction.moved_at.is_(None))
                    .values(moved_at=now)
                )

    def unmoved_predictions(self) -> list[Prediction]:
        """List predictions whose file has not been confirmed at its destination, oldest first."""
        statement = filters.apply_filter(sa.select(*filters.PREDICTION_COLUMNS), PredictionFilter())
        statement = statement.where(SqlPrediction.moved_at.is_(None)).order_by(SqlPrediction.id)
        with self._db.session_scope(write=False) as session:
            return [_to_prediction(row) for row in session.execute(statement)]

    def find_prediction_by_content(
        self, content_sha256: str, model_version_id: int | None = None
    ) -> Prediction | None:
        """Return the earliest classified or review row for this content, or None.

        Args:
            content_sha256: Hex sha256 of the file's bytes.
            model_version_id: Only rows of this model version. Defaults to any version.
        """
        statement = filters.apply_filter(sa.select(*filters.PREDICTION_COLUMNS), PredictionFilter())
        statement = statement.where(
            SqlPrediction.content_sha256 == content_sha256,
            SqlPrediction.status.in_(_MATCHING_STATUSES),
        )
        if model_version_id is not None:
            statement = statement.where(SqlPrediction.model_version_id == model_version_id)
        statement = statement.order_by(SqlPrediction.id).limit(1)
        with self._db.session_scope(write=False) as session:
            row = session.execute(statement).first()
            return _to_prediction(row) if row is not None else None

    def find_predictions_by_contents(
        self, content_sha256s: Iterable[str], model_version_id: int | None = None
    ) -> dict[str, Prediction]:
        """Return the earliest classified or review row of each content that has one.

        The batched form of `find_prediction_by_content`: one query per `_ID_CHUNK` hashes.

        Args:
            content_sha256s: Hex sha256 values; repeats are looked up once.
            model_version_id: Only rows of this model version. Defaults to any version.

        Returns:
            A dict from content sha256 to its earliest row; contents without a row are absent.
        """
        wanted = sorted(set(content_sha256s))
        found: dict[str, Prediction] = {}
        with self._db.session_scope(write=False) as session:
            for start in range(0, len(wanted), _ID_CHUNK):
                statement = filters.apply_filter(
                    sa.select(*filters.PREDICTION_COLUMNS), PredictionFilter()
                )
                statement = statement.where(
                    SqlPrediction.content_sha256.in_(wanted[start : start + _ID_CHUNK]),
                    SqlPrediction.status.in_(_MATCHING_STATUSES),
                )
                if model_version_id is not None:
                    statement = statement.where(SqlPrediction.model_version_id == model_version_id)
                for row in session.execute(statement.order_by(SqlPrediction.id)):
                    prediction = _to_prediction(row)
                    found.setdefault(prediction.content_sha256, prediction)
        return found

    def get_prediction(self, prediction_id: int) -> Prediction:
        """Return one prediction by id. Raises NotFoundError."""
        found = self._predictions_by_id([prediction_id])
        if not found:
            raise NotFoundError(
                f"prediction {prediction_id} not found; run `sortbox predictions list` to see ids"
            )
        return found[0]

    def query_predictions(self, conditions: PredictionFilter) -> Iterator[Prediction]:
        """Yield the predictions that match `conditions`, streaming in chunks.

        Memory stays constant at any table size: rows are fetched STREAM_CHUNK_ROWS at a time
        (a server-side cursor on PostgreSQL). The read transaction stays open until the iterator
        is exhausted or closed, so close it (or use it in a `for` loop) promptly.
        """
        conditions = self._resolve_filter(conditions)
        statement = filters.apply_filter(sa.select(*filters.PREDICTION_COLUMNS), conditions)
        statement = filters.order_and_limit(statement, conditions)
        return self._stream(statement, conditions)

    def _stream(self, statement: sa.Select, conditions: PredictionFilter) -> Iterator[Prediction]:
        emitted = 0
        if conditions.limit == 0:
            return
        with self._db.session_scope(write=False) as session:
            result = session.execute(statement.execution_options(yield_per=STREAM_CHUNK_ROWS))
            for row in result:
                if not filters.matches_name(row.file_name, conditions):
                    continue
                yield _to_prediction(row)
                emitted += 1
                if conditions.limit is not None and emitted >= conditions.limit:
                    break
            result.close()

    def _resolve_filter(self, conditions: PredictionFilter) -> PredictionFilter:
        """Validate the filter and check that its model and version exist.

        Raises:
            InvalidValueError: A filter value is invalid.
            NotFoundError: The model or version is not registered, so the filter could only
                match nothing; the message lists the names or versions there are.
        """
        filters.validate_filter(conditions)
        if conditions.model_version is not None and conditions.model_name is None:
            # A version number alone means that version of the model commands default to.
            name = self.resolve_model_name(None)
            conditions = dataclasses.replace(conditions, model_name=name)
        if conditions.model_name is not None:
            with self._db.session_scope(write=False) as session:
                if conditions.model_version is None:
                    lookups.model_row(session, conditions.model_name)
                else:
                    lookups.version_row(session, conditions.model_name, conditions.model_version)
        return conditions

    def _predictions_by_id(self, ids: list[int]) -> list[Prediction]:
        statement = filters.apply_filter(sa.select(*filters.PREDICTION_COLUMNS), PredictionFilter())
        statement = statement.where(SqlPrediction.id.in_(ids)).order_by(SqlPrediction.id)
        with self._db.session_scope(write=False) as session:
            return [_to_prediction(row) for row in session.execute(statement)]

    def heartbeat(
        self,
        daemon_id: str,
        *,
        pid: int,
        host: str,
        model_version_id: int | None,
        backlog: int,
        settings: dict[str, Any],
    ) -> None:
        """Record that a daemon is alive; a new pid for the same id restarts `started_at`.

        `settings` is stored as JSON; values JSON cannot hold (paths, for example) become strings.
        """
        stored_settings = json.loads(json.dumps(settings, default=str))
        now = utc_now()
        with self._db.session_scope() as session:
            row = session.get(SqlDaemonHeartbeat, daemon_id)
            if row is None:
                row = SqlDaemonHeartbeat(daemon_id=daemon_id, started_at=now)
                session.add(row)
            elif row.pid != pid or row.host != host:
                row.started_at = now
            row.pid = pid
            row.host = host
            row.last_seen_at = now
            row.model_version_id = model_version_id
            row.backlog = backlog
            row.settings = stored_settings

    def list_heartbeats(self) -> list[DaemonHeartbeat]:
        """List every daemon's last heartbeat, most recently seen first."""
        with self._db.session_scope(write=False) as session:
            rows = session.scalars(
                sa.select(SqlDaemonHeartbeat).order_by(SqlDaemonHeartbeat.last_seen_at.desc())
            )
            return [to_heartbeat(row) for row in rows]


def _validate_new_prediction(row: NewPrediction) -> None:
    status = PredictionStatus(row.status)
    if status in _MATCHING_STATUSES and (row.model_version_id is None or row.category is None):
        raise InvalidValueError(
            f"{status.value} prediction for {row.file_name!r} needs a model version and a category"
        )
    if row.confidence is not None and not 0 <= row.confidence <= 1:
        raise InvalidValueError(
            f"confidence {row.confidence} for {row.file_name!r} is outside 0..1"
        )


def _prediction_row(row: NewPrediction) -> SqlPrediction:
    return SqlPrediction(
        content_sha256=row.content_sha256,
        file_name=encode_path(row.file_name),
        source_path=encode_path(row.source_path),
        destination_path=encode_path(row.destination_path),
        model_version_id=row.model_version_id,
        category=row.category,
        confidence=row.confidence,
        top_k=[[str(category), float(probability)] for category, probability in row.top_k],
        status=PredictionStatus(row.status),
        error=row.error,
        batch_id=row.batch_id,
        decode_ms=row.decode_ms,
        inference_ms=row.inference_ms,
        duplicate_of=row.duplicate_of,
    )


def _to_prediction(row: sa.Row) -> Prediction:
    return to_prediction(row, row.model_name, row.model_version)
