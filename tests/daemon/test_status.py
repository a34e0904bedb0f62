"""`sortbox status`: production versions of every model, daemon states and recent counts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from cli import sortbox
from daemon.status import Liveness, collect_status
from tests.daemon.helpers import register_model, run_once, write_image


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


def _beat(registry, daemon_id: str, **state) -> None:
    settings = {"inbox": "/srv/inbox", "heartbeat_seconds": 5.0, **state}
    registry.heartbeat(
        daemon_id, pid=4242, host="box", model_version_id=None, backlog=133, settings=settings
    )


def _liveness(registry, seconds_later: float, **options):
    now = datetime.now(timezone.utc) + timedelta(seconds=seconds_later)
    report = collect_status(registry, now=now, **options)
    return report, {state.heartbeat.daemon_id: state for state in report.daemons}


def test_clean_stop_is_recorded(served_registry, folders):
    inbox, output = folders
    write_image(inbox / "a.jpg", "red", seed=1)
    run_once(served_registry, inbox, output)

    _, states = _liveness(served_registry, 3600)

    [state] = states.values()
    assert state.liveness is Liveness.STOPPED
    assert state.stop_reason == "done"


def test_silent_daemon_is_not_responding(served_registry):
    _beat(served_registry, "killed", daemon_state="running")

    _, soon = _liveness(served_registry, 1)
    _, later = _liveness(served_registry, 16)

    assert soon["killed"].liveness is Liveness.RUNNING
    assert later["killed"].liveness is Liveness.NOT_RESPONDING
    assert later["killed"].heartbeat.backlog == 133


def test_missing_inbox_is_shown(served_registry):
    _beat(served_registry, "orphan", daemon_state="inbox missing")

    _, states = _liveness(served_registry, 1)

    assert states["orphan"].liveness is Liveness.RUNNING
    assert states["orphan"].inbox_missing


def test_old_daemons_hidden_unless_all(served_registry):
    _beat(served_registry, "old", daemon_state="stopped", stop_reason="terminated")

    report, states = _liveness(served_registry, 25 * 3600)
    every, every_states = _liveness(served_registry, 25 * 3600, all_daemons=True)

    assert states == {}
    assert report.hidden_daemons == 1
    assert every.hidden_daemons == 0
    assert every_states["old"].liveness is Liveness.STOPPED
    assert every_states["old"].stop_reason == "terminated"


def test_status_lines_name_each_liveness(served_registry, tmp_path):
    _beat(served_registry, "a" * 32, daemon_state="stopped", stop_reason="terminated")
    _beat(served_registry, "b" * 32, daemon_state="inbox missing")

    result = _status(tmp_path)
    every = _status(tmp_path, "--all")

    assert result.exit_code == 0, result.output
    assert "daemon aaaaaaaaaaaa on box pid 4242: stopped (terminated)" in result.output
    assert "daemon bbbbbbbbbbbb on box pid 4242: running, inbox folder missing" in result.output
    assert every.exit_code == 0, every.output
    assert "older daemons not shown" not in every.output
