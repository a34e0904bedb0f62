"""Prediction exports and counts: formats, faithful names, and memory that does not grow with rows."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from registry_helpers import new_version, write_artifact

from registry import InvalidValueError, NewPrediction, PredictionFilter, PredictionStatus
from registry.orm import SqlPrediction
from registry.textpaths import decode_path

NON_UTF8_NAME = os.fsdecode(b"caf\xe9.jpg")
START = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def version_id(registry, tmp_path):
    return registry.register_version(new_version(write_artifact(tmp_path / "files"))).id


def _bulk_insert(registry, version_id: int, count: int) -> None:
    """Insert `count` predictions spread over hours, in one statement per 5,000 rows."""
    categories = ("pants", "shirt", "shoes")
    table = SqlPrediction.__table__
    with registry._db.engine.begin() as connection:
        for first in range(0, count, 5000):
            rows = []
            for index in range(first, min(first + 5000, count)):
                category = categories[index % 3]
                rows.append(
                    {
                        "content_sha256": f"{index:064x}",
                        "file_name": f"image-{index:07d}.jpg",
                        "source_path": f"/inbox/image-{index:07d}.jpg",
                        "destination_path": f"/sorted/{category}/image-{index:07d}.jpg",
                        "model_version_id": version_id,
                        "category": category,
                        "confidence": 0.5 + (index % 50) / 100,
                        "top_k": [[category, 0.9], ["other", 0.1]],
                        "status": PredictionStatus.CLASSIFIED,
                        "created_at": START + timedelta(minutes=index % 180),
                        "moved_at": START + timedelta(minutes=index % 180, seconds=1),
                    }
                )
            connection.execute(sa.insert(table), rows)


def _seed_small(registry, version_id):
    rows = [
        NewPrediction(
            content_sha256=f"{index:064x}",
            file_name=name,
            source_path=f"/inbox/{name}",
            destination_path=f"/sorted/{category}/{name}",
            status=PredictionStatus.CLASSIFIED,
            model_version_id=version_id,
            category=category,
            confidence=0.8,
            top_k=((category, 0.8), ("pants", 0.2)),
        )
        for index, (name, category) in enumerate(
            [("a.jpg", "shirt"), ("b.jpg", "shirt"), (NON_UTF8_NAME, "shoes")]
        )
    ]
    registry.add_predictions(rows)


def test_export_csv(registry, version_id):
    _seed_small(registry, version_id)
    stream = io.BytesIO()

    count = registry.export_predictions(PredictionFilter(newest_first=False), "csv", stream)

    assert count == 3
    text = stream.getvalue().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["file_name"] for row in rows] == ["a.jpg", "b.jpg", "fsbytes:caf%E9.jpg"]
    assert decode_path(rows[2]["file_name"]) == NON_UTF8_NAME
    assert decode_path(rows[2]["source_path"]) == f"/inbox/{NON_UTF8_NAME}"
    assert json.loads(rows[0]["top_k"]) == [["shirt", 0.8], ["pants", 0.2]]
    assert rows[0]["model_name"] == "default"
    assert rows[0]["moved_at"] == ""


def test_export_jsonl(registry, version_id):
    _seed_small(registry, version_id)
    stream = io.BytesIO()

    count = registry.export_predictions(PredictionFilter(category="shoes"), "jsonl", stream)

    assert count == 1
    lines = stream.getvalue().decode("ascii").splitlines()
    record = json.loads(lines[0])
    assert record["file_name"] == "fsbytes:caf%E9.jpg"
    assert os.fsencode(decode_path(record["file_name"])) == b"caf\xe9.jpg"
    assert record["status"] == "classified"
    assert record["model_version"] == 1
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None


def test_export_rejects_unknown_format(registry):
    with pytest.raises(InvalidValueError):
        registry.export_predictions(PredictionFilter(), "xml", io.BytesIO())


def test_stats_counts(registry, version_id):
    _bulk_insert(registry, version_id, 300)

    stats = registry.prediction_stats(PredictionFilter())

    assert stats.total == 300
    assert {item.category: item.count for item in stats.by_category} == {
        "pants": 100,
        "shirt": 100,
        "shoes": 100,
    }
    assert all(item.model_version == 1 for item in stats.by_category)
    assert [item.hour for item in stats.by_hour] == [START + timedelta(hours=hour) for hour in range(3)]
    assert sum(item.count for item in stats.by_hour) == 300


def test_stats_with_glob_matches_sql(registry, version_id):
    _bulk_insert(registry, version_id, 300)

    in_sql = registry.prediction_stats(PredictionFilter(category="shirt"))
    streamed = registry.prediction_stats(PredictionFilter(category="shirt", name_glob="image-*.jpg"))

    assert streamed == in_sql
    narrowed = registry.prediction_stats(PredictionFilter(name_glob="image-000000[0-4].jpg"))
    assert narrowed.total == 5


def _peak_export_bytes(registry, conditions: PredictionFilter, path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        with open(path, "wb") as handle:
            count = registry.export_predictions(conditions, "jsonl", handle)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


@pytest.mark.slow
def test_export_memory_stays_flat(registry, version_id, tmp_path):
    total = 10_000
    _bulk_insert(registry, version_id, total)

    small_count, small_peak = _peak_export_bytes(registry, PredictionFilter(limit=1_000), tmp_path / "small.jsonl")
    full_count, full_peak = _peak_export_bytes(registry, PredictionFilter(), tmp_path / "full.jsonl")

    assert (small_count, full_count) == (1_000, total)
    assert sum(1 for _ in open(tmp_path / "full.jsonl", "rb")) == total
    # Ten times the rows must not need ten times the memory: holding 10,000 Prediction objects
    # would take well over 10 MB, while a streamed export keeps one fetch chunk at a time.
    assert full_peak < small_peak * 2 + 2_000_000
    assert full_peak < 10_000_000


def test_export_to_named_pipe_keeps_pipe(tmp_path, monkeypatch):
    import threading

    from click.testing import CliRunner

    from cli import sortbox
    from registry import Registry

    home = tmp_path / "home"
    monkeypatch.setenv("SORTBOX_HOME", str(home))
    monkeypatch.delenv("SORTBOX_DB", raising=False)
    Registry.open(home=home).close()
    pipe = tmp_path / "predictions.pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()

    result = CliRunner().invoke(
        sortbox, ["predictions", "export", "--format", "csv", "--output", str(pipe)]
    )
    reader.join(timeout=30)

    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert received and received[0].startswith(b"id,")
