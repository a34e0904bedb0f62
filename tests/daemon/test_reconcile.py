"""Reconciliation of unmoved rows: every state a kill can leave between commit and mark."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.mover import partial_path
from daemon.reconcile import reconcile_unmoved
from registry.types import NewPrediction, PredictionStatus


def _row(registry, source: Path, destination: Path, content: bytes):
    return registry.add_predictions(
        [
            NewPrediction(
                content_sha256=hashlib.sha256(content).hexdigest(),
                file_name=source.name,
                source_path=os.fspath(source),
                destination_path=os.fspath(destination),
                status=PredictionStatus.FAILED,
                error="not an image",
            )
        ]
    )[0]


@pytest.fixture
def layout(tmp_path: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    failed = tmp_path / "output" / "_failed"
    return inbox, failed


def _unmoved_ids(registry) -> list[int]:
    return [row.id for row in registry.unmoved_predictions()]


def test_committed_but_not_moved_is_moved(registry, layout):
    inbox, failed = layout
    source = inbox / "a.jpg"
    source.write_bytes(b"aaa")
    row = _row(registry, source, failed / "a.jpg", b"aaa")

    report = reconcile_unmoved(registry, inbox)

    assert report.moved == [row.id]
    assert not source.exists()
    assert (failed / "a.jpg").read_bytes() == b"aaa"
    assert _unmoved_ids(registry) == []


def test_linked_but_source_not_removed(registry, layout):
    inbox, failed = layout
    failed.mkdir(parents=True)
    source = inbox / "a.jpg"
    source.write_bytes(b"aaa")
    os.link(source, failed / "a.jpg")
    row = _row(registry, source, failed / "a.jpg", b"aaa")

    report = reconcile_unmoved(registry, inbox)

    assert report.marked == [row.id]
    assert not source.exists()
    assert (failed / "a.jpg").read_bytes() == b"aaa"
    assert _unmoved_ids(registry) == []


def test_copied_but_source_not_removed(registry, layout):
    inbox, failed = layout
    failed.mkdir(parents=True)
    source = inbox / "a.jpg"
    source.write_bytes(b"aaa")
    (failed / "a.jpg").write_bytes(b"aaa")
    row = _row(registry, source, failed / "a.jpg", b"aaa")

    report = reconcile_unmoved(registry, inbox)

    assert report.marked == [row.id]
    assert not source.exists()
    assert _unmoved_ids(registry) == []


def test_moved_but_not_marked(registry, layout):
    inbox, failed = layout
    failed.mkdir(parents=True)
    (failed / "a.jpg").write_bytes(b"aaa")
    row = _row(registry, inbox / "a.jpg", failed / "a.jpg", b"aaa")

    report = reconcile_unmoved(registry, inbox)

    assert report.marked == [row.id]
    assert _unmoved_ids(registry) == []


def test_interrupted_copy_is_cleaned_and_redone(registry, layout):
    inbox, failed = layout
    failed.mkdir(parents=True)
    source = inbox / "a.jpg"
    source.write_bytes(b"complete content")
    partial_path(failed / "a.jpg").write_bytes(b"compl")
    row = _row(registry, source, failed / "a.jpg", b"complete content")

    report = reconcile_unmoved(registry, inbox)

    assert report.moved == [row.id]
    assert (failed / "a.jpg").read_bytes() == b"complete content"
    assert not partial_path(failed / "a.jpg").exists()


def test_foreign_file_at_destination_is_left_alone(registry, layout):
    inbox, failed = layout
    failed.mkdir(parents=True)
    source = inbox / "a.jpg"
    source.write_bytes(b"ours")
    (failed / "a.jpg").write_bytes(b"someone else's")
    row = _row(registry, source, failed / "a.jpg", b"ours")
    reported: set[int] = set()

    report = reconcile_unmoved(registry, inbox, reported_ids=reported)

    assert report.unresolved == [row.id]
    assert reported == {row.id}
    assert source.read_bytes() == b"ours"
    assert (failed / "a.jpg").read_bytes() == b"someone else's"
    assert _unmoved_ids(registry) == [row.id]


def test_replaced_source_is_not_moved(registry, layout):
    inbox, failed = layout
    source = inbox / "a.jpg"
    source.write_bytes(b"a new file under the old name")
    row = _row(registry, source, failed / "a.jpg", b"old content")

    report = reconcile_unmoved(registry, inbox)

    assert report.unresolved == [row.id]
    assert source.exists()
    assert not (failed / "a.jpg").exists()


def test_vanished_file_stays_unresolved(registry, layout):
    inbox, failed = layout
    row = _row(registry, inbox / "a.jpg", failed / "a.jpg", b"aaa")

    report = reconcile_unmoved(registry, inbox)

    assert report.unresolved == [row.id]
    assert _unmoved_ids(registry) == [row.id]


def test_rows_of_other_inboxes_are_skipped(registry, layout, tmp_path: Path):
    inbox, failed = layout
    other = tmp_path / "other-inbox"
    other.mkdir()
    source = other / "a.jpg"
    source.write_bytes(b"aaa")
    _row(registry, source, failed / "a.jpg", b"aaa")

    report = reconcile_unmoved(registry, inbox)

    assert report.finished == 0
    assert report.unresolved == []
    assert source.exists()
