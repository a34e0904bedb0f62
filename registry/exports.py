"""Prediction exports (CSV, JSON Lines) and counts, both in constant memory at any table size.

Exports write to a binary stream: CSV as UTF-8, JSON Lines as ASCII with `\\uXXXX` escapes.
File names and paths appear in the form the database stores (see `registry.textpaths`): as they
are when they are valid UTF-8, else as `fsbytes:` plus their percent-encoded bytes, such as
`fsbytes:%FF.jpg`. So every export is valid UTF-8 and valid JSON, and no name is lost.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from registry import filters
from registry.database import Database
from registry.errors import InvalidValueError
from registry.orm import SqlModelVersion, SqlPrediction, SqlRegisteredModel
from registry.textpaths import encode_path
from registry.types import (
    Prediction,
    PredictionCount,
    PredictionFilter,
    PredictionStats,
    PredictionStatus,
)

EXPORT_FORMATS = ("csv", "jsonl")

EXPORT_FIELDS = (
    "id",
    "created_at",
    "file_name",
    "source_path",
    "destination_path",
    "status",
    "model_name",
    "model_version",
    "model_version_id",
    "category",
    "confidence",
    "top_k",
    "error",
    "batch_id",
    "decode_ms",
    "inference_ms",
    "duplicate_of",
    "content_sha256",
    "moved_at",
)

_PATH_FIELDS = frozenset({"file_name", "source_path", "destination_path"})


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    """Return a prediction as plain JSON-ready values in EXPORT_FIELDS order.

    Paths are in their stored text form, so a name that is not valid UTF-8 reads
    `fsbytes:<percent-encoded bytes>` and every value encodes as UTF-8.
    """
    record: dict[str, Any] = {}
    for name in EXPORT_FIELDS:
        value = getattr(prediction, name)
        if name in _PATH_FIELDS and value is not None:
            value = encode_path(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, PredictionStatus):
            value = value.value
        elif name == "top_k":
            value = [[category, probability] for category, probability in value]
        record[name] = value
    return record


def write_csv(predictions: Iterator[Prediction], stream: BinaryIO) -> int:
    """Write a header and one CSV row per prediction; return the number of rows."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(EXPORT_FIELDS)
    count = 0
    try:
        for prediction in predictions:
            record = prediction_record(prediction)
            record["top_k"] = json.dumps(record["top_k"])
            writer.writerow(["" if value is None else value for value in record.values()])
            count += 1
    finally:
        text.flush()
        # Leave the caller's stream open: the wrapper must not close it when collected.
        text.detach()
    return count


def write_jsonl(predictions: Iterator[Prediction], stream: BinaryIO) -> int:
    """Write one JSON object per line per prediction; return the number of lines."""
    count = 0
    for prediction in predictions:
        line = json.dumps(prediction_record(prediction), ensure_ascii=True)
        stream.write(line.encode("ascii") + b"\n")
        count += 1
    stream.flush()
    return count


_WRITERS: dict[str, Callable[[Iterator[Prediction], BinaryIO], int]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
}


class ExportsMixin:
    """Methods of `Registry` that export and count predictions.

    `query_predictions` and `_resolve_filter` come from PredictionsMixin.
    """

    _db: Database
    query_predictions: Callable[[PredictionFilter], Iterator[Prediction]]
    _resolve_filter: Callable[[PredictionFilter], PredictionFilter]

    def export_predictions(
        self, conditions: PredictionFilter, export_format: str, stream: BinaryIO
    ) -> int:
        """Stream the matching predictions to `stream` as CSV or JSON Lines; return the count.

        Args:
            conditions: Which predictions, in which order.
            export_format: "csv" or "jsonl".
            stream: A binary file object; it is flushed but not closed.
        """
        writer = _WRITERS.get(export_format)
        if writer is None:
            raise InvalidValueError(
                f"invalid export format {export_format!r}: use one of {', '.join(EXPORT_FORMATS)}"
            )
        predictions = self.query_predictions(conditions)
        try:
            return writer(predictions, stream)
        finally:
            predictions.close()

    def export_predictions_to_file(
        self, conditions: PredictionFilter, export_format: str, path: str | os.PathLike[str]
    ) -> int:
        """Write the matching predictions to the file `path`, replacing it only when complete.

        The rows go to a temporary file in the same folder, which is renamed over `path` at the
        end and deleted on any failure, so `path` never holds a partial export. An existing
        special file such as a named pipe or /dev/stdout is written in place instead.

        Raises:
            InvalidValueError: `path` is a folder, its folder is missing or not writable, or
                the format or a filter value is invalid.
        """
        target = Path(path).expanduser().absolute()
        _check_output_path(target, export_format)
        if export_format not in _WRITERS:
            raise InvalidValueError(
                f"invalid export format {export_format!r}: use one of {', '.join(EXPORT_FORMATS)}"
            )
        # Resolve the filter first: an unknown model must fail before any file is created.
        self._resolve_filter(conditions)

        # A device, pipe or socket (/dev/stdout, a named pipe) is written in place: renaming a
        # temporary file over it would replace the special file itself.
        if target.exists() and not target.is_file():
            with open(target, "wb") as stream:
                return self.export_predictions(conditions, export_format, stream)

        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            # os.open rather than mkstemp, so the file gets the usual umask permissions.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as error:
            raise InvalidValueError(
                f"cannot write to folder '{target.parent}': {error.strerror}; give an --output "
                "path in a writable folder"
            ) from error
        try:
            with os.fdopen(descriptor, "wb") as stream:
                count = self.export_predictions(conditions, export_format, stream)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return count

    def prediction_stats(self, conditions: PredictionFilter) -> PredictionStats:
        """Count the matching predictions per model version and category, and per UTC hour.

        The counts run in SQL; with a file-name glob they are made while streaming the rows,
        because only Python applies the glob exactly.
        """
        conditions = self._resolve_filter(conditions)
        if conditions.name_glob is not None or conditions.limit is not None:
            return _count_streamed(self.query_predictions(conditions))
        with self._db.session_scope(write=False) as session:
            return _count_in_sql(session, conditions, self._db.engine.dialect.name)


