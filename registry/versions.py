"""Registered models and their versions: registration, look-ups, tags and archiving."""

from __future__ import annotations

import getpass
import logging
import math
import os
from importlib import metadata
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from registry import lookups
from registry.checksums import sha256_file
from registry.convert import to_artifact_file, to_metric, to_model_version, to_registered_model
from registry.database import Database
from registry.errors import ArtifactError, ConflictError, InvalidValueError, NotFoundError
from registry.orm import (
    SqlAlias,
    SqlArtifactFile,
    SqlMetric,
    SqlModelTag,
    SqlModelVersion,
    SqlRegisteredModel,
    SqlVersionTag,
)
from registry.textpaths import encode_path
from registry.types import (
    DEFAULT_MODEL_NAME,
    ArtifactFile,
    MetricValue,
    ModelVersion,
    NewVersion,
    RegisteredModel,
    VersionStatus,
)

logger = logging.getLogger(__name__)

MODEL_FILE_KIND = "model"

# Attempts at numbering a new version when another process registers the same model at once.
_REGISTER_ATTEMPTS = 5


def current_user() -> str | None:
    """Return the login name for alias history, or None where the platform cannot tell."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


class VersionsMixin:
    """Methods of `Registry` that create and read registered models and versions."""

    _db: Database

    def resolve_model_name(self, name: str | None = None) -> str:
        """Return `name`, or the model a command means when it names none.

        Without a name: the only registered model, or DEFAULT_MODEL_NAME when none exists yet.

        Raises:
            InvalidValueError: No name was given and several models are registered.
        """
        if name is not None:
            return lookups.check_model_name(name)
        with self._db.session_scope(write=False) as session:
            names = lookups.model_names(session)
        if not names:
            return DEFAULT_MODEL_NAME
        if len(names) == 1:
            return names[0]
        raise InvalidValueError(
            f"several models are registered ({', '.join(names)}); name the one you mean"
        )

    def register_version(self, new: NewVersion) -> ModelVersion:
        """Record a trained model as the next version of its registered model.

        The registered model is created on its first version. The artifact and every extra file
        must exist: the registry stores their absolute paths, sha256 and size, so later changes to
        the files are detected.

        Raises:
            InvalidValueError: A name, size, class list or metric is invalid.
            ArtifactError: The artifact or an extra file is missing.
            NotFoundError: `parent_version` does not exist.
        """
        _validate_new_version(new)
        files = [(MODEL_FILE_KIND, new.artifact_path), *new.extra_files]
        recorded = [_record_file(kind, path) for kind, path in files]

        for attempt in range(1, _REGISTER_ATTEMPTS + 1):
            try:
                with self._db.session_scope() as session:
                    return _insert_version(session, new, recorded)
            except sa.exc.IntegrityError:
                # Another process took the same version number or created the model first.
                if attempt == _REGISTER_ATTEMPTS:
                    raise
                logger.info("version number of %s taken concurrently; retrying", new.model_name)
        raise AssertionError("unreachable")

    def get_version(self, model_name: str, version: int) -> ModelVersion:
        """Return one version. Raises NotFoundError naming the versions that exist."""
        with self._db.session_scope(write=False) as session:
            return to_model_version(lookups.version_row(session, model_name, version))

    def get_version_by_id(self, version_id: int) -> ModelVersion:
        """Return a version by its database id, as predictions and batches refer to it."""
        with self._db.session_scope(write=False) as session:
            return to_model_version(lookups.version_row_by_id(session, version_id))

    def list_versions(self, model_name: str | None = None) -> list[ModelVersion]:
        """List versions ordered by model name and version; all models when `model_name` is None."""
        with self._db.session_scope(write=False) as session:
            return [to_model_version(row) for row in _version_rows(session, model_name)]

    def list_models(self) -> list[RegisteredModel]:
        """List registered models by name, with their version count, aliases and tags."""
        with self._db.session_scope(write=False) as session:
            rows = session.scalars(
                sa.select(SqlRegisteredModel)
                .order_by(SqlRegisteredModel.name)
                .options(
                    selectinload(SqlRegisteredModel.versions),
                    selectinload(SqlRegisteredModel.tags),
                    selectinload(SqlRegisteredModel.aliases).selectinload(SqlAlias.version),
                )
            )
            return [to_registered_model(row) for row in rows]

    def get_metrics(self, model_name: str, version: int) -> list[MetricValue]:
        """List a version's metrics: summaries first, then curves by epoch."""
        with self._db.session_scope(write=False) as session:
            row = lookups.version_row(session, model_name, version)
            return [to_metric(metric) for metric in _sorted_metrics(row.metrics)]

    def get_files(self, model_name: str, version: int) -> list[ArtifactFile]:
        """List a version's stored files, the model file first."""
        with self._db.session_scope(write=False) as session:
            row = lookups.version_row(session, model_name, version)
            return [to_artifact_file(file) for file in _sorted_files(row.files)]

    def set_version_tags(
        self,
        model_name: str | None,
        version: int,
        tags: dict[str, str],
        remove: tuple[str, ...] | list[str] = (),
    ) -> ModelVersion:
        """Set and remove tags on a version, in one transaction, and return the version.

        Raises:
            NotFoundError: A key in `remove` is not set; nothing changes.
        """
        model_name = self.resolve_model_name(model_name)
        for key in [*tags, *remove]:
            lookups.check_tag_key(key)
        with self._db.session_scope() as session:
            row = lookups.version_row(session, model_name, version)
            _apply_tags(
                session,
                row.tags,
                tags,
                remove,
                lambda key, value: SqlVersionTag(version_id=row.id, key=key, value=value),
                f"version {version} of model {model_name!r}",
            )
            session.flush()
            session.refresh(row, ["tags"])
            return to_model_version(row)

    def set_model_tags(
        self,
        model_name: str | None,
        tags: dict[str, str],
        remove: tuple[str, ...] | list[str] = (),
    ) -> RegisteredModel:
        """Set and remove tags on a registered model, in one transaction, and return it.

        Raises:
            NotFoundError: A key in `remove` is not set; nothing changes.
        """
        model_name = self.resolve_model_name(model_name)
        for key in [*tags, *remove]:
            lookups.check_tag_key(key)
        with self._db.session_scope() as session:
            row = lookups.model_row(session, model_name)
            _apply_tags(
                session,
                row.tags,
                tags,
                remove,
                lambda key, value: SqlModelTag(model_id=row.id, key=key, value=value),
                f"model {model_name!r}",
            )
            session.flush()
            session.refresh(row, ["tags"])
            return to_registered_model(row)

    def archive_version(self, model_name: str | None, version: int) -> ModelVersion:
        """Mark a version archived, so it can no longer be promoted.

        Raises:
            ConflictError: An alias points to the version; move the alias first.
        """
        model_name = self.resolve_model_name(model_name)
        with self._db.session_scope() as session:
            row = lookups.version_row(session, model_name, version)
            if row.aliases:
                names = ", ".join(sorted(alias.alias for alias in row.aliases))
                raise ConflictError(
                    f"version {version} of model {model_name!r} is the target of alias {names}; promote "
                    "another version to that alias before archiving this one"
                )
            row.status = VersionStatus.ARCHIVED
            logger.info("archived version %s of model %s", version, model_name)
            return to_model_version(row)


