"""`sortbox train` and `sortbox train sweep` through click, on a real SQLite file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import sortbox
from registry import Registry
from tools.shared import REPO_ROOT

TINY = ["--backbone", "mobilenet_v2", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--seed", "3", "--quiet"]


def test_train_command_registers(tiny_dataset: Path, tmp_path: Path):
    home = tmp_path / "home"

    result = CliRunner().invoke(
        sortbox, ["--home", str(home), "train", "--data", str(tiny_dataset), "--epochs", "1", *TINY]
    )

    assert result.exit_code == 0, result.output
    assert "registered default version 1 (ready)" in result.output
    registry = Registry.open(home=home)
    try:
        version = registry.get_version("default", 1)
        artifact = Path(version.artifact_uri)
        assert artifact.is_file()
        assert hashlib.sha256(artifact.read_bytes()).hexdigest() == version.artifact_sha256
        assert version.class_names == ("blue", "green", "red")
        names = {(m.split, m.name) for m in registry.get_metrics("default", 1)}
        assert ("validation", "accuracy") in names
        assert ("validation", "confusion/red") in names
    finally:
        registry.close()


@pytest.mark.slow
def test_sweep_command_marks_best(tiny_dataset: Path, tmp_path: Path):
    home = tmp_path / "home"

    result = CliRunner().invoke(
        sortbox,
        ["--home", str(home), "train", "sweep", "--data", str(tiny_dataset), "--epochs", "2",
         "--learning-rate", "0.001,0.01", "--dropout", "0,0.5", *TINY],
    )

    assert result.exit_code == 0, result.output
    assert result.output.count("| ") >= 6
    assert "(best)" in result.output
    registry = Registry.open(home=home)
    try:
        versions = registry.list_versions("default")
        assert len(versions) == 4
        best = [v for v in versions if v.tags.get("sweep_best") == "true"]
        assert len(best) == 1
        assert len({v.tags["sweep"] for v in versions}) == 1
        assert list(home.glob("artifacts/default/sweep-*/sweep.png"))
    finally:
        registry.close()


def test_train_without_data_is_usage_error(tmp_path: Path):
    result = CliRunner().invoke(sortbox, ["--home", str(tmp_path / "home"), "train"])

    assert result.exit_code == 2
    assert "--data" in result.output


def test_sweep_rejects_bad_list(tiny_dataset: Path, tmp_path: Path):
    result = CliRunner().invoke(
        sortbox,
        ["--home", str(tmp_path / "home"), "train", "sweep", "--data", str(tiny_dataset),
         "--dropout", "0,abc"],
    )

    assert result.exit_code == 2
    assert "'abc' is not a valid float" in result.output


def test_empty_class_stops_before_tensorflow(tiny_dataset: Path, tmp_path: Path):
    empty = tiny_dataset / "train" / "yellow"
    empty.mkdir()
    (tiny_dataset / "validation" / "yellow").mkdir()
    script = textwrap.dedent(
        f"""
        import sys
        from click.testing import CliRunner
        from cli import sortbox
        result = CliRunner().invoke(
            sortbox, ["--home", {str(tmp_path / "home")!r}, "train", "--data", {str(tiny_dataset)!r}]
        )
        print(result.exit_code)
        print(result.output)
        print("tensorflow loaded:", "tensorflow" in sys.modules)
        """
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )

    lines = completed.stdout.splitlines()
    assert lines[0] == "1", completed.stdout + completed.stderr
    assert "Error:" in completed.stdout
    assert str(empty) in completed.stdout
    assert "tensorflow loaded: False" in completed.stdout


def test_train_help_lists_options():
    result = CliRunner().invoke(sortbox, ["train", "--help"])

    assert result.exit_code == 0
    for option in ("--fine-tune-epochs", "--unfreeze", "--horizontal-flip", "--promote",
                   "--register-interrupted", "--early-stopping", "--label-smoothing"):
        assert option in result.output


def test_options_before_sweep_rejected(tiny_dataset: Path, tmp_path: Path):
    result = CliRunner().invoke(
        sortbox,
        ["--home", str(tmp_path / "home"), "train", "--epochs", "3", "sweep", "--data", str(tiny_dataset)],
    )

    assert result.exit_code == 2
    assert "--epochs given before `sweep`" in result.output
