"""Turn ORM rows into the frozen dataclasses that leave the registry."""

from __future__ import annotations

from registry.orm import (
    SqlAliasChange,
    SqlArtifactFile,
    SqlDaemonHeartbeat,
    SqlMetric,
    SqlModelVersion,
    SqlPrediction,
    SqlRegisteredModel,
)
from registry.textpaths import decode_path
from registry.types import (
    AliasChange,
    ArtifactFile,
    DaemonHeartbeat,
    MetricValue,
    ModelVersion,
    Prediction,
    RegisteredModel,
)


def to_model_version(row: SqlModelVersion) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        model_name=row.model.name,
        version=row.version,
        artifact_uri=decode_path(row.artifact_uri),
        artifact_sha256=row.artifact_sha256,
        artifact_size=row.artifact_size,
        class_names=tuple(row.class_names),
        backbone=row.backbone,
        image_size=(row.image_height, row.image_width),
        preprocessing=row.preprocessing,
        hyperparameters=dict(row.hyperparameters),
        dataset_fingerprint=row.dataset_fingerprint,
        training_started_at=row.training_started_at,
        training_finished_at=row.training_finished_at,
        training_seconds=row.training_seconds,
        software_versions=dict(row.software_versions),
        parent_version=row.parent.version if row.parent is not None else None,
        status=row.status,
        created_at=row.created_at,
        aliases=tuple(sorted(alias.alias for alias in row.aliases)),
        tags={tag.key: tag.value for tag in row.tags},
        description=row.description,
    )


def to_registered_model(row: SqlRegisteredModel) -> RegisteredModel:
    return RegisteredModel(
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        version_count=len(row.versions),
        aliases={alias.alias: alias.version.version for alias in row.aliases},
        tags={tag.key: tag.value for tag in row.tags},
    )


def to_metric(row: SqlMetric) -> MetricValue:
    return MetricValue(
        split=row.split,
        name=row.name,
        value=row.value,
        epoch=row.epoch,
        class_name=row.class_name,
    )


def to_artifact_file(row: SqlArtifactFile) -> ArtifactFile:
    return ArtifactFile(kind=row.kind, path=decode_path(row.path), sha256=row.sha256, size=row.size)


def to_alias_change(row: SqlAliasChange) -> AliasChange:
    return AliasChange(
        model_name=row.model.name,
        alias=row.alias,
        previous_version=row.previous_version.version if row.previous_version else None,
        new_version=row.new_version.version if row.new_version else None,
        changed_at=row.changed_at,
        user=row.user,
        reason=row.reason,
        action=row.action,
    )


def to_prediction(
    row: SqlPrediction, model_name: str | None, model_version: int | None
) -> Prediction:
    """Convert a prediction row; the caller passes the version's name and number it joined."""
    return Prediction(
        id=row.id,
        content_sha256=row.content_sha256,
        file_name=decode_path(row.file_name),
        source_path=decode_path(row.source_path),
        destination_path=decode_path(row.destination_path),
        status=row.status,
        model_name=model_name,
        model_version=model_version,
        model_version_id=row.model_version_id,
        category=row.category,
        confidence=row.confidence,
        top_k=tuple((str(category), float(probability)) for category, probability in row.top_k),
        error=row.error,
        batch_id=row.batch_id,
        decode_ms=row.decode_ms,
        inference_ms=row.inference_ms,
        duplicate_of=row.duplicate_of,
        created_at=row.created_at,
        moved_at=row.moved_at,
    )


def to_heartbeat(row: SqlDaemonHeartbeat) -> DaemonHeartbeat:
    return DaemonHeartbeat(
        daemon_id=row.daemon_id,
        pid=row.pid,
        host=row.host,
        started_at=row.started_at,
        last_seen_at=row.last_seen_at,
        model_version_id=row.model_version_id,
        backlog=row.backlog,
        settings=dict(row.settings),
    )
