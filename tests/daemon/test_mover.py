"""Mover: safe category names, numbered destinations, moves that never overwrite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.errors import UnsafeCategoryError
from daemon.mover import (
    DestinationPlanner,
    check_category_name,
    move_noreplace,
    numbered_name,
    partial_path,
)


@pytest.mark.parametrize(
    "name",
    ["", "  ", ".", "..", "../evil", "a/b", "a\\b", "/etc", "nul\x00", "_review", "_failed", "x" * 256],
)
def test_unsafe_category_names_are_rejected(name):
    with pytest.raises(UnsafeCategoryError, match="cannot be an output folder"):
        check_category_name(name)


@pytest.mark.parametrize("name", ["red", "T-Shirt", "long sleeve", "été", "..dots", "_other"])
def test_safe_category_names_pass(name):
    check_category_name(name)


def test_numbered_name_keeps_suffix():
    assert numbered_name("cat.jpg", 0) == "cat.jpg"
    assert numbered_name("cat.jpg", 2) == "cat (2).jpg"
    assert numbered_name("archive", 1) == "archive (1)"


def test_numbered_name_stays_under_name_limit():
    name = "a" * 250 + ".jpg"

    numbered = numbered_name(name, 12)

    assert len(os.fsencode(numbered)) <= 255
    assert numbered.endswith(" (12).jpg")


def test_planner_skips_taken_and_reserved_names(tmp_path: Path):
    planner = DestinationPlanner(tmp_path)
    folder = planner.folder_for("red")
    folder.mkdir(parents=True)
    (folder / "cat.jpg").write_bytes(b"taken")

    first = planner.reserve(folder, "cat.jpg")
    second = planner.reserve(folder, "cat.jpg")
    planner.release(first)
    third = planner.reserve(folder, "cat.jpg")

    assert first.name == "cat (1).jpg"
    assert second.name == "cat (2).jpg"
    assert third.name == "cat (1).jpg"


def test_planner_folders(tmp_path: Path):
    planner = DestinationPlanner(tmp_path)

    assert planner.folder_for("red") == tmp_path / "red"
    assert planner.folder_for("red", review=True) == tmp_path / "_review" / "red"
    assert planner.folder_for(None, failed=True) == tmp_path / "_failed"
    with pytest.raises(UnsafeCategoryError):
        planner.folder_for("../evil")


def test_move_noreplace_moves_on_one_file_system(tmp_path: Path):
    source = tmp_path / "in.jpg"
    source.write_bytes(b"content")
    destination = tmp_path / "out.jpg"

    move_noreplace(source, destination)

    assert not source.exists()
    assert destination.read_bytes() == b"content"


def test_move_noreplace_never_overwrites(tmp_path: Path):
    source = tmp_path / "in.jpg"
    source.write_bytes(b"new")
    destination = tmp_path / "out.jpg"
    destination.write_bytes(b"old")

    with pytest.raises(FileExistsError):
        move_noreplace(source, destination)

    assert source.read_bytes() == b"new"
    assert destination.read_bytes() == b"old"


def _other_file_system(tmp_path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system (/dev/shm) to move across")
    return shm


def test_move_noreplace_copies_across_file_systems(tmp_path: Path):
    other = _other_file_system(tmp_path)
    source = Path(os.fsdecode(other)) / f"sortbox-test-{os.getpid()}-{tmp_path.name}.jpg"
    source.write_bytes(b"across")
    destination = tmp_path / "out.jpg"
    try:
        move_noreplace(source, destination)
    finally:
        if source.exists():
            source.unlink()

    assert destination.read_bytes() == b"across"
    assert not source.exists()
    assert not partial_path(destination).exists()


def test_move_noreplace_across_file_systems_never_overwrites(tmp_path: Path):
    other = _other_file_system(tmp_path)
    source = other / f"sortbox-test-{os.getpid()}-{tmp_path.name}.jpg"
    source.write_bytes(b"new")
    destination = tmp_path / "out.jpg"
    destination.write_bytes(b"old")
    try:
        with pytest.raises(FileExistsError):
            move_noreplace(source, destination)
        assert source.read_bytes() == b"new"
    finally:
        source.unlink()

    assert destination.read_bytes() == b"old"
    assert not partial_path(destination).exists()
