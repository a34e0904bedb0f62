"""Create the registry schema: models, versions, metrics, aliases and predictions.

sortbox had no released schema before this revision, so it creates every table at once.

Revision ID: 0001
Revises:
Create Date: 2026-12-04 21:40:36.246331
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    # VARCHAR plus a named CHECK constraint, the same on SQLite and PostgreSQL.
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_models")),
        sa.UniqueConstraint("name", name=op.f("uq_registered_models_name")),
    )
    op.create_table(
        "model_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_model_tags_model_id_registered_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_tags")),
        sa.UniqueConstraint("model_id", "key", name=op.f("uq_model_tags_model_id_key")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("backbone", sa.String(length=100), nullable=False),
        sa.Column("image_height", sa.Integer(), nullable=False),
        sa.Column("image_width", sa.Integer(), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("preprocessing", sa.String(length=100), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("dataset_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("training_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("training_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("training_seconds", sa.Double(), nullable=True),
        sa.Column("software_versions", sa.JSON(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            _enum("version_status", "ready", "failed", "archived", "interrupted"),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_model_versions_model_id_registered_models"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["model_versions.id"],
            name=op.f("fk_model_versions_parent_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_versions_model_id_version")),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column(
            "action",
            _enum("alias_action", "set", "rollback", "unset"),
            nullable=False,
        ),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column("new_version_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_alias_history_model_id_registered_models"),
        ),
        sa.ForeignKeyConstraint(
            ["new_version_id"],
            ["model_versions.id"],
            name=op.f("fk_alias_history_new_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["model_versions.id"],
            name=op.f("fk_alias_history_previous_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_history")),
    )
    op.create_index(
        "ix_alias_history_model_id_alias",
        "alias_history",
        ["model_id", "alias", "id"],
        unique=False,
    )
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_aliases_model_id_registered_models"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_aliases_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliases")),
        sa.UniqueConstraint("model_id", "alias", name=op.f("uq_aliases_model_id_alias")),
    )
    op.create_index(op.f("ix_aliases_version_id"), "aliases", ["version_id"], unique=False)
    op.create_table(
        "artifact_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_artifact_files_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_files")),
    )
    op.create_index(
        op.f("ix_artifact_files_version_id"),
        "artifact_files",
        ["version_id"],
        unique=False,
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_batches_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_table(
        "daemon_heartbeats",
        sa.Column("daemon_id", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("backlog", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_daemon_heartbeats_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("daemon_id", name=op.f("pk_daemon_heartbeats")),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("class_name", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_metrics_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics")),
    )
    op.create_index(op.f("ix_metrics_version_id"), "metrics", ["version_id"], unique=False)
    op.create_table(
        "version_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_version_tags_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_tags")),
        sa.UniqueConstraint("version_id", "key", name=op.f("uq_version_tags_version_id_key")),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("destination_path", sa.Text(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("top_k", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            _enum("prediction_status", "classified", "review", "failed", "duplicate"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("decode_ms", sa.Double(), nullable=True),
        sa.Column("inference_ms", sa.Double(), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_predictions_batch_id_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of"],
            ["predictions.id"],
            name=op.f("fk_predictions_duplicate_of_predictions"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(op.f("ix_predictions_batch_id"), "predictions", ["batch_id"], unique=False)
    op.create_index(op.f("ix_predictions_category"), "predictions", ["category"], unique=False)
    op.create_index(
        op.f("ix_predictions_content_sha256"),
        "predictions",
        ["content_sha256"],
        unique=False,
    )
    op.create_index(op.f("ix_predictions_created_at"), "predictions", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_predictions_model_version_id"),
        "predictions",
        ["model_version_id"],
        unique=False,
    )
    op.create_index(op.f("ix_predictions_status"), "predictions", ["status"], unique=False)
    op.create_index(
        "ix_predictions_unmoved",
        "predictions",
        ["id"],
        unique=False,
        sqlite_where=sa.text("moved_at IS NULL"),
        postgresql_where=sa.text("moved_at IS NULL"),
    )
    op.create_index(
        "uq_predictions_classified_content",
        "predictions",
        ["content_sha256", "model_version_id"],
        unique=True,
        sqlite_where=sa.text("status = 'classified'"),
        postgresql_where=sa.text("status = 'classified'"),
    )



def downgrade() -> None:
    op.drop_index(
        "uq_predictions_classified_content",
        "predictions",
        sqlite_where=sa.text("status = 'classified'"),
        postgresql_where=sa.text("status = 'classified'"),
    )
    op.drop_index(
        "ix_predictions_unmoved",
        "predictions",
        sqlite_where=sa.text("moved_at IS NULL"),
        postgresql_where=sa.text("moved_at IS NULL"),
    )
    op.drop_index(op.f("ix_predictions_status"), "predictions")
    op.drop_index(op.f("ix_predictions_model_version_id"), "predictions")
    op.drop_index(op.f("ix_predictions_created_at"), "predictions")
    op.drop_index(op.f("ix_predictions_content_sha256"), "predictions")
    op.drop_index(op.f("ix_predictions_category"), "predictions")
    op.drop_index(op.f("ix_predictions_batch_id"), "predictions")
    op.drop_table("predictions")
    op.drop_table("version_tags")
    op.drop_index(op.f("ix_metrics_version_id"), "metrics")
    op.drop_table("metrics")
    op.drop_table("daemon_heartbeats")
    op.drop_table("batches")
    op.drop_index(op.f("ix_artifact_files_version_id"), "artifact_files")
    op.drop_table("artifact_files")
    op.drop_index(op.f("ix_aliases_version_id"), "aliases")
    op.drop_table("aliases")
    op.drop_index("ix_alias_history_model_id_alias", "alias_history")
    op.drop_table("alias_history")
    op.drop_table("model_versions")
    op.drop_table("model_tags")
    op.drop_table("registered_models")
