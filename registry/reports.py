"""Read-only views built for the CLI: version summaries and details, comparisons, verification."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from registry import lookups
from registry.checksums import find_problem
from registry.convert import to_alias_change, to_artifact_file, to_metric, to_model_version
from registry.database import Database
from registry.orm import SqlAliasChange, SqlMetric, SqlModelVersion, SqlRegisteredModel
from registry.textpaths import decode_path
from registry.types import (
    ArtifactCheck,
    MetricComparison,
    VersionDetails,
    VersionSummary,
)
from registry.versions import _sorted_files, _sorted_metrics, _version_rows

# The headline metric of `sortbox models list`: (split, name) as the trainer stores it.
KEY_METRIC = ("validation", "accuracy")


class ReportsMixin:
    """Methods of `Registry` that combine several tables into one result for a command."""

    _db: Database
    resolve_model_name: Callable[[str | None], str]

    def list_version_summaries(self, model_name: str | None = None) -> list[VersionSummary]:
        """List versions (of one model, or all) with their validation accuracy."""
        with self._db.session_scope(write=False) as session:
            rows = _version_rows(session, model_name)
            accuracy = _key_metric_by_version(session, [row.id for row in rows])
            return [
                VersionSummary(version=to_model_version(row), validation_accuracy=accuracy.get(row.id))
                for row in rows
            ]

    def describe_version(self, model_name: str | None, version: int) -> VersionDetails:
        """Return a version with its metrics, files and the alias moves that involved it."""
        model_name = self.resolve_model_name(model_name)
        with self._db.session_scope(write=False) as session:
            row = lookups.version_row(session, model_name, version)
            history = session.scalars(
                sa.select(SqlAliasChange)
                .where(
                    sa.or_(
                        SqlAliasChange.new_version_id == row.id,
                        SqlAliasChange.previous_version_id == row.id,
                    )
                )
                .order_by(SqlAliasChange.id)
                .options(
                    selectinload(SqlAliasChange.model),
                    selectinload(SqlAliasChange.previous_version),
                    selectinload(SqlAliasChange.new_version),
                )
            )
            return VersionDetails(
                version=to_model_version(row),
                metrics=tuple(to_metric(metric) for metric in _sorted_metrics(row.metrics)),
                files=tuple(to_artifact_file(file) for file in _sorted_files(row.files)),
                alias_history=tuple(to_alias_change(change) for change in history),
            )

    def compare_versions(
        self, model_name: str | None, version_a: int, version_b: int
    ) -> list[MetricComparison]:
        """Pair the summary metrics (no epoch) of two versions, per class too.

        Metrics present in only one version appear with None for the other.
        """
        model_name = self.resolve_model_name(model_name)
        with self._db.session_scope(write=False) as session:
            row_a = lookups.version_row(session, model_name, version_a)
            row_b = lookups.version_row(session, model_name, version_b)
            values_a = _summary_metrics(row_a.metrics)
            values_b = _summary_metrics(row_b.metrics)

        keys = sorted(
            set(values_a) | set(values_b),
            key=lambda key: (key[0], key[2] is not None, key[1], key[2] or ""),
        )
        return [
            MetricComparison(
                split=split,
                name=name,
                class_name=class_name,
                value_a=values_a.get((split, name, class_name)),
                value_b=values_b.get((split, name, class_name)),
            )
            for split, name, class_name in keys
        ]

    def verify_artifacts(self, model_name: str | None = None) -> list[ArtifactCheck]:
        """Check every stored file (of one model, or all) against its size and sha256."""
        with self._db.session_scope(write=False) as session:
            statement = (
                sa.select(SqlModelVersion)
                .join(SqlModelVersion.model)
                .order_by(SqlRegisteredModel.name, SqlModelVersion.version)
                .options(selectinload(SqlModelVersion.model), selectinload(SqlModelVersion.files))
            )
            if model_name is not None:
                model = lookups.model_row(session, model_name)
                statement = statement.where(SqlModelVersion.model_id == model.id)
            recorded = [
                (row.model.name, row.version, file.kind, decode_path(file.path), file.sha256, file.size)
                for row in session.scalars(statement)
                for file in _sorted_files(row.files)
            ]

        # Hash outside the transaction: large files take seconds and need no database.
        return [
            ArtifactCheck(
                model_name=name,
                version=version,
                kind=kind,
                path=path,
                problem=find_problem(path, sha256, size),
            )
            for name, version, kind, path, sha256, size in recorded
        ]


def _key_metric_by_version(session, version_ids: list[int]) -> dict[int, float]:
    """Return the summary KEY_METRIC per version, or the best epoch's value without a summary."""
    if not version_ids:
        return {}
    split, name = KEY_METRIC
    rows = session.execute(
        sa.select(SqlMetric.version_id, SqlMetric.epoch, SqlMetric.value).where(
            SqlMetric.version_id.in_(version_ids),
            SqlMetric.split == split,
            SqlMetric.name == name,
            SqlMetric.class_name.is_(None),
        )
    )
    summary: dict[int, float] = {}
    best_epoch: dict[int, float] = {}
    for version_id, epoch, value in rows:
        if epoch is None:
            summary[version_id] = value
        else:
            best_epoch[version_id] = max(value, best_epoch.get(version_id, value))
    return {**best_epoch, **summary}


def _summary_metrics(metrics: list[SqlMetric]) -> dict[tuple[str, str, str | None], float]:
    return {
        (metric.split, metric.name, metric.class_name): metric.value
        for metric in metrics
        if metric.epoch is None
    }