def _version_rows(session: Session, model_name: str | None) -> list[SqlModelVersion]:
    statement = (
        sa.select(SqlModelVersion)
        .join(SqlModelVersion.model)
        .order_by(SqlRegisteredModel.name, SqlModelVersion.version)
        .options(*lookups.VERSION_LOAD_OPTIONS)
    )
    if model_name is not None:
        statement = statement.where(SqlRegisteredModel.id == lookups.model_row(session, model_name).id)
    return list(session.scalars(statement))


def _sorted_metrics(metrics: list[SqlMetric]) -> list[SqlMetric]:
    def key(metric: SqlMetric):
        return (
            metric.epoch is not None,
            metric.epoch or 0,
            metric.split,
            metric.name,
            metric.class_name is not None,
            metric.class_name or "",
        )

    return sorted(metrics, key=key)


def _sorted_files(files: list[SqlArtifactFile]) -> list[SqlArtifactFile]:
    return sorted(files, key=lambda file: (file.kind != MODEL_FILE_KIND, file.kind, file.id))


def _apply_tags(
    session: Session, rows: list, tags: dict[str, str], remove, make_row, target: str
) -> None:
    by_key = {row.key: row for row in rows}
    missing = [key for key in remove if key not in by_key]
    if missing:
        existing = ", ".join(sorted(by_key)) or "none"
        raise NotFoundError(
            f"{target} has no tag {', '.join(repr(key) for key in missing)}, so nothing was "
            f"changed; its tags are: {existing}"
        )
    for key in remove:
        session.delete(by_key.pop(key))
    session.flush()
    for key, value in tags.items():
        if key in by_key:
            by_key[key].value = str(value)
        else:
            session.add(make_row(key, str(value)))


