"""Turn a `PredictionFilter` into SQL, plus the file-name glob that SQL cannot express alone."""

from __future__ import annotations

from fnmatch import fnmatchcase

import sqlalchemy as sa

from registry.errors import InvalidValueError
from registry.orm import SqlModelVersion, SqlPrediction, SqlRegisteredModel
from registry.textpaths import ESCAPE_PREFIX, decode_path
from registry.types import PredictionFilter

_LIKE_ESCAPE = "\\"

PREDICTION_COLUMNS = (
    *SqlPrediction.__table__.columns,
    SqlRegisteredModel.name.label("model_name"),
    SqlModelVersion.version.label("model_version"),
)


def validate_filter(conditions: PredictionFilter) -> None:
    """Reject filter values that would silently match nothing or everything."""
    if conditions.limit is not None and conditions.limit < 0:
        raise InvalidValueError(f"invalid limit {conditions.limit}: give 0 or more rows")
    if conditions.confidence_below is not None and not 0 <= conditions.confidence_below <= 1:
        raise InvalidValueError(
            f"invalid confidence bound {conditions.confidence_below}: give a number from 0 to 1"
        )
    for label, moment in (("since", conditions.since), ("until", conditions.until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidValueError(f"{label} time {moment.isoformat()} has no time zone")
    if conditions.since and conditions.until and conditions.since == conditions.until:
        raise InvalidValueError(
            f"since and until are both {conditions.since.isoformat()}, so the time range is "
            "empty (until is excluded); give an until time after the since time"
        )
    if conditions.since and conditions.until and conditions.since > conditions.until:
        raise InvalidValueError(
            f"since {conditions.since.isoformat()} is not before until "
            f"{conditions.until.isoformat()}; swap them"
        )


def apply_filter(statement: sa.Select, conditions: PredictionFilter) -> sa.Select:
    """Add joins to the version and model and every WHERE condition of the filter.

    The file-name glob becomes a LIKE that selects a superset, because SQLite's LIKE ignores
    ASCII case and LIKE has no [...] sets. `matches_name` then applies the glob exactly.
    """
    statement = statement.select_from(SqlPrediction).outerjoin(
        SqlModelVersion, SqlPrediction.model_version_id == SqlModelVersion.id
    ).outerjoin(SqlRegisteredModel, SqlModelVersion.model_id == SqlRegisteredModel.id)

    if conditions.category is not None:
        statement = statement.where(SqlPrediction.category == conditions.category)
    if conditions.model_name is not None:
        statement = statement.where(SqlRegisteredModel.name == conditions.model_name)
    if conditions.model_version is not None:
        statement = statement.where(SqlModelVersion.version == conditions.model_version)
    if conditions.status is not None:
        statement = statement.where(SqlPrediction.status == conditions.status)
    if conditions.since is not None:
        statement = statement.where(SqlPrediction.created_at >= conditions.since)
    if conditions.until is not None:
        statement = statement.where(SqlPrediction.created_at < conditions.until)
    if conditions.confidence_below is not None:
        statement = statement.where(SqlPrediction.confidence < conditions.confidence_below)
    if conditions.name_glob is not None:
        statement = statement.where(
            sa.or_(
                SqlPrediction.file_name.like(glob_to_like(conditions.name_glob), escape=_LIKE_ESCAPE),
                # Escaped (non-UTF-8) names only match after decoding, in `matches_name`.
                SqlPrediction.file_name.like(ESCAPE_PREFIX + "%"),
            )
        )
    return statement


def order_and_limit(statement: sa.Select, conditions: PredictionFilter) -> sa.Select:
    """Order newest or oldest first; apply the limit in SQL unless a glob filters in Python."""
    if conditions.newest_first:
        statement = statement.order_by(SqlPrediction.created_at.desc(), SqlPrediction.id.desc())
    else:
        statement = statement.order_by(SqlPrediction.created_at, SqlPrediction.id)
    if conditions.limit is not None and conditions.name_glob is None:
        statement = statement.limit(conditions.limit)
    return statement


def matches_name(stored_file_name: str, conditions: PredictionFilter) -> bool:
    """Apply the file-name glob exactly (case-sensitive, like a POSIX shell)."""
    if conditions.name_glob is None:
        return True
    return fnmatchcase(decode_path(stored_file_name), conditions.name_glob)


def glob_to_like(glob: str) -> str:
    """Translate a shell glob into a LIKE pattern that matches at least the same names."""
    parts: list[str] = []
    index = 0
    while index < len(glob):
        char = glob[index]
        if char == "*":
            parts.append("%")
        elif char == "?":
            parts.append("_")
        elif char == "[" and (end := _bracket_end(glob, index)) is not None:
            parts.append("_")
            index = end
        elif char in "%_" + _LIKE_ESCAPE:
            parts.append(_LIKE_ESCAPE + char)
        else:
            parts.append(char)
        index += 1
    return "".join(parts)


def _bracket_end(glob: str, start: int) -> int | None:
    # fnmatch rules: a ']' right after '[' or '[!' is a literal member of the set.
    index = start + 1
    if index < len(glob) and glob[index] == "!":
        index += 1
    if index < len(glob) and glob[index] == "]":
        index += 1
    end = glob.find("]", index)
    return end if end != -1 else None
