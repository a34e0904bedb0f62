"""User mistakes on the command line: each one ends in one "Error: ..." line and changes nothing.

Every test runs `sortbox` with CliRunner on a real SQLite file and, where state matters, reopens
the database afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from registry_helpers import classified_prediction, new_version, write_artifact

from cli import sortbox
from registry import (
    PRODUCTION,
    ConflictError,
    Registry,
    VersionStatus,
)
from registry.textpaths import decode_path

NON_UTF8_NAMES = (os.fsdecode(b"\xff.jpg"), os.fsdecode(b"caf\xe9 latin1.jpg"))


def _invoke(*arguments: str):
    return CliRunner().invoke(sortbox, list(arguments))


def _one_error_line(result, *fragments: str) -> str:
    """Check that a command failed with exit 1 and one "Error:" line holding every fragment."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def registry(home, tmp_path):
    """A registry in `home` with versions 1 and 2 of model `default`."""
    opened = Registry.open(home=home)
    for number in (1, 2):
        artifact = write_artifact(tmp_path / "files", name=f"model-{number}.json")
        opened.register_version(new_version(artifact))
    yield opened
    opened.close()


def _run(home: Path, *arguments: str):
    return _invoke("--home", str(home), *arguments)


def _add_predictions(registry: Registry, names) -> None:
    version_id = registry.get_version("default", 1).id
    registry.add_predictions(
        [classified_prediction(version_id, index, name) for index, name in enumerate(names)]
    )


def test_file_that_is_not_sqlite(tmp_path):
    database = tmp_path / "notsqlite.db"
    database.write_text("plain text, not a database\n" * 100)

    result = _invoke("--db", f"sqlite:///{database}", "models", "list")

    _one_error_line(result, f"'{database}' is not a SQLite database", "--db")
    assert database.read_text().startswith("plain text")


def test_home_with_text_file_database(home):
    home.mkdir()
    (home / "sortbox.db").write_text("not a database")

    _one_error_line(_run(home, "models", "list"), "is not a SQLite database", "--home")


@pytest.fixture
def read_only_home(home):
    """A home with a registry, then made read-only (a bind mount when running as root)."""
    Registry.open(home=home).close()
    if os.geteuid() != 0:
        home.chmod(0o555)
        yield home
        home.chmod(0o755)
        return

    # Root ignores permission bits, so only a read-only mount makes the folder read-only.
    mounted = home.parent / "read-only-home"
    mounted.mkdir()
    commands = (
        ["mount", "--bind", str(home), str(mounted)],
        ["mount", "-o", "remount,bind,ro", str(mounted)],
    )
    for command in commands:
        if subprocess.run(command, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(mounted)], capture_output=True)
            pytest.skip("running as root without permission to mount a read-only folder")
    try:
        yield mounted
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


def test_read_only_home(read_only_home):
    result = _run(read_only_home, "models", "list")

    _one_error_line(result, f"'{read_only_home}'", "writable")
    assert not (read_only_home / "sortbox.db-wal").exists()


def test_unknown_database_driver():
    _one_error_line(
        _invoke("--db", "nosuchdriver://x/y", "models", "list"),
        "unknown database type 'nosuchdriver'",
        "sqlite:///",
    )


def test_refused_server_hides_password():
    result = _invoke("--db", "postgresql+psycopg://user:secret@127.0.0.1:1/db", "models", "list")

    line = _one_error_line(result, "cannot connect to postgresql+psycopg://user:***@127.0.0.1:1/db")
    assert "secret" not in line
    assert "refused" in line.lower()


def test_unparsable_url_hides_password():
    result = _invoke("--db", "postgresql://user:secret@host:notaport/db", "models", "list")

    line = _one_error_line(result, "invalid database URL")
    assert "secret" not in line


