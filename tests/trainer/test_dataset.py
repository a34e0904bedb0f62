"""Dataset scanning: layouts, class names, ignored files and the fingerprint, without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import make_dataset, write_jpeg
from trainer.dataset import TRAIN, VALIDATION, scan_dataset
from trainer.errors import ConfigError, DatasetError


def test_scan_split_layout(tiny_dataset: Path):
    scan = scan_dataset(tiny_dataset)

    assert scan.class_names == ("blue", "green", "red")
    assert scan.layout == "split"
    assert scan.split_counts == {TRAIN: 24, VALIDATION: 9}
    assert {record.label for record in scan.splits[TRAIN]} == {0, 1, 2}


def test_class_names_sorted_by_code_point(tmp_path: Path):
    colours = {"b": (0, 0, 0), "B": (10, 10, 10), "é": (20, 20, 20), "a": (30, 30, 30)}
    root = make_dataset(tmp_path / "data", splits={"train": 1, "validation": 1}, classes=colours)

    scan = scan_dataset(root)

    assert scan.class_names == ("B", "a", "b", "é")


def test_hidden_and_system_files_ignored(tiny_dataset: Path):
    (tiny_dataset / "train" / "red" / ".DS_Store").write_bytes(b"\0\0")
    (tiny_dataset / "train" / "red" / "Thumbs.db").write_bytes(b"\0")
    (tiny_dataset / "train" / "red" / "._red_000.jpg").write_bytes(b"\0\5\26\7")
    (tiny_dataset / "train" / "red" / "notes.txt").write_text("not an image")
    write_jpeg(tiny_dataset / "train" / "red" / ".thumbnails" / "red.jpg", (200, 0, 0), 1)
    write_jpeg(tiny_dataset / "train" / ".cache" / "x.jpg", (200, 0, 0), 2)

    scan = scan_dataset(tiny_dataset)

    reasons = {item.relative_path: item.reason for item in scan.ignored}
    assert reasons["train/red/.DS_Store"] == "hidden or system file"
    assert reasons["train/red/Thumbs.db"] == "hidden or system file"
    assert reasons["train/red/._red_000.jpg"] == "hidden or system file"
    assert reasons["train/red/notes.txt"] == "not an image file name"
    assert reasons["train/red/.thumbnails"] == "hidden folder"
    assert reasons["train/.cache"] == "hidden or system entry"
    assert scan.split_counts[TRAIN] == 24


def test_accepted_suffixes_any_case(tiny_dataset: Path):
    write_jpeg(tiny_dataset / "train" / "red" / "UPPER.JPG", (200, 0, 0), 3)
    write_jpeg(tiny_dataset / "train" / "red" / "long.jpeg", (200, 0, 0), 4)

    scan = scan_dataset(tiny_dataset)

    paths = {record.relative_path for record in scan.splits[TRAIN]}
    assert "train/red/UPPER.JPG" in paths
    assert "train/red/long.jpeg" in paths


def test_empty_class_folder_named(tiny_dataset: Path):
    empty = tiny_dataset / "validation" / "yellow"
    empty.mkdir()
    (tiny_dataset / "train" / "yellow").mkdir()
    write_jpeg(tiny_dataset / "train" / "yellow" / "y.jpg", (250, 250, 0), 5)
    (empty / ".DS_Store").write_bytes(b"\0")

    with pytest.raises(DatasetError) as raised:
        scan_dataset(tiny_dataset)

    assert str(empty) in str(raised.value)
    assert "contains no images (1 other file(s) ignored)" in str(raised.value)


@pytest.mark.parametrize(
    "folder_name, problem",
    [("_review", "reserved"), ("a..b", "'..'"), (" ", "empty")],
)
def test_unsafe_class_name_rejected(tiny_dataset: Path, folder_name: str, problem: str):
    write_jpeg(tiny_dataset / "train" / folder_name / "x.jpg", (1, 2, 3), 6)

    with pytest.raises(DatasetError) as raised:
        scan_dataset(tiny_dataset)

    assert folder_name in str(raised.value)
    assert problem in str(raised.value)


def test_different_classes_between_splits(tiny_dataset: Path):
    write_jpeg(tiny_dataset / "validation" / "purple" / "p.jpg", (120, 0, 120), 7)

    with pytest.raises(DatasetError) as raised:
        scan_dataset(tiny_dataset)

    assert "extra: purple" in str(raised.value)


def test_single_class_rejected(tmp_path: Path):
    root = make_dataset(tmp_path / "data", classes={"only": (1, 1, 1)})

    with pytest.raises(DatasetError, match="at least two classes"):
        scan_dataset(root)


def test_missing_validation_needs_split(tmp_path: Path):
    root = make_dataset(tmp_path / "data", splits={"": 5})

    with pytest.raises(DatasetError, match="--validation-split"):
        scan_dataset(root)


def test_validation_split_contradicts_layout(tiny_dataset: Path):
    with pytest.raises(ConfigError, match="drop --validation-split"):
        scan_dataset(tiny_dataset, validation_split=0.2)


def test_flat_layout_split_is_fixed(tmp_path: Path):
    root = make_dataset(tmp_path / "data", splits={"": 10})

    first = scan_dataset(root, validation_split=0.2)
    second = scan_dataset(root, validation_split=0.2)

    assert first.layout == "flat"
    assert first.split_counts == {TRAIN: 24, VALIDATION: 6}
    first_validation = [record.relative_path for record in first.splits[VALIDATION]]
    second_validation = [record.relative_path for record in second.splits[VALIDATION]]
    assert first_validation == second_validation


def test_fingerprint_follows_content(tiny_dataset: Path):
    before = scan_dataset(tiny_dataset).fingerprint

    write_jpeg(tiny_dataset / "train" / "red" / "red_000.jpg", (10, 200, 10), 99)
    after = scan_dataset(tiny_dataset).fingerprint

    assert len(before) == 64
    assert before != after


def test_broken_symlink_listed(tiny_dataset: Path):
    link = tiny_dataset / "train" / "red" / "gone.jpg"
    link.symlink_to(tiny_dataset / "nowhere.jpg")

    scan = scan_dataset(tiny_dataset)

    reasons = {item.relative_path: item.reason for item in scan.ignored}
    assert reasons["train/red/gone.jpg"] == "broken symbolic link"
    assert scan.split_counts[TRAIN] == 24


def test_class_folder_per_layout(tiny_dataset: Path, tmp_path: Path):
    flat = make_dataset(tmp_path / "flat", splits={"": 4})

    assert scan_dataset(tiny_dataset).class_folder(VALIDATION, "red") == tiny_dataset / "validation" / "red"
    assert scan_dataset(flat, validation_split=0.25).class_folder(VALIDATION, "red") == flat / "red"
