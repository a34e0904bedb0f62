"""Fixtures shared by every test package.

Tests that need the shared clothing dataset or MobileNetV2 weights use the `clothing_dataset` and
`mobilenet_weights` fixtures. When the files are absent those tests skip with the reason, unless
SORTBOX_REQUIRE_SHARED=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tools import shared

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _require_shared_assets() -> None:
    missing = shared.missing_assets()
    if not missing:
        return
    names = ", ".join(str(path) for path in missing)
    reason = (
        f"shared assets not found: {names}; set {shared.SHARED_ENV} to the folder that holds "
        "datasets/ and weights/"
    )
    if shared.shared_required():
        pytest.fail(f"{reason} ({shared.REQUIRE_ENV} is set, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def clothing_dataset() -> Path:
    """The real clothing dataset: `train/` and `validation/` with ten class folders."""
    _require_shared_assets()
    return shared.clothing_dataset()


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    """ImageNet MobileNetV2 weights without the top, as a Keras `.weights.h5` file."""
    _require_shared_assets()
    return shared.mobilenet_v2_weights()


@pytest.fixture
def sortbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder with its own SQLite file, set through the environment."""
    home = tmp_path / "sortbox-data"
    monkeypatch.setenv("SORTBOX_HOME", str(home))
    monkeypatch.delenv("SORTBOX_DB", raising=False)
    return home


@pytest.fixture
def no_leaked_threads():
    """Fail a test that leaves non-daemon threads running (an observer not stopped and joined)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        thread
        for thread in threading.enumerate()
        if thread not in before and thread.is_alive() and not thread.daemon
    ]
    assert not leaked, f"threads still running after the test: {[t.name for t in leaked]}"
