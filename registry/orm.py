"""ORM mappings of the registry schema. Nothing outside `registry/` imports this module.

Every constraint gets its name from `NAMING_CONVENTION`, so Alembic migrations can refer to them
by name on SQLite (batch mode) and PostgreSQL alike. File names and paths are stored through
`registry.textpaths` and times through `UTCDateTime`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from registry.types import AliasAction, PredictionStatus, VersionStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zone type, so values are stored there as naive UTC and given back their
    UTC zone on load; PostgreSQL stores `timestamp with time zone`.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; give it a time zone")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _enum(enum_class: type, name: str) -> sa.Enum:
    # A VARCHAR with a named CHECK constraint rather than a native PostgreSQL enum, so adding a
    # member later is a constraint change instead of an ALTER TYPE.
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


class SqlRegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    versions: Mapped[list[SqlModelVersion]] = relationship(back_populates="model")
    tags: Mapped[list[SqlModelTag]] = relationship(cascade="all, delete-orphan")
    aliases: Mapped[list[SqlAlias]] = relationship(back_populates="model")


class SqlModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("registered_models.id"))
    version: Mapped[int]
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    artifact_sha256: Mapped[str] = mapped_column(sa.String(64))
    artifact_size: Mapped[int] = mapped_column(sa.BigInteger)
    backbone: Mapped[str] = mapped_column(sa.String(100))
    image_height: Mapped[int]
    image_width: Mapped[int]
    class_names: Mapped[list[str]] = mapped_column(sa.JSON)
    preprocessing: Mapped[str] = mapped_column(sa.String(100))
    hyperparameters: Mapped[dict[str, Any]]
    dataset_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    training_started_at: Mapped[datetime | None]
    training_finished_at: Mapped[datetime | None]
    training_seconds: Mapped[float | None]
    software_versions: Mapped[dict[str, Any]]
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_versions.id"))
    status: Mapped[VersionStatus] = mapped_column(_enum(VersionStatus, "version_status"))
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    model: Mapped[SqlRegisteredModel] = relationship(back_populates="versions")
    parent: Mapped[SqlModelVersion | None] = relationship(remote_side=[id])
    tags: Mapped[list[SqlVersionTag]] = relationship(cascade="all, delete-orphan")
    metrics: Mapped[list[SqlMetric]] = relationship(cascade="all, delete-orphan")
    files: Mapped[list[SqlArtifactFile]] = relationship(cascade="all, delete-orphan")
    aliases: Mapped[list[SqlAlias]] = relationship(back_populates="version")


class SqlArtifactFile(Base):
    __tablename__ = "artifact_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("model_versions.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(50))
    path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)


class SqlMetric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("model_versions.id"), index=True)
    split: Mapped[str] = mapped_column(sa.String(50))
    name: Mapped[str] = mapped_column(sa.String(100))
    value: Mapped[float] = mapped_column(sa.Float)
    epoch: Mapped[int | None]
    class_name: Mapped[str | None] = mapped_column(sa.String(200))


class SqlModelTag(Base):
    __tablename__ = "model_tags"
    __table_args__ = (sa.UniqueConstraint("model_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("registered_models.id"))
    key: Mapped[str] = mapped_column(sa.String(250))
    value: Mapped[str] = mapped_column(sa.Text)


class SqlVersionTag(Base):
    __tablename__ = "version_tags"
    __table_args__ = (sa.UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("model_versions.id"))
    key: Mapped[str] = mapped_column(sa.String(250))
    value: Mapped[str] = mapped_column(sa.Text)


class SqlAlias(Base):
    """The current holder of one alias; `alias_history` keeps every earlier holder."""

    __tablename__ = "aliases"
    __table_args__ = (sa.UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(sa.String(100))
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("model_versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    model: Mapped[SqlRegisteredModel] = relationship(back_populates="aliases")
    version: Mapped[SqlModelVersion] = relationship(back_populates="aliases")


class SqlAliasChange(Base):
    """Append-only log of alias moves; rows are never updated or deleted."""

    __tablename__ = "alias_history"
    __table_args__ = (sa.Index("ix_alias_history_model_id_alias", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[AliasAction] = mapped_column(_enum(AliasAction, "alias_action"))
    previous_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_versions.id"))
    new_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_versions.id"))
    changed_at: Mapped[datetime] = mapped_column(default=utc_now)
    user: Mapped[str | None] = mapped_column(sa.String(200))
    reason: Mapped[str | None] = mapped_column(sa.Text)

    model: Mapped[SqlRegisteredModel] = relationship()
    previous_version: Mapped[SqlModelVersion | None] = relationship(
        foreign_keys=[previous_version_id]
    )
    new_version: Mapped[SqlModelVersion | None] = relationship(foreign_keys=[new_version_id])


class SqlBatch(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_versions.id"))
    size: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None]


class SqlPrediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        # At most one `classified` row per content and model version, so a file the daemon receives
        # twice (a retry after a crash, a copy) is never sorted twice by the same model.
        sa.Index(
            "uq_predictions_classified_content",
            "content_sha256",
            "model_version_id",
            unique=True,
            sqlite_where=sa.text("status = 'classified'"),
            postgresql_where=sa.text("status = 'classified'"),
        ),
        # Start-up reconciliation looks only for rows whose file has not been moved yet.
        sa.Index(
            "ix_predictions_unmoved",
            "id",
            sqlite_where=sa.text("moved_at IS NULL"),
            postgresql_where=sa.text("moved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    content_sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    file_name: Mapped[str] = mapped_column(sa.Text)
    source_path: Mapped[str] = mapped_column(sa.Text)
    destination_path: Mapped[str] = mapped_column(sa.Text)
    model_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("model_versions.id"), index=True
    )
    category: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    confidence: Mapped[float | None]
    top_k: Mapped[list[Any]] = mapped_column(sa.JSON)
    status: Mapped[PredictionStatus] = mapped_column(
        _enum(PredictionStatus, "prediction_status"), index=True
    )
    error: Mapped[str | None] = mapped_column(sa.Text)
    batch_id: Mapped[str | None] = mapped_column(sa.ForeignKey("batches.id"), index=True)
    decode_ms: Mapped[float | None]
    inference_ms: Mapped[float | None]
    duplicate_of: Mapped[int | None] = mapped_column(sa.ForeignKey("predictions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    moved_at: Mapped[datetime | None]

    model_version: Mapped[SqlModelVersion | None] = relationship()


class SqlDaemonHeartbeat(Base):
    __tablename__ = "daemon_heartbeats"

    daemon_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    pid: Mapped[int]
    host: Mapped[str] = mapped_column(sa.String(255))
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    model_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_versions.id"))
    backlog: Mapped[int]
    settings: Mapped[dict[str, Any]]
