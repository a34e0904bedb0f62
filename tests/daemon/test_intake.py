"""Intake: temporary names, the settle check with a fake clock, the handler and the scan."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import pytest
from watchdog.events import (
    EventsLostEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from daemon.intake import (
    Arrival,
    InboxEventHandler,
    SettleTracker,
    has_open_writer,
    is_temporary_name,
    scan_inbox,
)


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "name",
    [".hidden.jpg", "photo.jpg.part", "photo.JPG.TMP", "photo.jpg.crdownload", "photo.jpg~", ""],
)
def test_temporary_names_are_ignored(name):
    assert is_temporary_name(name)


@pytest.mark.parametrize("name", ["photo.jpg", "part.jpg", "tmp", "résumé.png", "a~b.jpg"])
def test_real_names_are_taken(name):
    assert not is_temporary_name(name)


def test_settle_waits_for_quiet_period(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(0.5, clock=clock)
    path = tmp_path / "a.jpg"
    path.write_bytes(b"first")
    tracker.observe(str(path), Arrival.SCAN)

    assert tracker.poll() == ([], [])
    clock.now += 0.4
    assert tracker.poll() == ([], [])

    # The file grows: the quiet period starts again.
    with open(path, "ab") as handle:
        handle.write(b" more")
    clock.now += 0.2
    assert tracker.poll() == ([], [])
    clock.now += 0.4
    assert tracker.poll() == ([], [])
    clock.now += 0.1
    ready, rejected = tracker.poll()

    assert ready == [str(path)]
    assert rejected == []
    assert len(tracker) == 0


def test_settle_next_check_is_the_settle_deadline(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(0.5, clock=clock)
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    tracker.observe(str(path), Arrival.SCAN)

    assert tracker.next_check() == clock.now
    tracker.poll()
    assert tracker.next_check() == pytest.approx(clock.now + 0.5)


def _unknown(path: str) -> None:
    """An open-writer check that cannot tell, as on file systems without leases."""
    return None


def test_settle_waits_for_close_event(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(
        0.5, close_timeout_seconds=10, expects_close_events=True, clock=clock, writer_check=_unknown
    )
    path = tmp_path / "a.jpg"
    path.write_bytes(b"data")
    tracker.observe(str(path), Arrival.CHANGED)
    tracker.poll()
    clock.now += 1.0

    assert tracker.poll() == ([], [])
    tracker.observe(str(path), Arrival.CLOSED)
    assert tracker.poll()[0] == [str(path)]


def test_settle_close_timeout_releases_file(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(
        0.5, close_timeout_seconds=10, expects_close_events=True, clock=clock, writer_check=_unknown
    )
    path = tmp_path / "a.jpg"
    path.write_bytes(b"data")
    tracker.observe(str(path), Arrival.CHANGED)
    tracker.poll()

    clock.now += 9.9
    assert tracker.poll()[0] == []
    clock.now += 0.1
    assert tracker.poll()[0] == [str(path)]


def test_settle_rename_needs_no_close_event(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(
        0.5, close_timeout_seconds=60, expects_close_events=True, clock=clock, writer_check=_unknown
    )
    path = tmp_path / "a.jpg"
    path.write_bytes(b"data")
    tracker.observe(str(path), Arrival.CHANGED)
    tracker.observe(str(path), Arrival.MOVED_IN)
    tracker.poll()

    clock.now += 0.5
    assert tracker.poll()[0] == [str(path)]


def test_settle_open_writer_holds_file(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(0.5, close_timeout_seconds=60, expects_close_events=True, clock=clock)
    path = tmp_path / "a.jpg"
    with open(path, "wb") as handle:
        handle.write(b"data")
        handle.flush()
        tracker.observe(str(path), Arrival.SCAN)
        tracker.poll()
        clock.now += 5.0
        assert tracker.poll()[0] == []
        assert tracker.next_check() == clock.now + 0.5

    clock.now += 0.5
    assert tracker.poll()[0] == [str(path)]


def test_settle_closed_file_needs_no_close_event(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(0.5, close_timeout_seconds=60, expects_close_events=True, clock=clock)
    path = tmp_path / "a.jpg"
    path.write_bytes(b"data")
    tracker.observe(str(path), Arrival.CHANGED)
    tracker.poll()

    clock.now += 0.5
    assert tracker.poll()[0] == [str(path)]


def test_open_writer_check(tmp_path: Path):
    path = tmp_path / "a.jpg"
    with open(path, "wb") as handle:
        handle.write(b"data")
        assert has_open_writer(str(path)) is True
    assert has_open_writer(str(path)) is False
    assert has_open_writer(str(tmp_path / "missing.jpg")) is None


def test_settle_drops_vanished_file(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(0.1, clock=clock)
    path = tmp_path / "gone.jpg"
    path.write_bytes(b"x")
    tracker.observe(str(path), Arrival.SCAN)
    path.unlink()

    assert tracker.poll() == ([], [])
    assert len(tracker) == 0


def test_settle_rejects_symlink(tmp_path: Path):
    clock = FakeClock()
    tracker = SettleTracker(0.1, clock=clock)
    target = tmp_path / "outside.jpg"
    target.write_bytes(b"secret")
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    tracker.observe(str(link), Arrival.SCAN)

    ready, rejected = tracker.poll()

    assert ready == []
    assert [item.path for item in rejected] == [str(link)]
    assert "symbolic link" in rejected[0].reason


def test_handler_queues_paths_and_skips_temporary_names(tmp_path: Path):
    events: queue.Queue = queue.Queue(maxsize=10)
    rescan = threading.Event()
    wake = threading.Event()
    handler = InboxEventHandler(events, rescan, wake)

    handler.dispatch(FileCreatedEvent(str(tmp_path / "a.jpg")))
    handler.dispatch(FileCreatedEvent(str(tmp_path / "b.jpg.part")))
    handler.dispatch(FileMovedEvent(str(tmp_path / "b.jpg.part"), str(tmp_path / "b.jpg")))
    handler.dispatch(FileClosedEvent(str(tmp_path / "a.jpg")))
    handler.dispatch(FileOpenedEvent(str(tmp_path / "a.jpg")))

    queued = [events.get_nowait() for _ in range(events.qsize())]
    assert [(Path(item.path).name, item.arrival) for item in queued] == [
        ("a.jpg", Arrival.CHANGED),
        ("b.jpg", Arrival.MOVED_IN),
        ("a.jpg", Arrival.CLOSED),
    ]
    assert wake.is_set()
    assert not rescan.is_set()


def test_handler_full_move_events(tmp_path: Path):
    events: queue.Queue = queue.Queue(maxsize=10)
    handler = InboxEventHandler(events, threading.Event(), threading.Event())

    # Full inotify events: a rename from outside has no source, a rename out has no destination.
    handler.dispatch(FileMovedEvent("", str(tmp_path / "in.jpg")))
    handler.dispatch(FileMovedEvent(str(tmp_path / "out.jpg"), ""))

    queued = [events.get_nowait() for _ in range(events.qsize())]
    assert [(Path(item.path).name, item.arrival) for item in queued] == [("in.jpg", Arrival.MOVED_IN)]


def test_handler_full_queue_requests_rescan(tmp_path: Path):
    events: queue.Queue = queue.Queue(maxsize=2)
    rescan = threading.Event()
    handler = InboxEventHandler(events, rescan, threading.Event())

    for index in range(5):
        handler.dispatch(FileCreatedEvent(str(tmp_path / f"{index}.jpg")))

    assert events.qsize() == 2
    assert handler.dropped == 3
    assert rescan.is_set()


def test_handler_lost_events_request_rescan(tmp_path: Path):
    rescan = threading.Event()
    handler = InboxEventHandler(queue.Queue(), rescan, threading.Event())

    handler.dispatch(EventsLostEvent(str(tmp_path)))

    assert rescan.is_set()


def test_scan_skips_temporary_names_and_subfolders(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg.part").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpg").write_bytes(b"x")

    flat = [os.path.relpath(path, tmp_path) for path in scan_inbox(tmp_path, recursive=False)]
    deep = [os.path.relpath(path, tmp_path) for path in scan_inbox(tmp_path, recursive=True)]

    assert flat == ["a.jpg"]
    assert sorted(deep) == ["a.jpg", os.path.join("sub", "c.jpg")]


def test_scan_does_not_enter_linked_folders(tmp_path: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.jpg").write_bytes(b"x")
    (inbox / "linked").symlink_to(elsewhere, target_is_directory=True)

    assert list(scan_inbox(inbox, recursive=True)) == [str(inbox / "linked")]
