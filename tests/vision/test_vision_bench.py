"""The decode benchmark runs end to end on a few real photos (what CI runs with --smoke)."""

from __future__ import annotations

import pytest

from bench import bench_decode


@pytest.mark.shared
def test_bench_smoke_prints_tables(clothing_dataset, capsys):
    status = bench_decode.main(["--smoke", "--large", "1"])

    output = capsys.readouterr().out
    assert status == 0
    for size in bench_decode.SIZES:
        assert f"| {size}x{size} |" in output
    assert "4032x3024" in output
    assert "keras load_img, nearest" in output


def test_bench_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SORTBOX_SHARED", str(tmp_path))

    status = bench_decode.main(["--smoke"])

    assert status == 1
    assert "validation photos not found" in capsys.readouterr().err
