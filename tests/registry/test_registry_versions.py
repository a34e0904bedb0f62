"""Registered models and versions: numbering, stored metadata, files, tags and archiving."""

from __future__ import annotations

import os

import pytest
from registry_helpers import CLASS_NAMES, new_version, write_artifact

from registry import (
    ArtifactError,
    ConflictError,
    InvalidValueError,
    MetricValue,
    NotFoundError,
    VersionStatus,
)


def test_versions_numbered_per_model(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")

    first = registry.register_version(new_version(artifact))
    second = registry.register_version(new_version(artifact))
    other = registry.register_version(new_version(artifact, model_name="shoes-only"))

    assert (first.version, second.version) == (1, 2)
    assert other.version == 1
    assert [model.name for model in registry.list_models()] == ["default", "shoes-only"]
    assert registry.list_models()[0].version_count == 2


def test_register_stores_metadata(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    plot = tmp_path / "files" / "curves.png"
    plot.write_bytes(b"\x89PNG fake plot bytes")

    stored = registry.register_version(
        new_version(artifact, extra_files=(("curves", str(plot)),), tags={"dataset": "clothing"})
    )
    loaded = registry.get_version("default", 1)

    assert loaded == stored
    assert loaded.class_names == CLASS_NAMES
    assert loaded.image_size == (150, 150)
    assert loaded.hyperparameters["learning_rate"] == 0.001
    assert loaded.training_seconds == 300.0
    assert loaded.software_versions["keras"] == "3.15.0"
    assert "sortbox" in loaded.software_versions
    assert loaded.artifact_size == artifact.stat().st_size
    assert loaded.artifact_uri == os.fspath(artifact.absolute())
    assert loaded.tags == {"dataset": "clothing"}
    assert loaded.created_at.tzinfo is not None
    assert registry.get_version_by_id(stored.id) == stored

    files = registry.get_files("default", 1)
    assert [file.kind for file in files] == ["model", "curves"]
    assert files[1].path == os.fspath(plot.absolute())
    assert files[1].size == plot.stat().st_size


def test_metrics_round_trip(registry, tmp_path):
    registry.register_version(new_version(write_artifact(tmp_path / "files"), accuracy=0.75))

    metrics = registry.get_metrics("default", 1)

    assert MetricValue("validation", "accuracy", 0.75) in metrics
    assert MetricValue("validation", "accuracy", 0.8, class_name="shirt") in metrics
    assert MetricValue("validation", "accuracy", 0.65, epoch=1) in metrics
    assert metrics[-1].epoch == 2


def test_parent_version_recorded(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    registry.register_version(new_version(artifact))

    fine_tuned = registry.register_version(new_version(artifact, parent_version=1))

    assert fine_tuned.parent_version == 1
    with pytest.raises(NotFoundError):
        registry.register_version(new_version(artifact, parent_version=7))


def test_register_rejects_missing_artifact(registry, tmp_path):
    with pytest.raises(ArtifactError) as raised:
        registry.register_version(new_version(tmp_path / "missing.keras"))
    assert "missing.keras" in str(raised.value)
    assert registry.list_models() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"model_name": "12"},
        {"model_name": "has space"},
        {"class_names": ()},
        {"class_names": ("a", "a")},
        {"image_size": (0, 150)},
        {"backbone": ""},
        {"metrics": (MetricValue("validation", "loss", float("nan")),)},
        {"tags": {"bad=key": "x"}},
    ],
)
def test_register_rejects_invalid_values(registry, tmp_path, changes):
    with pytest.raises(InvalidValueError):
        registry.register_version(new_version(write_artifact(tmp_path / "files"), **changes))
    assert registry.list_models() == []


def test_unknown_version_lists_existing(registry, tmp_path):
    registry.register_version(new_version(write_artifact(tmp_path / "files")))

    with pytest.raises(NotFoundError) as raised:
        registry.get_version("default", 9)
    assert "its versions are 1" in str(raised.value)

    with pytest.raises(NotFoundError) as raised:
        registry.get_version("nope", 1)
    assert "default" in str(raised.value)


def test_resolve_model_name(registry, tmp_path):
    assert registry.resolve_model_name(None) == "default"

    artifact = write_artifact(tmp_path / "files")
    registry.register_version(new_version(artifact, model_name="shoes"))
    assert registry.resolve_model_name(None) == "shoes"

    registry.register_version(new_version(artifact, model_name="shirts"))
    with pytest.raises(InvalidValueError) as raised:
        registry.resolve_model_name(None)
    assert "shirts, shoes" in str(raised.value)


def test_version_and_model_tags(registry, tmp_path):
    registry.register_version(new_version(write_artifact(tmp_path / "files"), tags={"a": "1"}))

    updated = registry.set_version_tags("default", 1, {"b": "2", "a": "3"})
    assert updated.tags == {"a": "3", "b": "2"}

    updated = registry.set_version_tags("default", 1, {}, remove=["a"])
    assert updated.tags == {"b": "2"}

    model = registry.set_model_tags("default", {"owner": "vision-team"})
    assert model.tags == {"owner": "vision-team"}
    assert registry.list_models()[0].tags == {"owner": "vision-team"}


def test_archive_refuses_aliased_version(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    registry.register_version(new_version(artifact))
    registry.register_version(new_version(artifact))
    registry.set_alias("default", "production", 1)

    with pytest.raises(ConflictError) as raised:
        registry.archive_version("default", 1)
    assert "production" in str(raised.value)

    archived = registry.archive_version("default", 2)
    assert archived.status == VersionStatus.ARCHIVED
    assert registry.get_version("default", 2).status == VersionStatus.ARCHIVED


def test_summaries_use_validation_accuracy(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    registry.register_version(new_version(artifact, accuracy=0.7))
    curve_only = (
        MetricValue("validation", "accuracy", 0.5, epoch=1),
        MetricValue("validation", "accuracy", 0.6, epoch=2),
    )
    registry.register_version(new_version(artifact, metrics=curve_only))
    registry.register_version(new_version(artifact, metrics=()))

    summaries = registry.list_version_summaries("default")

    assert [summary.validation_accuracy for summary in summaries] == [0.7, 0.6, None]


def test_compare_pairs_metrics(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    registry.register_version(new_version(artifact, accuracy=0.7))
    registry.register_version(
        new_version(artifact, metrics=(MetricValue("validation", "accuracy", 0.9),))
    )

    rows = registry.compare_versions(None, 1, 2)
    by_key = {(row.split, row.name, row.class_name): row for row in rows}

    assert by_key[("validation", "accuracy", None)].value_a == 0.7
    assert by_key[("validation", "accuracy", None)].value_b == 0.9
    assert by_key[("validation", "accuracy", "shirt")].value_b is None
    assert by_key[("validation", "loss", None)].value_b is None


def test_verify_reports_changed_file(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    registry.register_version(new_version(artifact))
    data = bytearray(artifact.read_bytes())
    data[0] ^= 0x01
    artifact.write_bytes(bytes(data))

    checks = registry.verify_artifacts()

    assert len(checks) == 1
    assert not checks[0].ok
    assert "sha256" in checks[0].problem


def test_artifacts_dir_under_home(registry):
    folder = registry.artifacts_dir("default")
    assert folder == registry.home / "artifacts" / "default"
    assert folder.is_dir()
    with pytest.raises(InvalidValueError):
        registry.artifacts_dir("../escape")
