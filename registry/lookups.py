"""Row look-ups and name checks shared by the registry's public methods."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from registry.errors import InvalidValueError, NotFoundError
from registry.orm import SqlAlias, SqlModelVersion, SqlRegisteredModel

# Names appear in paths (artifacts/<name>) and on the command line next to version numbers, so
# they are restricted to a portable set and may not be all digits.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ALIAS_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,99}")
TAG_KEY_MAX_LENGTH = 250

# Loads everything `convert.to_model_version` reads, in a fixed number of queries.
VERSION_LOAD_OPTIONS = (
    selectinload(SqlModelVersion.model),
    selectinload(SqlModelVersion.parent),
    selectinload(SqlModelVersion.aliases),
    selectinload(SqlModelVersion.tags),
)


def check_model_name(name: str) -> str:
    """Return `name` when it can name a registered model, else raise InvalidValueError."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name) or name.isdigit():
        raise InvalidValueError(
            f"invalid model name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit and not all digits"
        )
    return name


def check_alias(alias: str) -> str:
    """Return `alias` when it can name an alias, else raise InvalidValueError."""
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidValueError(
            f"invalid alias {alias!r}: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    return alias


def check_tag_key(key: str) -> str:
    """Return `key` when it can be a tag key, else raise InvalidValueError."""
    if not key or "=" in key or len(key) > TAG_KEY_MAX_LENGTH or key != key.strip():
        raise InvalidValueError(
            f"invalid tag key {key!r}: use 1 to {TAG_KEY_MAX_LENGTH} characters without '=' "
            "and without surrounding spaces"
        )
    return key


def model_names(session: Session) -> list[str]:
    return list(session.scalars(sa.select(SqlRegisteredModel.name).order_by(SqlRegisteredModel.name)))


def model_row(session: Session, name: str) -> SqlRegisteredModel:
    """Return the registered model called `name`, or raise NotFoundError listing the names."""
    row = session.scalar(sa.select(SqlRegisteredModel).where(SqlRegisteredModel.name == name))
    if row is not None:
        return row
    names = model_names(session)
    known = ", ".join(names) if names else "none yet; train one with `sortbox train`"
    raise NotFoundError(f"model {name!r} not found; registered models: {known}")


def version_row(session: Session, name: str, version: int) -> SqlModelVersion:
    """Return one version of a model, or raise NotFoundError listing the versions there are."""
    model = model_row(session, name)
    row = session.scalar(
        sa.select(SqlModelVersion)
        .where(SqlModelVersion.model_id == model.id, SqlModelVersion.version == version)
        .options(*VERSION_LOAD_OPTIONS)
    )
    if row is not None:
        return row
    numbers = session.scalars(
        sa.select(SqlModelVersion.version)
        .where(SqlModelVersion.model_id == model.id)
        .order_by(SqlModelVersion.version)
    ).all()
    known = ", ".join(str(number) for number in numbers) if numbers else "none"
    raise NotFoundError(
        f"model {name!r} has no version {version}; its versions are {known}; "
        "run `sortbox models list` to see them"
    )


def version_row_by_id(session: Session, version_id: int) -> SqlModelVersion:
    row = session.scalar(
        sa.select(SqlModelVersion)
        .where(SqlModelVersion.id == version_id)
        .options(*VERSION_LOAD_OPTIONS)
    )
    if row is None:
        raise NotFoundError(
            f"model version id {version_id} not found; run `sortbox models list` to see versions"
        )
    return row


def alias_row(session: Session, model: SqlRegisteredModel, alias: str) -> SqlAlias | None:
    return session.scalar(
        sa.select(SqlAlias).where(SqlAlias.model_id == model.id, SqlAlias.alias == alias)
    )
