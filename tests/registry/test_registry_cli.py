"""The registry's commands through the real `sortbox` entry point, on a real database file.

Each test runs commands with click's CliRunner and then reopens the database to check the state.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from registry_helpers import classified_prediction, new_version, write_artifact

from cli import sortbox
from registry import PRODUCTION, Registry, VersionStatus

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(registry_url, tmp_path):
    """Invoke `sortbox` with --db/--home pointing at this test's database."""
    runner = CliRunner()
    home = tmp_path / "home"

    def invoke(*arguments: str, input: str | None = None):
        return runner.invoke(
            sortbox, ["--db", registry_url, "--home", str(home), *arguments], input=input
        )

    return invoke


@pytest.fixture
def reopen(registry_url, tmp_path):
    """Open a fresh Registry on the test database, as a separate process would."""
    opened = []

    def open_registry() -> Registry:
        registry = Registry.open(url=registry_url, home=tmp_path / "home")
        opened.append(registry)
        return registry

    yield open_registry
    for registry in opened:
        registry.close()


@pytest.fixture
def two_versions(reopen, tmp_path):
    """Versions 1 and 2 of `default` with stand-in files (for commands that load nothing)."""
    registry = reopen()
    for number in (1, 2):
        artifact = write_artifact(tmp_path / "files", name=f"model-{number}.json")
        plot = tmp_path / "files" / f"curves-{number}.png"
        plot.write_bytes(b"\x89PNG plot")
        registry.register_version(
            new_version(artifact, accuracy=0.7 + number / 10, extra_files=(("curves", str(plot)),))
        )
    return registry


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_models_list(run, two_versions):
    two_versions.set_alias("default", PRODUCTION, 2)

    output = _ok(run("models", "list"))

    lines = output.splitlines()
    assert "VAL_ACC" in lines[0]
    assert lines[1].startswith(" ")
    assert "0.8000" in lines[1]
    assert lines[2].startswith("*")
    assert "production" in lines[2]
    assert "0.9000" in lines[2]


def test_models_list_empty(run, reopen):
    reopen()

    assert "No model versions" in _ok(run("models", "list"))


def test_models_show(run, two_versions, tmp_path):
    output = _ok(run("models", "show", "default", "1"))

    assert "xception" in output
    assert "pants, shirt, shoes" in output
    assert "hyperparameter learning_rate  0.001" in output
    assert str((tmp_path / "files" / "curves-1.png").absolute()) in output
    assert "Learning curves:" in output
    assert _ok(run("models", "show", "1")) == output


def test_models_show_unknown_version(run, two_versions):
    result = run("models", "show", "7")
    assert result.exit_code == 1
    assert "Error: model 'default' has no version 7" in result.output


def _save_keras_model(path: Path, outputs: int) -> Path:
    import keras

    path.parent.mkdir(parents=True, exist_ok=True)
    # The load check wants an image model, so the input is a tiny 8x8 RGB image.
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(outputs, activation="softmax"),
        ]
    )
    model.save(path)
    return path


@pytest.mark.slow
def test_promote_rollback_history(run, reopen, tmp_path):
    registry = reopen()
    for number in (1, 2):
        artifact = _save_keras_model(tmp_path / "files" / f"model-{number}.keras", outputs=3)
        registry.register_version(new_version(artifact))
    wrong_size = _save_keras_model(tmp_path / "files" / "model-3.keras", outputs=4)
    registry.register_version(new_version(wrong_size))

    _ok(run("models", "promote", "1", "--reason", "first model"))
    _ok(run("models", "promote", "default", "2", "--reason", "better accuracy"))
    rolled_back = _ok(run("models", "rollback", "--reason", "v2 misfiles shoes"))
    assert "version 2 -> version 1 (rollback)" in rolled_back

    refused = run("models", "promote", "3")
    assert refused.exit_code == 1
    assert "failed the load check" in refused.output
    assert "4 class scores" in refused.output

    after = reopen()
    assert after.get_alias("default").version == 1
    history = after.alias_history("default")
    assert [(item.previous_version, item.new_version) for item in history] == [(None, 1), (1, 2), (2, 1)]

    shown = _ok(run("models", "history"))
    for reason in ("first model", "better accuracy", "v2 misfiles shoes"):
        assert reason in shown
    assert shown.count("production") == 3


