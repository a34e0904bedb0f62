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


def run_train_in_subprocess(home: Path, arguments: list[str], prelude: str = "") -> list[str]:
    """Run `sortbox train` in a fresh interpreter; return its exit code, output and whether
    TensorFlow was imported, one per line."""
    script = textwrap.dedent(
        f"""
        import sys
        from click.testing import CliRunner
        {prelude}
        from cli import sortbox
        result = CliRunner().invoke(sortbox, ["--home", {str(home)!r}, "train", *{arguments!r}])
        print(result.exit_code)
        print(result.output.strip())
        print("tensorflow loaded:", "tensorflow" in sys.modules)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    return (completed.stdout + completed.stderr).splitlines()


def test_rejections_before_tensorflow(tiny_dataset: Path, tmp_path: Path):
    broken = tiny_dataset / "validation" / "red"
    weights_folder = tmp_path / "ds"
    weights_folder.mkdir()
    data = ["--data", str(tiny_dataset)]
    small_memory = "import trainer.memory; trainer.memory.available_memory = lambda: 1000"
    cases = [
        ([*data, *TINY, "--image-size", "100000"], "", "100000x100000 is too large"),
        ([*data, *TINY, "--weights", str(weights_folder)], "", f"{str(weights_folder)!r} is a folder"),
        ([*data, *TINY], small_memory, "GiB of available memory"),
    ]

    for arguments, prelude, message in cases:
        lines = run_train_in_subprocess(tmp_path / "home", arguments, prelude)
        assert lines[0] == "1", lines
        assert lines[1].startswith("Error:"), lines
        assert message in lines[1], lines
        assert len(lines) == 3, lines
        assert lines[2] == "tensorflow loaded: False", lines

    for path in broken.iterdir():
        path.write_text("this is text, not a JPEG")
    lines = run_train_in_subprocess(tmp_path / "home", [*data, *TINY])
    assert lines[0] == "1", lines
    assert f"{str(broken)!r} has no decodable validation images" in lines[1]
    assert lines[-1] == "tensorflow loaded: False", lines


def invoke_sweep(data: Path, home: Path, *arguments: str):
    return CliRunner().invoke(
        sortbox, ["--home", str(home), "train", "sweep", "--data", str(data), *arguments]
    )


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--inner-size", "10,,20", "'10,,20' has an empty item"),
        ("--learning-rate", "-1", "use values greater than 0"),
        ("--learning-rate", "0", "use values greater than 0"),
        ("--learning-rate", "0.001,0", "use values greater than 0"),
        ("--inner-size", "-5", "use values of at least 0"),
    ],
)
def test_sweep_list_rejected(tiny_dataset: Path, tmp_path: Path, option: str, value: str, message: str):
    result = invoke_sweep(tiny_dataset, tmp_path / "home", option, value)

    assert result.exit_code == 2
    assert message in result.output
