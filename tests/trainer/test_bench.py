"""The training benchmark's smoke run, so the script CI may call keeps working."""

from __future__ import annotations

import pytest

from bench import bench_training


@pytest.mark.slow
def test_bench_smoke_prints_tables(capsys):
    bench_training.main(["--smoke"])

    output = capsys.readouterr().out
    assert "| classic: epoch 2, frozen base recomputed |" in output
    assert "| cache: extract features once |" in output
    assert "| classic epoch / cached head epoch |" in output
    assert "dataset: generated (smoke)" in output
