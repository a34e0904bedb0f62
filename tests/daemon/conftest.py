"""Fixtures of the daemon tests: a tiny real Keras model and a registry that serves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from registry import Registry
from tests.daemon.helpers import register_model, save_color_model


@pytest.fixture(scope="session")
def color_model_file(tmp_path_factory) -> Path:
    """The color model saved once per session, and loaded once.

    The first load in a process may start process-wide worker threads in the inference runtime
    (OpenVINO's telemetry does), so it happens here, before `no_leaked_threads` takes its
    snapshot: such threads are not leaks of the daemon.
    """
    from vision.inference import load_model

    path = save_color_model(tmp_path_factory.mktemp("models") / "colors.keras")
    load_model(path)
    return path


@pytest.fixture
def registry(tmp_path: Path, color_model_file: Path):
    """A registry in a fresh SQLite file; it needs the model fixture only for its first load."""
    opened = Registry.open(url=f"sqlite:///{tmp_path / 'sortbox.db'}", home=tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture
def served_registry(registry: Registry, color_model_file: Path, tmp_path: Path) -> Registry:
    """The registry with the color model registered and promoted to production."""
    artifact = tmp_path / "colors.keras"
    shutil.copyfile(color_model_file, artifact)
    register_model(registry, artifact)
    return registry


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox, tmp_path / "output"
