"""The daemon as a real process: the CLI, signals, and SIGKILL at random moments."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import sortbox
from daemon.status import Liveness, collect_status
from registry.types import PredictionFilter, PredictionStatus
from tests.daemon.helpers import JOIN_TIMEOUT, image_bytes, output_files, write_image

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cli_args(registry_home: Path, *args: str) -> list[str]:
    url = f"sqlite:///{registry_home.parent / 'sortbox.db'}"
    return ["--db", url, "--home", os.fspath(registry_home), *args]


def _start_daemon(tmp_path: Path, inbox: Path, output: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "cli", "-v",
        *_cli_args(tmp_path / "home", "watch", "--inbox", os.fspath(inbox), "--output",
                   os.fspath(output), "--settle-ms", "0", *extra),
    ]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        errors="replace",
    )


def _wait_for_log(process: subprocess.Popen, text: str, lines: list[str]) -> None:
    """Read the daemon's stderr until a line contains `text`; fail if the process ends first."""
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"daemon ended before logging {text!r}:\n{''.join(lines[-30:])}")


def _drain(process: subprocess.Popen, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    thread.start()
    return thread


def _rows(registry):
    return list(registry.query_predictions(PredictionFilter(newest_first=False)))


def test_cli_watch_once_and_status(served_registry, folders, tmp_path):
    inbox, output = folders
    write_image(inbox / "a.jpg", "red", seed=1)
    write_image(inbox / "b.jpg", "blue", seed=2)
    runner = CliRunner()

    watched = runner.invoke(
        sortbox,
        _cli_args(tmp_path / "home", "watch", "--inbox", os.fspath(inbox), "--output",
                  os.fspath(output), "--once", "--settle-ms", "0"),
    )
    status = runner.invoke(sortbox, _cli_args(tmp_path / "home", "status"))

    assert watched.exit_code == 0, watched.output
    assert "2 files in 1 batches (2 classified); stopped: done" in watched.output
    assert status.exit_code == 0, status.output
    assert "model: default v1 (production)" in status.output
    assert "stopped (done), last heartbeat" in status.output
    assert "classified: 2" in status.output
    assert "category red: 1" in status.output


def test_cli_watch_reports_bad_option(folders, tmp_path):
    inbox, output = folders

    result = CliRunner().invoke(
        sortbox,
        _cli_args(tmp_path / "home", "watch", "--inbox", os.fspath(inbox), "--output",
                  os.fspath(inbox)),
    )

    assert result.exit_code == 1
    assert "Error: --output" in result.output
    assert "is the inbox itself" in result.output


def test_watch_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom cli import sortbox\n"
        "result = CliRunner().invoke(sortbox, ['watch', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == "False False"


@pytest.mark.slow
def test_sigterm_finishes_batch_and_exits_zero(served_registry, folders, tmp_path):
    inbox, output = folders
    for index in range(200):
        write_image(inbox / f"t-{index:03d}.jpg", "green", seed=index)
    process = _start_daemon(tmp_path, inbox, output, "--max-batch-size", "64")
    lines: list[str] = []
    try:
        _wait_for_log(process, "started: ", lines)
        process.send_signal(signal.SIGTERM)
        _drain(process, lines)
        exit_code = process.wait(JOIN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()

    assert exit_code == 0, "".join(lines[-30:])
    rows = _rows(served_registry)
    assert rows, "the batch in hand was not written"
    assert all(row.moved_at is not None for row in rows)
    assert all(Path(row.destination_path).is_file() for row in rows)
    assert len(rows) + len([name for name in os.listdir(inbox) if not name.startswith(".")]) == 200


@pytest.mark.slow
def test_sigint_exits_130(served_registry, folders, tmp_path):
    inbox, output = folders
    process = _start_daemon(tmp_path, inbox, output)
    lines: list[str] = []
    try:
        _wait_for_log(process, "serving default v1", lines)
        process.send_signal(signal.SIGINT)
        _drain(process, lines)
        exit_code = process.wait(JOIN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()

    assert exit_code == 130, "".join(lines[-30:])
    assert any("watch stopped (interrupted)" in line for line in lines)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_repeats_nothing(served_registry, folders, tmp_path):
    inbox, output = folders
    contents = {f"k-{index:03d}.jpg": image_bytes("red", seed=index) for index in range(300)}
    for name, content in contents.items():
        (inbox / name).write_bytes(content)
    chooser = random.Random(20240611)
    pause = threading.Event()

    remaining_after_kill = []
    for _ in range(5):
        process = _start_daemon(
            tmp_path, inbox, output, "--max-batch-size", "8", "--decode-workers", "1"
        )
        lines: list[str] = []
        try:
            # Kill inside the k-th batch, at a random point of its decode, commit or moves.
            for _ in range(chooser.randint(1, 4)):
                _wait_for_log(process, "started: ", lines)
            _drain(process, lines)
            pause.wait(chooser.uniform(0.0, 0.05))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(JOIN_TIMEOUT)
        remaining_after_kill.append(len(os.listdir(inbox)))

    assert remaining_after_kill[-1] > 1, "the kills came after the inbox was already empty"

    final = _start_daemon(tmp_path, inbox, output, "--once")
    final_lines: list[str] = []
    _drain(final, final_lines)
    assert final.wait(120) == 0, "".join(final_lines[-30:])

    assert [name for name in os.listdir(inbox) if not name.startswith(".")] == []
    placed = Counter(path.name for path in output_files(output))
    assert placed == Counter(contents.keys())
    rows = _rows(served_registry)
    assert Counter(row.file_name for row in rows) == Counter(contents.keys())
    for row in rows:
        assert row.status is PredictionStatus.CLASSIFIED
        assert row.moved_at is not None
        destination = Path(row.destination_path)
        assert destination.read_bytes() == contents[row.file_name]
        assert hashlib.sha256(contents[row.file_name]).hexdigest() == row.content_sha256

    # Each killed run left a heartbeat without a recorded stop; the final run recorded its stop.
    a_minute_later = datetime.now(timezone.utc) + timedelta(minutes=1)
    states = collect_status(served_registry, now=a_minute_later).daemons
    assert Counter(state.liveness for state in states) == {
        Liveness.NOT_RESPONDING: 5,
        Liveness.STOPPED: 1,
    }