def test_export_to_folder_leaves_nothing(registry, home, tmp_path):
    _add_predictions(registry, ["a.jpg"])
    folder = tmp_path / "exports"
    folder.mkdir()

    result = _run(home, "predictions", "export", "--output", str(folder))

    _one_error_line(result, f"'{folder}' is a folder", "give a file name")
    assert list(folder.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exports", "files", "home"]


def test_failed_export_keeps_old_file(registry, home, tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous export\n")

    result = _run(home, "predictions", "export", "--output", str(target), "--model", "nosuch")

    _one_error_line(result, "model 'nosuch' not found", "default")
    assert target.read_text() == "previous export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["files", "home", "out.csv"]


def test_export_replaces_file_atomically(registry, home, tmp_path):
    _add_predictions(registry, ["a.jpg"])
    target = tmp_path / "out.csv"
    target.write_text("previous export\n")

    result = _run(home, "predictions", "export", "--output", str(target), "--limit", "1")

    assert result.exit_code == 0, result.output
    assert "Exported 1 prediction." in result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["file_name"] for row in rows] == ["a.jpg"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["files", "home", "out.csv"]


@pytest.mark.parametrize(
    "arguments",
    [
        ("models", "list"),
        ("models", "show", "1"),
        ("predictions", "list"),
        ("predictions", "stats"),
        ("predictions", "export"),
        ("db", "current"),
    ],
)
def test_missing_database_is_not_created(tmp_path, arguments):
    typo = tmp_path / "nonexistent" / "dir"

    result = _invoke("--db", f"sqlite:///{typo / 'x.db'}", *arguments)

    _one_error_line(result, f"no registry database at '{typo / 'x.db'}'", "--home", "--db")
    assert not typo.exists()


def test_missing_home_is_not_created(tmp_path):
    typo = tmp_path / "some" / "typo"

    _one_error_line(_run(typo, "models", "list"), "no registry database", "--home")
    assert not (tmp_path / "some").exists()


def test_db_upgrade_creates_missing_database(tmp_path):
    database = tmp_path / "new" / "x.db"

    result = _invoke("--db", f"sqlite:///{database}", "db", "upgrade")

    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    with Registry.open(url=f"sqlite:///{database}", home=tmp_path / "home", upgrade=False) as reopened:
        assert reopened.list_versions() == []


def test_exports_are_valid_utf8(registry, home, tmp_path):
    _add_predictions(registry, NON_UTF8_NAMES)
    escaped = ["fsbytes:%FF.jpg", "fsbytes:caf%E9 latin1.jpg"]

    for command in (("export", "--format", "csv"), ("list", "--format", "csv")):
        target = tmp_path / "out.csv"
        result = _run(home, "predictions", *command, "--oldest-first")
        assert result.exit_code == 0, result.output
        target.write_bytes(result.stdout_bytes)
        rows = list(csv.DictReader(io.StringIO(target.read_bytes().decode("utf-8"))))
        assert [row["file_name"] for row in rows] == escaped
        assert [decode_path(row["file_name"]) for row in rows] == list(NON_UTF8_NAMES)

    jsonl = _run(home, "predictions", "export", "--format", "jsonl", "--oldest-first")
    records = [json.loads(line) for line in jsonl.stdout_bytes.decode("ascii").splitlines()]
    assert [record["file_name"] for record in records] == escaped
    assert all(record["source_path"].startswith("fsbytes:/inbox/") for record in records)

    as_json = _run(home, "predictions", "list", "--format", "json", "--oldest-first")
    assert [record["file_name"] for record in json.loads(as_json.stdout_bytes)] == escaped

    table = _run(home, "predictions", "list")
    assert "fsbytes:%FF.jpg" in table.output
    assert "\\udc" not in table.output

    first_id = str(records[0]["id"])
    shown = _run(home, "predictions", "show", first_id)
    assert "fsbytes:%FF.jpg" in shown.output
    assert "\\udc" not in shown.output


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (("list", "--model", "nosuch"), ("model 'nosuch' not found", "default")),
        (("list", "--model-version", "9"), ("has no version 9", "1, 2")),
        (("list", "--model", "default", "--model-version", "9"), ("has no version 9", "1, 2")),
        (("stats", "--model", "nosuch"), ("model 'nosuch' not found", "default")),
        (("export", "--model-version", "3"), ("has no version 3", "1, 2")),
    ],
)
def test_unknown_model_in_filter(registry, home, arguments, fragments):
    _add_predictions(registry, ["a.jpg"])

    _one_error_line(_run(home, "predictions", *arguments), *fragments)


def test_stats_has_no_order_options(registry, home):
    _add_predictions(registry, ["a.jpg", "b.jpg"])

    for option in ("--limit", "--oldest-first"):
        result = _run(home, "predictions", "stats", option, *(["1"] if option == "--limit" else []))
        assert result.exit_code == 2, result.output
        assert "No such option" in result.output

    assert "Total: 2" in _run(home, "predictions", "stats").output


def test_equal_since_and_until(registry, home):
    result = _run(home, "predictions", "list", "--since", "2026-12-04", "--until", "2026-12-04")

    line = _one_error_line(result, "time range is empty")
    assert "swap" not in line


def test_unalias_unknown_alias(registry, home):
    registry.set_alias("default", PRODUCTION, 1)

    result = _run(home, "models", "unalias", "default", "nosuch")

    _one_error_line(result, "has no alias 'nosuch'", "production")
    assert registry.alias_history("default") != []
    assert len(registry.alias_history("default")) == 1


def test_remove_unset_tag(registry, home, tmp_path):
    registry.set_version_tags("default", 1, {"owner": "ana"})

    result = _run(home, "models", "tag", "default", "1", "team=vision", "--remove", "nosuchkey")

    _one_error_line(result, "no tag 'nosuchkey'", "owner")
    with Registry.open(home=home) as reopened:
        assert reopened.get_version("default", 1).tags == {"owner": "ana"}


def test_remove_unset_model_tag(registry, home):
    result = _run(home, "models", "tag", "default", "--remove", "nosuchkey")

    _one_error_line(result, "model 'default' has no tag 'nosuchkey'", "none")


def test_promote_interrupted_needs_force(home, tmp_path):
    with Registry.open(home=home) as registry:
        artifact = write_artifact(tmp_path / "files")
        registry.register_version(new_version(artifact, status=VersionStatus.INTERRUPTED))

    result = _run(home, "models", "promote", "1")

    _one_error_line(result, "version 1 of model 'default' is interrupted", "--force")
    with Registry.open(home=home) as reopened:
        assert reopened.get_alias("default") is None
        with pytest.raises(ConflictError):
            reopened.set_alias("default", PRODUCTION, 1)
        change = reopened.set_alias("default", PRODUCTION, 1, force=True)
        assert change.new_version == 1
        assert reopened.get_alias("default").version == 1


def test_export_count_plural(registry, home):
    _add_predictions(registry, ["a.jpg", "b.jpg"])

    assert "Exported 2 predictions." in _run(home, "predictions", "export").stderr
    assert "Exported 1 prediction." in _run(home, "predictions", "export", "--limit", "1").stderr
