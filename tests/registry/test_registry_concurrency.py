"""Two real processes writing to one database at once, as the daemon and the CLI do."""

from __future__ import annotations

import multiprocessing
import queue

import pytest
from registry_helpers import new_version, write_artifact
from registry_workers import promote_back_and_forth, write_predictions

from registry import PredictionFilter

BATCHES = 40
ROUNDS = 30


@pytest.mark.slow
def test_daemon_and_cli_write_concurrently(registry, registry_url, tmp_path):
    artifact = write_artifact(tmp_path / "files")
    version_id = registry.register_version(new_version(artifact)).id
    registry.register_version(new_version(artifact))
    home = str(registry.home)

    context = multiprocessing.get_context("spawn")
    start = context.Event()
    errors = context.Queue()
    processes = [
        context.Process(target=write_predictions, args=(registry_url, home, version_id, BATCHES, start, errors)),
        context.Process(target=promote_back_and_forth, args=(registry_url, home, ROUNDS, start, errors)),
    ]
    for process in processes:
        process.start()
    start.set()
    try:
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()

    reported = []
    while True:
        try:
            reported.append(errors.get(timeout=0.1))
        except queue.Empty:
            break
    assert reported == []
    assert [process.exitcode for process in processes] == [0, 0]

    stored = list(registry.query_predictions(PredictionFilter()))
    assert len(stored) == BATCHES * 5
    assert registry.unmoved_predictions() == []
    assert len(registry.alias_history("default")) >= ROUNDS