def _check_output_path(target: Path, export_format: str) -> None:
    if target.is_dir():
        raise InvalidValueError(
            f"output path '{target}' is a folder; give a file name such as "
            f"'{target / ('predictions.' + export_format)}'"
        )
    if not target.parent.is_dir():
        raise InvalidValueError(
            f"the folder of output path '{target}' does not exist; create '{target.parent}' "
            "first or choose another path"
        )


def _count_in_sql(session, conditions: PredictionFilter, dialect: str) -> PredictionStats:
    group_columns = (
        SqlRegisteredModel.name,
        SqlModelVersion.version,
        SqlPrediction.category,
        SqlPrediction.status,
    )
    by_category_statement = filters.apply_filter(
        sa.select(*group_columns, sa.func.count()), conditions
    ).group_by(*group_columns)
    by_category = [
        PredictionCount(
            count=count,
            model_name=name,
            model_version=version,
            category=category,
            status=PredictionStatus(status),
        )
        for name, version, category, status, count in session.execute(by_category_statement)
    ]

    hour = _hour_expression(dialect).label("hour")
    by_hour_statement = (
        filters.apply_filter(sa.select(hour, sa.func.count()), conditions)
        .group_by(hour)
        .order_by(hour)
    )
    by_hour = [
        PredictionCount(count=count, hour=_parse_hour(value))
        for value, count in session.execute(by_hour_statement)
    ]
    return _stats(by_category, by_hour)


def _hour_expression(dialect: str):
    if dialect == "sqlite":
        # UTCDateTime stores naive UTC text on SQLite.
        return sa.func.strftime("%Y-%m-%dT%H:00:00", SqlPrediction.created_at)
    if dialect == "postgresql":
        return sa.func.to_char(
            sa.func.timezone("UTC", SqlPrediction.created_at), 'YYYY-MM-DD"T"HH24:00:00'
        )
    raise InvalidValueError(
        f"hourly counts are not implemented for the {dialect!r} database; use SQLite or PostgreSQL"
    )


def _parse_hour(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def _count_streamed(predictions: Iterator[Prediction]) -> PredictionStats:
    by_category: Counter = Counter()
    by_hour: Counter = Counter()
    for prediction in predictions:
        by_category[
            (prediction.model_name, prediction.model_version, prediction.category, prediction.status)
        ] += 1
        by_hour[prediction.created_at.replace(minute=0, second=0, microsecond=0)] += 1
    return _stats(
        [
            PredictionCount(
                count=count,
                model_name=name,
                model_version=version,
                category=category,
                status=PredictionStatus(status),
            )
            for (name, version, category, status), count in by_category.items()
        ],
        [PredictionCount(count=count, hour=hour) for hour, count in sorted(by_hour.items())],
    )


def _stats(by_category: list[PredictionCount], by_hour: list[PredictionCount]) -> PredictionStats:
    def category_key(item: PredictionCount):
        return (
            item.model_name or "",
            item.model_version or 0,
            item.category or "",
            item.status.value if item.status else "",
        )

    return PredictionStats(
        total=sum(item.count for item in by_category),
        by_category=tuple(sorted(by_category, key=category_key)),
        by_hour=tuple(by_hour),
    )
