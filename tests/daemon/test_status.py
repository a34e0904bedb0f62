"""`sortbox status`: production versions of every model, daemon states and recent counts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from click.testing import CliRunner

from cli import sortbox
from tests.daemon.helpers import register_model


def _status(tmp_path: Path, *args: str):
    url = f"sqlite:///{tmp_path / 'sortbox.db'}"
    return CliRunner().invoke(
        sortbox, ["--db", url, "--home", os.fspath(tmp_path / "home"), "status", *args]
    )


def test_status_shows_every_model(served_registry, color_model_file, tmp_path):
    shutil.copyfile(color_model_file, tmp_path / "shapes.keras")
    register_model(served_registry, tmp_path / "shapes.keras", model_name="shapes", promote=False)

    result = _status(tmp_path)

    assert result.exit_code == 0, result.output
    assert "model: default v1 (production)" in result.output
    assert "model: shapes has no production version" in result.output


def test_status_model_option_shows_one(served_registry, color_model_file, tmp_path):
    shutil.copyfile(color_model_file, tmp_path / "shapes.keras")
    register_model(served_registry, tmp_path / "shapes.keras", model_name="shapes")

    result = _status(tmp_path, "--model", "shapes")

    assert result.exit_code == 0, result.output
    assert "model: shapes v1 (production)" in result.output
    assert "model: default" not in result.output


def test_status_without_models(registry, tmp_path):
    result = _status(tmp_path)

    assert result.exit_code == 0, result.output
    assert "model: none registered yet" in result.output
