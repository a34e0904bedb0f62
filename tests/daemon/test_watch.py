"""The watch service end to end: a real observer on a real folder, real SQLite, a real model."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from daemon.errors import InboxLockedError, ModelUnavailableError
from registry.types import PredictionFilter, PredictionStatus
from tests.daemon.helpers import (
    JOIN_TIMEOUT,
    image_bytes,
    make_settings,
    output_files,
    register_model,
    run_once,
    save_color_model,
    start_service,
    wait_until,
    write_image,
)

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def _rows(registry):
    return list(registry.query_predictions(PredictionFilter(newest_first=False)))


def test_once_sorts_files_into_categories(served_registry, folders):
    inbox, output = folders
    for index, color in enumerate(["red", "green", "blue", "red"]):
        write_image(inbox / f"{color}-{index}.jpg", color, seed=index)

    summary = run_once(served_registry, inbox, output)

    assert summary.stop_reason == "done"
    assert summary.statuses == {"classified": 4}
    assert os.listdir(inbox) == [".sortbox.lock"]
    rows = _rows(served_registry)
    assert len(rows) == 4
    for row in rows:
        assert row.status is PredictionStatus.CLASSIFIED
        assert row.category == row.file_name.split("-")[0]
        assert row.model_version == 1
        assert row.moved_at is not None
        assert row.destination_path == os.fspath(output / row.category / row.file_name)
        destination = Path(row.destination_path)
        assert hashlib.sha256(destination.read_bytes()).hexdigest() == row.content_sha256
    assert len(output_files(output)) == 4


def test_running_service_takes_existing_and_new_files(served_registry, folders):
    inbox, output = folders
    write_image(inbox / "before.jpg", "green", seed=1)
    running = start_service(served_registry, make_settings(inbox, output))
    try:
        first = running.wait_for_files(1)
        write_image(inbox / "after.jpg", "blue", seed=2)
        second = running.wait_for_files(1)
    finally:
        summary = running.stop()

    assert [row.file_name for row in first[0].rows] == ["before.jpg"]
    assert [row.file_name for row in second[0].rows] == ["after.jpg"]
    assert (output / "green" / "before.jpg").is_file()
    assert (output / "blue" / "after.jpg").is_file()
    assert summary.files == 2
    assert served_registry.list_heartbeats()


def test_file_written_in_chunks_is_read_once_complete(served_registry, folders):
    inbox, output = folders
    content = image_bytes("red", seed=7)
    running = start_service(served_registry, make_settings(inbox, output, settle_ms=100))
    try:
        pause = threading.Event()
        chunk = len(content) // 8 + 1
        with open(inbox / "slow.jpg", "wb") as handle:
            # The pauses are longer than settle-ms, so only the close event marks the end.
            for start in range(0, len(content), chunk):
                handle.write(content[start : start + chunk])
                handle.flush()
                pause.wait(0.25)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    rows = _rows(served_registry)
    assert len(rows) == 1
    assert outcomes[0].rows[0].id == rows[0].id
    assert rows[0].status is PredictionStatus.CLASSIFIED
    assert rows[0].content_sha256 == hashlib.sha256(content).hexdigest()
    assert (output / "red" / "slow.jpg").read_bytes() == content


def test_temporary_name_is_taken_after_rename(served_registry, folders):
    inbox, output = folders
    running = start_service(served_registry, make_settings(inbox, output))
    try:
        temporary = inbox / "photo.jpg.part"
        temporary.write_bytes(image_bytes("blue", seed=3))
        temporary.rename(inbox / "photo.jpg")
        running.wait_for_files(1)
    finally:
        running.stop()

    rows = _rows(served_registry)
    assert [row.file_name for row in rows] == ["photo.jpg"]
    assert (output / "blue" / "photo.jpg").is_file()


def test_file_renamed_in_from_outside_needs_no_close(served_registry, folders, tmp_path):
    inbox, output = folders
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = write_image(elsewhere / "photo.jpg", "green", seed=4)
    # A close timeout far beyond the wait below: only the settle time may hold the file back.
    running = start_service(served_registry, make_settings(inbox, output, close_timeout_seconds=60))
    try:
        outside.rename(inbox / "photo.jpg")
        outcome = running.next_batch(timeout=20)
    finally:
        running.stop()

    assert [row.file_name for row in outcome.rows] == ["photo.jpg"]
    assert (output / "green" / "photo.jpg").is_file()


def test_bad_files_fail_and_batch_still_classifies(served_registry, folders):
    inbox, output = folders
    write_image(inbox / "good-red.jpg", "red", seed=1)
    write_image(inbox / "good-blue.jpg", "blue", seed=2)
    (inbox / "empty.jpg").write_bytes(b"")
    (inbox / "text.jpg").write_text("this is not a picture\n")
    (inbox / "truncated.jpg").write_bytes(image_bytes("green", seed=3)[:300])
    (inbox / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    Image.new("RGB", (100, 100), (1, 2, 3)).save(inbox / "huge.png")

    summary = run_once(served_registry, inbox, output, max_pixels=5000)

    rows = {row.file_name: row for row in _rows(served_registry)}
    assert summary.batches == 1
    assert len({row.batch_id for row in rows.values()}) == 1
    for name in ("good-red.jpg", "good-blue.jpg"):
        assert rows[name].status is PredictionStatus.CLASSIFIED
    expected_reasons = {
        "empty.jpg": "empty",
        "text.jpg": "not an image",
        "truncated.jpg": "truncated",
        "photo.heic": "HEIF",
        "huge.png": "pixels",
    }
    for name, reason in expected_reasons.items():
        row = rows[name]
        assert row.status is PredictionStatus.FAILED, name
        assert reason in row.error, (name, row.error)
        assert row.category is None
        assert row.destination_path == os.fspath(output / "_failed" / name)
        assert (output / "_failed" / name).is_file()
        assert row.moved_at is not None
    assert sorted(os.listdir(inbox)) == [".sortbox.lock"]


def test_non_ascii_and_non_utf8_names_round_trip(served_registry, folders):
    inbox, output = folders
    names = ["été 写真.jpg", os.fsdecode(b"raw-\xff\xfe-bytes.jpg")]
    for index, name in enumerate(names):
        write_image(inbox / name, "green", seed=index)

    run_once(served_registry, inbox, output)

    rows = _rows(served_registry)
    assert sorted(row.file_name for row in rows) == sorted(names)
    for row in rows:
        assert row.source_path == os.fspath(inbox / row.file_name)
        assert os.path.exists(os.fsencode(output / "green" / row.file_name))
    assert b"raw-\xff\xfe-bytes.jpg" in os.listdir(os.fsencode(output / "green"))


def test_same_name_gets_numbered_destination(served_registry, folders):
    inbox, output = folders
    (output / "red").mkdir(parents=True)
    (output / "red" / "cat.jpg").write_bytes(b"an earlier file")
    write_image(inbox / "cat.jpg", "red", seed=1)

    run_once(served_registry, inbox, output)

    assert (output / "red" / "cat.jpg").read_bytes() == b"an earlier file"
    assert (output / "red" / "cat (1).jpg").is_file()
    assert _rows(served_registry)[0].destination_path == os.fspath(output / "red" / "cat (1).jpg")


def test_low_confidence_goes_to_review(served_registry, folders):
    inbox, output = folders
    write_image(inbox / "grey.jpg", (120, 121, 119))
    write_image(inbox / "red.jpg", "red", seed=5)

    run_once(served_registry, inbox, output, review_below=0.6)

    rows = {row.file_name: row for row in _rows(served_registry)}
    assert rows["grey.jpg"].status is PredictionStatus.REVIEW
    assert rows["grey.jpg"].confidence < 0.6
    category = rows["grey.jpg"].category
    assert (output / "_review" / category / "grey.jpg").is_file()
    assert rows["red.jpg"].status is PredictionStatus.CLASSIFIED
    assert (output / "red" / "red.jpg").is_file()


def test_duplicates_reuse_earlier_category(served_registry, folders):
    inbox, output = folders
    content = image_bytes("blue", seed=9)
    (inbox / "first.jpg").write_bytes(content)
    run_once(served_registry, inbox, output)
    (inbox / "again.jpg").write_bytes(content)
    (inbox / "again-twice.jpg").write_bytes(content)

    run_once(served_registry, inbox, output)

    rows = {row.file_name: row for row in _rows(served_registry)}
    first = rows["first.jpg"]
    assert first.status is PredictionStatus.CLASSIFIED
    for name in ("again.jpg", "again-twice.jpg"):
        assert rows[name].status is PredictionStatus.DUPLICATE
        assert rows[name].duplicate_of == first.id
        assert rows[name].category == "blue"
        assert rows[name].inference_ms is None
        assert (output / "blue" / name).is_file()


def test_duplicates_in_one_batch(served_registry, folders):
    inbox, output = folders
    content = image_bytes("red", seed=4)
    (inbox / "a.jpg").write_bytes(content)
    (inbox / "b.jpg").write_bytes(content)

    summary = run_once(served_registry, inbox, output)

    rows = sorted(_rows(served_registry), key=lambda row: row.id)
    assert summary.batches == 1
    assert [row.status for row in rows] == [PredictionStatus.CLASSIFIED, PredictionStatus.DUPLICATE]
    assert rows[1].duplicate_of == rows[0].id
    assert rows[1].category == rows[0].category == "red"


@pytest.mark.parametrize("policy", ["reuse", "reclassify"])
def test_duplicates_in_consecutive_batches(served_registry, folders, policy):
    inbox, output = folders
    content = image_bytes("blue", seed=8)
    names = [f"copy{index}.jpg" for index in range(6)]
    for name in names:
        (inbox / name).write_bytes(content)

    # One file per batch: a batch is classified while the one before it may still be unwritten.
    summary = run_once(served_registry, inbox, output, max_batch_size=1, duplicates=policy)

    rows = sorted(_rows(served_registry), key=lambda row: row.id)
    assert summary.batches == len(names)
    assert [row.status for row in rows].count(PredictionStatus.CLASSIFIED) == 1
    assert all(row.duplicate_of == rows[0].id for row in rows[1:])
    assert all(row.category == "blue" for row in rows)
    assert len(output_files(output)) == len(names)


def test_duplicates_reclassify_by_version(served_registry, folders, tmp_path):
    inbox, output = folders
    content = image_bytes("green", seed=6)
    (inbox / "one.jpg").write_bytes(content)
    run_once(served_registry, inbox, output, duplicates="reclassify")
    (inbox / "two.jpg").write_bytes(content)
    run_once(served_registry, inbox, output, duplicates="reclassify")
    register_model(served_registry, save_color_model(tmp_path / "v2.keras", scale=20.0))
    (inbox / "three.jpg").write_bytes(content)

    run_once(served_registry, inbox, output, duplicates="reclassify")

    rows = {row.file_name: row for row in _rows(served_registry)}
    assert rows["one.jpg"].status is PredictionStatus.CLASSIFIED
    assert rows["two.jpg"].status is PredictionStatus.DUPLICATE
    assert rows["two.jpg"].duplicate_of == rows["one.jpg"].id
    assert rows["two.jpg"].inference_ms is not None
    assert rows["three.jpg"].status is PredictionStatus.CLASSIFIED
    assert rows["three.jpg"].model_version == 2


def test_unsafe_class_name_is_refused(registry, folders, tmp_path):
    inbox, output = folders
    artifact = save_color_model(tmp_path / "evil.keras")
    register_model(registry, artifact, class_names=("red", "../evil", "blue"))
    write_image(inbox / "green.jpg", "green", seed=1)

    with pytest.raises(ModelUnavailableError, match="points to no version that loads"):
        run_once(registry, inbox, output)

    assert (inbox / "green.jpg").is_file()
    assert not (tmp_path / "evil").exists()
    assert output_files(output) == []
    assert _rows(registry) == []


def test_no_model_leaves_files_until_promotion(registry, folders, tmp_path):
    inbox, output = folders
    write_image(inbox / "waiting.jpg", "red", seed=1)
    version = register_model(registry, save_color_model(tmp_path / "m.keras"), promote=False)
    running = start_service(registry, make_settings(inbox, output))
    try:
        wait_until(lambda: registry.list_heartbeats())
        assert (inbox / "waiting.jpg").is_file()
        assert _rows(registry) == []

        registry.set_alias(version.model_name, "production", version.version)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    assert outcomes[0].rows[0].file_name == "waiting.jpg"
    assert (output / "red" / "waiting.jpg").is_file()


def test_promotion_while_files_arrive(served_registry, folders, tmp_path):
    inbox, output = folders
    second = register_model(
        served_registry, save_color_model(tmp_path / "v2.keras", scale=20.0), promote=False
    )
    running = start_service(served_registry, make_settings(inbox, output, max_batch_size=4))
    written = 0
    reported = 0
    try:
        for _ in range(6):
            write_image(inbox / f"early-{written}.jpg", "red", seed=written)
            written += 1
        reported += sum(len(outcome.rows) for outcome in running.wait_for_files(6))

        served_registry.set_alias(second.model_name, "production", second.version)
        label = None
        while label != "default v2":
            write_image(inbox / f"late-{written}.jpg", "blue", seed=written)
            written += 1
            outcome = running.next_batch()
            reported += len(outcome.rows)
            label = outcome.model_label
        for _ in range(5):
            write_image(inbox / f"after-{written}.jpg", "green", seed=written)
            written += 1
        running.wait_for_files(written - reported)
    finally:
        running.stop()

    rows = sorted(_rows(served_registry), key=lambda row: row.id)
    assert len(rows) == written
    assert all(row.status is PredictionStatus.CLASSIFIED for row in rows)
    versions = [row.model_version for row in rows]
    first_v2 = versions.index(2)
    assert set(versions[:first_v2]) == {1}
    assert set(versions[first_v2:]) == {2}
    assert {row.model_version for row in rows if row.file_name.startswith("after-")} == {2}
    assert [name for name in os.listdir(inbox) if not name.startswith(".")] == []


def test_symlink_in_inbox_is_skipped(served_registry, folders, tmp_path):
    inbox, output = folders
    secret = tmp_path / "secret.jpg"
    write_image(secret, "red", seed=1)
    (inbox / "link.jpg").symlink_to(secret)
    write_image(inbox / "real.jpg", "blue", seed=2)

    summary = run_once(served_registry, inbox, output)

    assert summary.skipped == 1
    assert [row.file_name for row in _rows(served_registry)] == ["real.jpg"]
    assert (inbox / "link.jpg").is_symlink()
    assert secret.is_file()


def test_recursive_inbox_takes_subfolders(served_registry, folders):
    inbox, output = folders
    (inbox / "day1").mkdir()
    write_image(inbox / "day1" / "a.jpg", "green", seed=1)
    write_image(inbox / "top.jpg", "green", seed=2)

    run_once(served_registry, inbox, output, recursive=True)

    assert sorted(row.file_name for row in _rows(served_registry)) == ["a.jpg", "top.jpg"]
    assert (output / "green" / "a.jpg").is_file()


def test_polling_observer_sees_new_files(served_registry, folders):
    inbox, output = folders
    running = start_service(served_registry, make_settings(inbox, output, polling=True))
    try:
        write_image(inbox / "polled.jpg", "red", seed=1)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    assert outcomes[0].rows[0].file_name == "polled.jpg"


def test_burst_of_1000_files(served_registry, folders):
    inbox, output = folders
    running = start_service(
        served_registry, make_settings(inbox, output, settle_ms=50, queue_size=300)
    )
    try:
        for index in range(1000):
            write_image(inbox / f"burst-{index:04d}.jpg", ("red", "green", "blue")[index % 3], seed=index)
        running.wait_for_files(1000, timeout=120)
    finally:
        running.stop()

    rows = _rows(served_registry)
    assert len(rows) == 1000
    assert len({row.file_name for row in rows}) == 1000
    assert all(row.status is PredictionStatus.CLASSIFIED for row in rows)
    assert all(row.moved_at is not None for row in rows)
    assert [name for name in os.listdir(inbox) if not name.startswith(".")] == []
    assert len(output_files(output)) == 1000


def test_failed_new_version_keeps_old_one_serving(served_registry, folders, tmp_path, caplog):
    inbox, output = folders
    caplog.set_level("INFO", logger="daemon")
    running = start_service(served_registry, make_settings(inbox, output))
    try:
        register_model(
            served_registry,
            save_color_model(tmp_path / "bad.keras", scale=5.0),
            class_names=("red", "../evil", "blue"),
        )
        wait_until(lambda: any("cannot load version id" in r.getMessage() for r in caplog.records))
        write_image(inbox / "still.jpg", "red", seed=1)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    assert outcomes[0].model_label == "default v1"
    assert outcomes[0].rows[0].model_version == 1
    assert not (tmp_path / "evil").exists()


def test_other_preprocessing_is_refused(served_registry, folders, tmp_path, caplog):
    inbox, output = folders
    caplog.set_level("INFO", logger="daemon")
    running = start_service(served_registry, make_settings(inbox, output))
    try:
        register_model(
            served_registry,
            save_color_model(tmp_path / "other-pixels.keras", scale=5.0),
            preprocessing="cv2-bgr8-area-v1",
        )
        wait_until(lambda: any("preprocessing 'cv2-bgr8-area-v1'" in r.getMessage() for r in caplog.records))
        write_image(inbox / "still.jpg", "red", seed=1)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    assert outcomes[0].model_label == "default v1"
    assert outcomes[0].rows[0].model_version == 1


def test_only_other_preprocessing_stops_once(registry, folders, tmp_path):
    inbox, output = folders
    register_model(
        registry, save_color_model(tmp_path / "other.keras"), preprocessing="cv2-bgr8-area-v1"
    )
    write_image(inbox / "waiting.jpg", "red", seed=2)

    with pytest.raises(ModelUnavailableError, match="points to no version that loads"):
        run_once(registry, inbox, output)

    assert (inbox / "waiting.jpg").is_file()
    assert _rows(registry) == []


def test_exit_when_idle_stops_service(served_registry, folders):
    inbox, output = folders
    write_image(inbox / "a.jpg", "blue", seed=1)
    running = start_service(served_registry, make_settings(inbox, output, exit_when_idle=0.3))

    running.thread.join(JOIN_TIMEOUT)
    summary = running.stop()

    assert summary.stop_reason == "idle"
    assert summary.files == 1


def test_second_daemon_on_same_folders_is_rejected(served_registry, folders):
    inbox, output = folders
    running = start_service(served_registry, make_settings(inbox, output))
    try:
        with pytest.raises(InboxLockedError, match="in use by another sortbox daemon"):
            run_once(served_registry, inbox, output)
    finally:
        running.stop()


def test_output_on_another_file_system(served_registry, folders, tmp_path):
    inbox, _ = folders
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system (/dev/shm) for the output folder")
    output = shm / f"sortbox-test-output-{os.getpid()}-{tmp_path.name}"
    write_image(inbox / "far.jpg", "blue", seed=1)
    try:
        run_once(served_registry, inbox, output)

        assert (output / "blue" / "far.jpg").is_file()
        assert [path.name for path in (output / "blue").iterdir()] == ["far.jpg"]
        assert _rows(served_registry)[0].moved_at is not None
    finally:
        shutil.rmtree(output, ignore_errors=True)
    assert not (inbox / "far.jpg").exists()


def test_model_check_retries_failed_version(served_registry, folders, tmp_path, caplog):
    inbox, output = folders
    caplog.set_level("INFO", logger="daemon")
    artifact = save_color_model(tmp_path / "v2.keras", scale=20.0)
    second = register_model(served_registry, artifact, promote=False)
    running = start_service(served_registry, make_settings(inbox, output, model_poll_seconds=60))
    try:
        served_registry.set_alias(second.model_name, "production", second.version)
        moved_away = artifact.rename(tmp_path / "v2-away.keras")
        running.service.request_model_check()
        wait_until(lambda: any("cannot load version id" in r.getMessage() for r in caplog.records))

        moved_away.rename(artifact)
        running.service.request_model_check()
        wait_until(lambda: any("now serving default v2" in r.getMessage() for r in caplog.records))
        write_image(inbox / "new.jpg", "red", seed=3)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    assert outcomes[0].model_label == "default v2"
    assert outcomes[0].rows[0].model_version == 2
