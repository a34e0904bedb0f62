"""Aliases: promotion checks, rollback order, removal and the append-only history."""

from __future__ import annotations

import pytest
from registry_helpers import json_check_model, new_version, write_artifact

from registry import PRODUCTION, AliasAction, ArtifactError, ConflictError, NotFoundError


@pytest.fixture
def three_versions(registry, tmp_path):
    """Versions 1 to 3 of `default`, each with its own stand-in model file."""
    for number in (1, 2, 3):
        artifact = write_artifact(tmp_path / "files", name=f"model-{number}.json")
        registry.register_version(new_version(artifact))
    return registry


def test_promote_promote_rollback(three_versions):
    registry = three_versions

    registry.set_alias("default", PRODUCTION, 1, reason="first model", user="ana")
    registry.set_alias("default", PRODUCTION, 2, reason="better accuracy", user="ana")
    change = registry.rollback("default", reason="v2 misfiles shoes", user="ben")

    assert registry.get_alias("default").version == 1
    assert (change.previous_version, change.new_version) == (2, 1)
    history = registry.alias_history("default", PRODUCTION)
    assert [(item.previous_version, item.new_version) for item in history] == [
        (None, 1),
        (1, 2),
        (2, 1),
    ]
    assert [item.action for item in history] == [
        AliasAction.SET,
        AliasAction.SET,
        AliasAction.ROLLBACK,
    ]
    assert [item.reason for item in history] == [
        "first model",
        "better accuracy",
        "v2 misfiles shoes",
    ]
    assert [item.user for item in history] == ["ana", "ana", "ben"]
    assert history[0].changed_at <= history[1].changed_at <= history[2].changed_at
    assert all(item.changed_at.tzinfo is not None for item in history)


def test_repeated_rollback_goes_further_back(three_versions):
    registry = three_versions
    for number in (1, 2, 3):
        registry.set_alias("default", PRODUCTION, number)

    assert registry.rollback("default").new_version == 2
    assert registry.rollback("default").new_version == 1
    with pytest.raises(ConflictError) as raised:
        registry.rollback("default")
    assert "nothing to roll back to" in str(raised.value)
    assert registry.get_alias("default").version == 1


def test_rollback_after_new_promotion(three_versions):
    registry = three_versions
    registry.set_alias("default", PRODUCTION, 1)
    registry.set_alias("default", PRODUCTION, 2)
    registry.rollback("default")
    registry.set_alias("default", PRODUCTION, 3)

    assert registry.rollback("default").new_version == 1


def test_rollback_without_history(three_versions):
    with pytest.raises(ConflictError) as raised:
        three_versions.rollback("default")
    assert "no promotion left to undo" in str(raised.value)


def test_aliases_are_independent(three_versions):
    registry = three_versions
    registry.set_alias("default", PRODUCTION, 1)
    registry.set_alias("default", "staging", 2)
    registry.set_alias("default", "staging", 3)

    registry.rollback("default", "staging")

    assert registry.get_alias("default", PRODUCTION).version == 1
    assert registry.get_alias("default", "staging").version == 2
    assert registry.get_version("default", 2).aliases == ("staging",)
    assert registry.list_models()[0].aliases == {PRODUCTION: 1, "staging": 2}
    assert len(registry.alias_history("default")) == 4


def test_promote_same_version_rejected(three_versions):
    registry = three_versions
    registry.set_alias("default", PRODUCTION, 1)
    with pytest.raises(ConflictError):
        registry.set_alias("default", PRODUCTION, 1)
    assert len(registry.alias_history("default")) == 1


def test_corrupted_artifact_cannot_be_promoted(three_versions, tmp_path):
    registry = three_versions
    artifact = tmp_path / "files" / "model-2.json"
    data = bytearray(artifact.read_bytes())
    data[3] ^= 0xFF
    artifact.write_bytes(bytes(data))

    with pytest.raises(ArtifactError) as raised:
        registry.set_alias("default", PRODUCTION, 2, check_model=json_check_model)

    assert "model-2.json" in str(raised.value)
    assert "sha256" in str(raised.value)
    assert registry.get_alias("default") is None
    assert registry.alias_history("default") == []


def test_missing_artifact_cannot_be_promoted(three_versions, tmp_path):
    (tmp_path / "files" / "model-1.json").unlink()
    with pytest.raises(ArtifactError) as raised:
        three_versions.set_alias("default", PRODUCTION, 1)
    assert "missing" in str(raised.value)


def test_failed_load_check_rejects(registry, tmp_path):
    artifact = write_artifact(tmp_path / "files", outputs=5)
    registry.register_version(new_version(artifact))

    with pytest.raises(ArtifactError) as raised:
        registry.set_alias("default", PRODUCTION, 1, check_model=json_check_model)

    assert "5 outputs but 3 classes" in str(raised.value)
    assert registry.get_alias("default") is None


def test_load_check_receives_path_and_count(three_versions, tmp_path):
    calls = []

    def recording_check(path, class_count):
        json_check_model(path, class_count)
        calls.append((path, class_count))

    three_versions.set_alias("default", PRODUCTION, 3, check_model=recording_check)

    assert calls == [(str((tmp_path / "files" / "model-3.json").absolute()), 3)]


def test_archived_version_cannot_be_promoted(three_versions):
    registry = three_versions
    registry.archive_version("default", 2)
    with pytest.raises(ConflictError) as raised:
        registry.set_alias("default", PRODUCTION, 2)
    assert "archived" in str(raised.value)


def test_rollback_to_archived_version_rejected(three_versions):
    registry = three_versions
    registry.set_alias("default", PRODUCTION, 1)
    registry.set_alias("default", PRODUCTION, 2)
    registry.archive_version("default", 1)

    with pytest.raises(ConflictError):
        registry.rollback("default")
    assert registry.get_alias("default").version == 2


def test_remove_alias_then_rollback_restores(three_versions):
    registry = three_versions
    registry.set_alias("default", "staging", 2)

    removed = registry.remove_alias("default", "staging", reason="done testing")
    assert removed.action == AliasAction.UNSET
    assert registry.get_alias("default", "staging") is None

    registry.rollback("default", "staging")
    assert registry.get_alias("default", "staging").version == 2


def test_get_alias_unknown_model(registry):
    with pytest.raises(NotFoundError):
        registry.get_alias("default")
