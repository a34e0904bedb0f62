"""The composition root: fast start without TensorFlow, and domain errors as one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent

# Runs a CLI invocation in a fresh interpreter and prints which heavy modules it imported.
PROBE = """
import json, sys
from click.testing import CliRunner
from cli import sortbox
result = CliRunner().invoke(sortbox, sys.argv[1:], catch_exceptions=False)
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"tensorflow", "keras"})
print(json.dumps({"exit_code": result.exit_code, "output": result.output, "heavy": heavy}))
"""


def run_probe(args: list[str], home: Path) -> dict:
    env = dict(os.environ, SORTBOX_HOME=str(home))
    env.pop("SORTBOX_DB", None)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["models", "list"],
        ["models", "--help"],
        ["predictions", "list"],
        ["train", "--help"],
        ["watch", "--help"],
    ],
)
def test_command_does_not_import_tensorflow(args, tmp_path):
    # Listing commands read an existing registry only, so create an empty one first.
    Registry.open(home=tmp_path / "home").close()
    probe = run_probe(args, tmp_path / "home")

    assert probe["exit_code"] == 0, probe["output"]
    assert probe["heavy"] == []


def test_domain_error_is_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import sortbox

    monkeypatch.setenv("SORTBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SORTBOX_DB", raising=False)
    Registry.open(home=tmp_path / "home").close()

    result = CliRunner().invoke(sortbox, ["models", "promote", "no-such-model", "7"])

    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "no-such-model" in result.output
    assert "Traceback" not in result.output


def test_status_on_mistyped_home_creates_nothing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import sortbox

    monkeypatch.delenv("SORTBOX_DB", raising=False)
    typo = tmp_path / "no-such-home"

    result = CliRunner().invoke(sortbox, ["--home", str(typo), "status"])

    assert result.exit_code == 1
    assert "no registry database" in result.output
    assert not typo.exists()


def test_os_error_is_one_line(tmp_path, monkeypatch):
    import threading

    from click.testing import CliRunner

    from cli import sortbox
    from registry import Registry

    monkeypatch.setenv("SORTBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SORTBOX_DB", raising=False)
    Registry.open(home=tmp_path / "home").close()
    # A reader that closes the pipe at once makes the export's write fail with EPIPE, an OSError
    # like a full disk, without touching any real device.
    pipe = tmp_path / "closed.pipe"
    os.mkfifo(pipe)
    reader = threading.Thread(target=lambda: open(pipe, "rb").close())
    reader.start()

    result = CliRunner().invoke(
        sortbox, ["predictions", "export", "--format", "csv", "--output", str(pipe)]
    )
    reader.join(timeout=30)

    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "Traceback" not in result.output