def test_promote_corrupted_artifact(run, two_versions, tmp_path, reopen):
    artifact = tmp_path / "files" / "model-2.json"
    data = bytearray(artifact.read_bytes())
    data[0] ^= 0x01
    artifact.write_bytes(bytes(data))

    result = run("models", "promote", "2")

    assert result.exit_code == 1
    assert "model-2.json" in result.output
    assert "sha256" in result.output
    assert reopen().get_alias("default") is None

    verify = run("models", "verify")
    assert verify.exit_code == 1
    assert "default v2 model" in verify.output
    assert "FAILED" in verify.output
    assert "default v1 model" in verify.output
    assert ": ok" in verify.output
    assert "1 of 4 files failed verification" in verify.output


def test_models_verify_ok(run, two_versions):
    assert "All 4 files match" in _ok(run("models", "verify", "default"))


def test_models_compare(run, two_versions):
    output = _ok(run("models", "compare", "1", "2"))
    assert "V1" in output
    assert "V2" in output
    assert "shirt" in output
    assert "+0.1000" in output


def test_models_tag(run, two_versions, reopen):
    assert "stage=qa" in _ok(run("models", "tag", "default", "1", "stage=qa", "owner=ana"))
    _ok(run("models", "tag", "1", "--remove", "owner"))
    _ok(run("models", "tag", "team=vision"))

    registry = reopen()
    assert registry.get_version("default", 1).tags == {"stage": "qa"}
    assert registry.list_models()[0].tags == {"team": "vision"}

    result = run("models", "tag", "1", "no-equals-sign")
    assert result.exit_code == 2


def test_models_archive(run, two_versions, reopen):
    two_versions.set_alias("default", PRODUCTION, 1)

    refused = run("models", "archive", "1")
    assert refused.exit_code == 1
    assert "is the target of alias production" in refused.output

    _ok(run("models", "archive", "2"))
    assert reopen().get_version("default", 2).status == VersionStatus.ARCHIVED

    promote = run("models", "promote", "2")
    assert promote.exit_code == 1
    assert "archived" in promote.output


def test_models_history_and_unalias(run, two_versions, reopen):
    two_versions.set_alias("default", "staging", 1, reason="try it")
    two_versions.set_alias("default", PRODUCTION, 2)

    output = _ok(run("models", "history", "--alias", "staging"))
    assert "try it" in output
    assert PRODUCTION not in output

    _ok(run("models", "unalias", "default", "staging", "--reason", "done"))
    assert reopen().get_alias("default", "staging") is None
    assert "unset" in _ok(run("models", "history"))


def test_name_required_with_several_models(run, two_versions, tmp_path):
    two_versions.register_version(new_version(write_artifact(tmp_path / "other"), model_name="shoes"))

    result = run("models", "show", "1")

    assert result.exit_code == 1
    assert "default, shoes" in result.output


def _add_predictions(registry: Registry) -> None:
    version_id = registry.get_version("default", 1).id
    files = [("a.jpg", "shirt", 0.9), ("b.jpg", "shoes", 0.4), ("c.png", "shirt", 0.7)]
    registry.add_predictions(
        [
            classified_prediction(version_id, index, name, category, confidence)
            for index, (name, category, confidence) in enumerate(files)
        ]
    )


