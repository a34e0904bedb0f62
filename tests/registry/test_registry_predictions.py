"""Predictions, batches and heartbeats: the daemon's exactly-once protocol and the queries."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone

import pytest
from registry_helpers import new_version, write_artifact

from registry import (
    ConflictError,
    InvalidValueError,
    NewPrediction,
    NotFoundError,
    PredictionFilter,
    PredictionStatus,
)
from registry.textpaths import decode_path, encode_path

NON_UTF8_NAME = os.fsdecode(b"caf\xe9 photo.jpg")


@pytest.fixture
def version_ids(registry, tmp_path):
    """Database ids of versions 1 and 2 of `default`."""
    artifact = write_artifact(tmp_path / "files")
    return [registry.register_version(new_version(artifact)).id for _ in range(2)]


def sha(text: str) -> str:
    return hashlib.sha256(os.fsencode(text)).hexdigest()


def classified(name: str, version_id: int, category: str = "shirt", confidence: float = 0.9, **changes):
    fields = dict(
        content_sha256=sha(name),
        file_name=name,
        source_path=f"/inbox/{name}",
        destination_path=f"/sorted/{category}/{name}",
        status=PredictionStatus.CLASSIFIED,
        model_version_id=version_id,
        category=category,
        confidence=confidence,
        top_k=((category, confidence), ("pants", 1 - confidence)),
        decode_ms=3.5,
        inference_ms=12.0,
    )
    fields.update(changes)
    return NewPrediction(**fields)


def test_protocol_add_move_reconcile(registry, version_ids):
    batch_id = registry.start_batch(version_ids[0], 2)
    stored = registry.add_predictions(
        [classified("a.jpg", version_ids[0], batch_id=batch_id), classified("b.jpg", version_ids[0], batch_id=batch_id)]
    )
    registry.finish_batch(batch_id)

    assert [row.moved_at for row in stored] == [None, None]
    assert [row.file_name for row in registry.unmoved_predictions()] == ["a.jpg", "b.jpg"]

    registry.mark_moved([stored[0].id])

    unmoved = registry.unmoved_predictions()
    assert [row.file_name for row in unmoved] == ["b.jpg"]
    moved = registry.get_prediction(stored[0].id)
    assert moved.moved_at is not None
    assert moved.batch_id == batch_id
    assert moved.model_name == "default"
    assert moved.model_version == 1
    assert moved.top_k == (("shirt", 0.9), ("pants", pytest.approx(0.1)))


def test_unknown_batch_and_prediction(registry):
    with pytest.raises(NotFoundError):
        registry.finish_batch("no-such-batch")
    with pytest.raises(NotFoundError):
        registry.get_prediction(12345)


def test_second_classified_row_rejected(registry, version_ids):
    registry.add_predictions([classified("a.jpg", version_ids[0])])

    with pytest.raises(ConflictError):
        registry.add_predictions([classified("copy-of-a.jpg", version_ids[0], content_sha256=sha("a.jpg"))])

    # The same content may be classified by another version, or stored as a duplicate.
    registry.add_predictions([classified("a.jpg", version_ids[1])])
    first = registry.find_prediction_by_content(sha("a.jpg"), version_ids[0])
    duplicate = registry.add_predictions(
        [
            classified(
                "copy-of-a.jpg",
                version_ids[0],
                content_sha256=sha("a.jpg"),
                status=PredictionStatus.DUPLICATE,
                duplicate_of=first.id,
            )
        ]
    )
    assert duplicate[0].duplicate_of == first.id


def test_rejected_batch_stores_nothing(registry, version_ids):
    registry.add_predictions([classified("a.jpg", version_ids[0])])
    with pytest.raises(ConflictError):
        registry.add_predictions(
            [classified("new.jpg", version_ids[0]), classified("again.jpg", version_ids[0], content_sha256=sha("a.jpg"))]
        )
    assert [row.file_name for row in registry.query_predictions(PredictionFilter())] == ["a.jpg"]


def test_find_by_content_earliest_match(registry, version_ids):
    registry.add_predictions(
        [
            NewPrediction(
                content_sha256=sha("a.jpg"),
                file_name="a.jpg",
                source_path="/inbox/a.jpg",
                destination_path="/failed/a.jpg",
                status=PredictionStatus.FAILED,
                error="truncated JPEG",
            )
        ]
    )
    assert registry.find_prediction_by_content(sha("a.jpg")) is None

    review = classified("a.jpg", version_ids[1], status=PredictionStatus.REVIEW, confidence=0.3)
    registry.add_predictions([review, classified("a.jpg", version_ids[0])])

    found = registry.find_prediction_by_content(sha("a.jpg"))
    assert found.status == PredictionStatus.REVIEW
    assert registry.find_prediction_by_content(sha("a.jpg"), version_ids[0]).model_version == 1
    assert registry.find_prediction_by_content(sha("unknown")) is None


def test_find_by_contents_batched(registry, version_ids):
    review = classified("a.jpg", version_ids[1], status=PredictionStatus.REVIEW, confidence=0.3)
    registry.add_predictions([review, classified("a.jpg", version_ids[0]), classified("b.jpg", version_ids[1])])
    # More hashes than one query takes, so the lookup runs in several chunks.
    unknown = [sha(f"unknown-{index}") for index in range(1200)]

    found = registry.find_predictions_by_contents([sha("a.jpg"), sha("b.jpg"), *unknown, sha("a.jpg")])
    of_version = registry.find_predictions_by_contents([sha("a.jpg"), sha("b.jpg")], version_ids[0])

    assert set(found) == {sha("a.jpg"), sha("b.jpg")}
    assert found[sha("a.jpg")] == registry.find_prediction_by_content(sha("a.jpg"))
    assert found[sha("a.jpg")].status == PredictionStatus.REVIEW
    assert found[sha("b.jpg")].file_name == "b.jpg"
    assert set(of_version) == {sha("a.jpg")}
    assert of_version[sha("a.jpg")].model_version == 1
    assert registry.find_predictions_by_contents([]) == {}


def test_failed_row_without_model(registry):
    failed = NewPrediction(
        content_sha256=sha("broken"),
        file_name="broken.jpg",
        source_path="/inbox/broken.jpg",
        destination_path="/failed/broken.jpg",
        status=PredictionStatus.FAILED,
        error="cannot identify image file",
    )
    stored = registry.add_predictions([failed])[0]
    assert stored.model_version_id is None
    assert stored.model_name is None
    assert stored.error == "cannot identify image file"


def test_classified_needs_model_and_category(registry):
    with pytest.raises(InvalidValueError):
        registry.add_predictions([classified("a.jpg", None)])


@pytest.mark.parametrize(
    "name",
    [NON_UTF8_NAME, "zoë — résumé.jpg", "fsbytes:looks-escaped.jpg", os.fsdecode(b"\xff\xfe.png")],
)
def test_file_names_round_trip(registry, version_ids, name):
    row = classified(name, version_ids[0], source_path=f"/inbox/{name}", destination_path=f"/sorted/{name}")
    stored = registry.add_predictions([row])[0]

    loaded = registry.get_prediction(stored.id)
    assert loaded.file_name == name
    assert os.fsencode(loaded.source_path) == os.fsencode(f"/inbox/{name}")
    assert loaded.destination_path == f"/sorted/{name}"


def test_encode_path_keeps_plain_names_readable():
    assert encode_path("shirt-1.jpg") == "shirt-1.jpg"
    assert encode_path(NON_UTF8_NAME).startswith("fsbytes:")
    assert decode_path(encode_path("a\x00b")) == "a\x00b"


def _seed(registry, version_ids):
    start = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    rows = [
        classified("shirt-1.jpg", version_ids[0], "shirt", 0.95),
        classified("shirt-2.JPG", version_ids[0], "shirt", 0.55),
        classified("pants-1.png", version_ids[1], "pants", 0.85),
        classified("odd[1].jpg", version_ids[1], "shirt", 0.40, status=PredictionStatus.REVIEW),
        classified(NON_UTF8_NAME, version_ids[1], "shoes", 0.99),
    ]
    stored = registry.add_predictions(rows)
    return start, stored


def _names(registry, **conditions):
    return sorted(row.file_name for row in registry.query_predictions(PredictionFilter(**conditions)))


def test_query_filters(registry, version_ids):
    _seed(registry, version_ids)

    assert _names(registry, category="pants") == ["pants-1.png"]
    assert _names(registry, model_name="default", model_version=1) == ["shirt-1.jpg", "shirt-2.JPG"]
    assert _names(registry, model_version=2) == sorted(["pants-1.png", "odd[1].jpg", NON_UTF8_NAME])
    assert _names(registry, status=PredictionStatus.REVIEW) == ["odd[1].jpg"]
    assert _names(registry, confidence_below=0.6) == ["odd[1].jpg", "shirt-2.JPG"]
    assert len(_names(registry, limit=2)) == 2
    assert _names(registry, limit=0) == []


def test_query_name_glob(registry, version_ids):
    _seed(registry, version_ids)

    assert _names(registry, name_glob="*.jpg") == sorted(["shirt-1.jpg", "odd[1].jpg", NON_UTF8_NAME])
    assert _names(registry, name_glob="shirt-?.JPG") == ["shirt-2.JPG"]
    assert _names(registry, name_glob="odd[[]1].jpg") == ["odd[1].jpg"]
    assert _names(registry, name_glob="caf*") == [NON_UTF8_NAME]
    assert _names(registry, name_glob="100%*") == []
    assert len(_names(registry, name_glob="*", limit=3)) == 3


def test_query_time_window_and_order(registry, version_ids):
    _seed(registry, version_ids)
    everything = list(registry.query_predictions(PredictionFilter(newest_first=False)))
    middle = everything[2].created_at

    newest_first = list(registry.query_predictions(PredictionFilter()))
    assert [row.id for row in newest_first] == [row.id for row in reversed(everything)]

    since = list(registry.query_predictions(PredictionFilter(since=middle)))
    assert all(row.created_at >= middle for row in since)
    until = list(registry.query_predictions(PredictionFilter(until=middle)))
    assert all(row.created_at < middle for row in until)
    assert len(since) + len(until) == len(everything)

    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert list(registry.query_predictions(PredictionFilter(since=future))) == []


def test_query_rejects_bad_filters(registry):
    naive = datetime(2024, 5, 1, 10, 0)
    with pytest.raises(InvalidValueError):
        registry.query_predictions(PredictionFilter(since=naive))
    with pytest.raises(InvalidValueError):
        registry.query_predictions(PredictionFilter(confidence_below=2.0))
    later = datetime(2024, 5, 2, tzinfo=timezone.utc)
    with pytest.raises(InvalidValueError):
        registry.query_predictions(PredictionFilter(since=later, until=later - timedelta(hours=1)))


def test_heartbeat_upsert(registry, version_ids):
    registry.heartbeat("inbox-1", pid=100, host="box", model_version_id=version_ids[0], backlog=4, settings={"batch_size": 16})
    first = registry.list_heartbeats()[0]

    registry.heartbeat("inbox-1", pid=100, host="box", model_version_id=version_ids[1], backlog=0, settings={"batch_size": 16})
    same_process = registry.list_heartbeats()[0]
    assert same_process.started_at == first.started_at
    assert same_process.last_seen_at >= first.last_seen_at
    assert (same_process.backlog, same_process.model_version_id) == (0, version_ids[1])

    registry.heartbeat("inbox-1", pid=200, host="box", model_version_id=None, backlog=0, settings={"inbox": registry.home})
    restarted = registry.list_heartbeats()
    assert len(restarted) == 1
    assert restarted[0].started_at >= first.started_at
    assert restarted[0].pid == 200
    assert restarted[0].settings == {"inbox": str(registry.home)}