def _validate_new_version(new: NewVersion) -> None:
    lookups.check_model_name(new.model_name)

    class_names = list(new.class_names)
    if not class_names or not all(isinstance(name, str) and name for name in class_names):
        raise InvalidValueError(
            f"invalid class names {class_names!r}: give at least one non-empty name"
        )
    if len(set(class_names)) != len(class_names):
        raise InvalidValueError(f"class names {class_names!r} contain duplicates")

    if len(new.image_size) != 2 or not all(
        isinstance(side, int) and side > 0 for side in new.image_size
    ):
        raise InvalidValueError(
            f"invalid image size {new.image_size!r}: give (height, width) as positive integers"
        )

    for label, value in (("backbone", new.backbone), ("preprocessing", new.preprocessing)):
        if not value:
            raise InvalidValueError(f"{label} is empty; name the {label} the model was built with")

    for metric in new.metrics:
        if not math.isfinite(metric.value):
            raise InvalidValueError(
                f"metric {metric.split}/{metric.name} has the non-finite value {metric.value!r}; "
                "leave it out or store a finite number"
            )

    for label, moment in (
        ("training_started_at", new.training_started_at),
        ("training_finished_at", new.training_finished_at),
    ):
        if moment is not None and moment.tzinfo is None:
            raise InvalidValueError(f"{label} {moment!r} has no time zone; give an aware datetime")


def _record_file(kind: str, path: str | os.PathLike[str]) -> tuple[str, str, str, int]:
    file = Path(path).expanduser().absolute()
    if not file.is_file():
        raise ArtifactError(
            f"{kind} file {os.fspath(file)!r} not found; register a version only after its files "
            "are written"
        )
    return kind, os.fspath(file), sha256_file(file), file.stat().st_size


def _insert_version(
    session: Session, new: NewVersion, recorded: list[tuple[str, str, str, int]]
) -> ModelVersion:
    model = session.scalar(
        sa.select(SqlRegisteredModel).where(SqlRegisteredModel.name == new.model_name)
    )
    if model is None:
        model = SqlRegisteredModel(name=new.model_name)
        session.add(model)
        session.flush()

    parent_id = None
    if new.parent_version is not None:
        parent_id = lookups.version_row(session, new.model_name, new.parent_version).id

    highest = session.scalar(
        sa.select(sa.func.max(SqlModelVersion.version)).where(SqlModelVersion.model_id == model.id)
    )
    _kind, artifact_path, artifact_sha256, artifact_size = recorded[0]
    row = SqlModelVersion(
        model_id=model.id,
        version=(highest or 0) + 1,
        artifact_uri=encode_path(artifact_path),
        artifact_sha256=artifact_sha256,
        artifact_size=artifact_size,
        backbone=new.backbone,
        image_height=new.image_size[0],
        image_width=new.image_size[1],
        class_names=list(new.class_names),
        preprocessing=new.preprocessing,
        hyperparameters=dict(new.hyperparameters),
        dataset_fingerprint=new.dataset_fingerprint,
        training_started_at=new.training_started_at,
        training_finished_at=new.training_finished_at,
        training_seconds=_duration(new),
        software_versions=_software_versions(new.software_versions),
        parent_id=parent_id,
        status=VersionStatus(new.status),
        description=new.description,
    )
    row.files = [
        SqlArtifactFile(kind=kind, path=encode_path(path), sha256=sha256, size=size)
        for kind, path, sha256, size in recorded
    ]
    row.metrics = [
        SqlMetric(
            split=metric.split,
            name=metric.name,
            value=float(metric.value),
            epoch=metric.epoch,
            class_name=metric.class_name,
        )
        for metric in new.metrics
    ]
    row.tags = [SqlVersionTag(key=lookups.check_tag_key(key), value=str(value)) for key, value in new.tags.items()]
    session.add(row)
    session.flush()
    session.refresh(row)

    logger.info("registered version %s of model %s from %s", row.version, model.name, artifact_path)
    return to_model_version(row)


def _duration(new: NewVersion) -> float | None:
    if new.training_started_at is None or new.training_finished_at is None:
        return None
    return (new.training_finished_at - new.training_started_at).total_seconds()


def _software_versions(given: dict[str, str]) -> dict[str, str]:
    versions = {str(key): str(value) for key, value in given.items()}
    if "sortbox" not in versions:
        try:
            versions["sortbox"] = metadata.version("sortbox")
        except metadata.PackageNotFoundError:
            pass
    return versions