def test_predictions_list_formats(run, two_versions):
    _add_predictions(two_versions)

    table = _ok(run("predictions", "list", "--category", "shirt"))
    assert "a.jpg" in table
    assert "c.png" in table
    assert "b.jpg" not in table

    as_json = json.loads(_ok(run("predictions", "list", "--format", "json", "--confidence-below", "0.5")))
    assert [record["file_name"] for record in as_json] == ["b.jpg"]

    as_csv = list(csv.DictReader(io.StringIO(_ok(run("predictions", "list", "--format", "csv", "--name", "*.jpg")))))
    assert sorted(row["file_name"] for row in as_csv) == ["a.jpg", "b.jpg"]

    assert "No predictions match" in _ok(run("predictions", "list", "--since", "2999-01-01"))


def test_predictions_show(run, two_versions):
    _add_predictions(two_versions)
    output = _ok(run("predictions", "show", "2"))
    assert "b.jpg" in output
    assert "shoes 0.4000" in output

    missing = run("predictions", "show", "99")
    assert missing.exit_code == 1
    assert "prediction 99 not found" in missing.output


def test_predictions_export(run, two_versions, tmp_path):
    _add_predictions(two_versions)
    target = tmp_path / "out.jsonl"

    result = run("predictions", "export", "--format", "jsonl", "--output", str(target), "--model-version", "1")

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 3
    assert all(record["model_version"] == 1 for record in records)

    to_stdout = run("predictions", "export", "--status", "classified", "--oldest-first")
    assert to_stdout.exit_code == 0
    assert to_stdout.output.splitlines()[1].split(",")[2] == "a.jpg"


def test_predictions_stats(run, two_versions):
    _add_predictions(two_versions)

    output = _ok(run("predictions", "stats"))
    assert "Total: 3" in output
    assert "default v1  shirt" in output

    as_json = json.loads(_ok(run("predictions", "stats", "--format", "json", "--category", "shirt")))
    assert as_json["total"] == 2
    assert as_json["by_hour"][0]["count"] == 2


def test_db_commands(run, registry_url, tmp_path):
    if registry_url.startswith("sqlite"):
        # `db current` reads an existing file only; an empty file is an empty database.
        Path(sa.make_url(registry_url).database).touch()
    current = _ok(run("db", "current"))
    assert "none (empty database)" in current
    assert "not up to date" in current

    assert "up to date" in _ok(run("db", "upgrade"))
    assert "(current, head)" in _ok(run("db", "history"))

    downgraded = _ok(run("db", "downgrade", "base", "--yes"))
    assert "none (empty database)" in downgraded
    with pytest.raises(Exception) as raised:
        Registry.open(url=registry_url, home=tmp_path / "home", upgrade=False)
    assert "sortbox db upgrade" in str(raised.value)

    refused = run("db", "downgrade", "base", input="n\n")
    assert refused.exit_code == 1


def test_newer_schema_is_an_error(run, two_versions, registry_url):
    import sqlalchemy as sa

    engine = sa.create_engine(registry_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0999_future'")
    engine.dispose()

    result = run("models", "list")

    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "0999_future" in result.output
    assert "Traceback" not in result.output


def _registry_commands() -> list[tuple[str, click.Command]]:
    found = []
    for group_name in ("models", "predictions", "db"):
        group = sortbox.commands[group_name]
        found.append((f"sortbox {group_name}", group))
        for name, command in group.commands.items():
            found.append((f"sortbox {group_name} {name}", command))
    return found


def test_commands_have_help():
    for path, command in _registry_commands():
        assert command.help and command.help.strip(), f"{path} has no help text"
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{path} option {parameter.opts} has no help text"


def test_commands_listed_in_readme():
    readme = (REPO_ROOT / "README.md").read_text()
    for path, _command in _registry_commands():
        assert path in readme, f"README.md does not mention `{path}`"


def test_models_list_does_not_import_tensorflow(tmp_path):
    Registry.open(home=tmp_path / "home").close()
    script = (
        "import sys\n"
        "from cli import sortbox\n"
        "try:\n"
        "    sortbox(['--home', sys.argv[1], 'models', 'list'], standalone_mode=False)\n"
        "finally:\n"
        "    heavy = sorted(name for name in ('tensorflow', 'keras') if name in sys.modules)\n"
        "    print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
