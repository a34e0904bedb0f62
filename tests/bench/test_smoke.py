"""Each benchmark runs end to end with --smoke in its own process, as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tools.shared import REPO_ROOT

SMOKE_TIMEOUT_SECONDS = 600


def run_smoke(module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, "--smoke"],
        cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
    )


@pytest.mark.shared
@pytest.mark.slow
def test_inference_smoke(clothing_dataset):
    result = run_smoke("bench.bench_inference")

    assert result.returncode == 0, result.stderr
    assert "### MobileNetV2 96x96" in result.stdout
    assert "GFLOP/image (profiler)" in result.stdout
    assert "| (a) load_img + model.predict, batch of one |" in result.stdout
    assert "| (b) predict_batch, tensorflow |" in result.stdout
    assert "| (c) daemon end to end, tensorflow |" in result.stdout
    assert "16 files in" in result.stdout


@pytest.mark.shared
@pytest.mark.slow
def test_daemon_smoke(clothing_dataset):
    result = run_smoke("bench.bench_daemon")

    assert result.returncode == 0, result.stderr
    assert "MobileNetV2 96x96, weights ImageNet: 16 files in" in result.stdout
    assert "images/s" in result.stdout


@pytest.mark.shared
@pytest.mark.slow
def test_memory_smoke(clothing_dataset):
    result = run_smoke("bench.bench_memory")

    assert result.returncode == 0, result.stderr
    assert "- sortbox watch, MobileNetV2 96x96: 40 files in" in result.stdout
    assert "peak RSS" in result.stdout
    assert "growth" in result.stdout
    assert "- sortbox train, MobileNetV2 64x64" in result.stdout


def test_missing_dataset_fails(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_inference", "--smoke"],
        cwd=REPO_ROOT,
        env={**os.environ, "SORTBOX_SHARED": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
    )

    assert result.returncode == 1
    assert "validation photos not found" in result.stderr
