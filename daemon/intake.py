"""Intake: which inbox files to read, and when a file is complete enough to read.

The watchdog handler only puts paths on a bounded queue; it never stats or reads files, so the
observer thread never blocks. The `SettleTracker` then decides, on the service thread and with an
injectable clock, when each file has stopped changing.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import queue
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from watchdog.events import (
    EventsLostEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

logger = logging.getLogger(__name__)

# Shortest interval between two open-writer checks of a settled file that is still open.
MIN_WRITER_RECHECK_SECONDS = 0.1

# Names that downloaders, editors and copy tools use while a file is still being written; such a
# file is picked up once it is renamed to its real name.
TEMPORARY_SUFFIXES = (".part", ".tmp", ".temp", ".crdownload", ".partial", ".download", ".swp")


def is_temporary_name(name: str) -> bool:
    """Tell whether a file name marks a file that is still being written or is hidden."""
    if not name or name.startswith(".") or name.endswith("~"):
        return True
    return name.lower().endswith(TEMPORARY_SUFFIXES)


class Arrival(str, enum.Enum):
    """Kind of event or scan through which the service found a path."""

    SCAN = "scan"
    CHANGED = "changed"
    CLOSED = "closed"
    MOVED_IN = "moved_in"


@dataclass(frozen=True)
class IntakeEvent:
    path: str
    arrival: Arrival


class InboxEventHandler(FileSystemEventHandler):
    """Put the path of every inbox event on a bounded queue, dropping events when it is full.

    A dropped path is not lost for good: `rescan_requested` is set, and the next full scan of the
    inbox finds the file again.

    Args:
        events: Queue that the service thread drains.
        rescan_requested: Set when an event was dropped here or lost by the observer.
        wake: Set after every queued event, so the service thread wakes up at once.
    """

    def __init__(
        self, events: queue.Queue, rescan_requested: threading.Event, wake: threading.Event
    ):
        super().__init__()
        self._events = events
        self._rescan_requested = rescan_requested
        self._wake = wake
        self.dropped = 0

    def _put(self, path: bytes | str, arrival: Arrival) -> None:
        path = os.fsdecode(path)
        if is_temporary_name(os.path.basename(path)):
            return
        try:
            self._events.put_nowait(IntakeEvent(path, arrival))
        except queue.Full:
            self.dropped += 1
            self._rescan_requested.set()
        self._wake.set()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, EventsLostEvent):
            logger.warning("the observer lost events for %s; rescanning the inbox", event.src_path)
            self._rescan_requested.set()
            self._wake.set()
        elif isinstance(event, FileMovedEvent):
            # A rename from a temporary name, or a move into the inbox, makes a new file. With
            # full inotify events a rename from outside the inbox has an empty source, and a
            # rename out of it an empty destination.
            if event.dest_path:
                self._put(event.dest_path, Arrival.MOVED_IN)
        elif isinstance(event, FileClosedEvent):
            self._put(event.src_path, Arrival.CLOSED)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            self._put(event.src_path, Arrival.CHANGED)


def make_observer(*, polling: bool) -> BaseObserver:
    """Create the observer: polling when asked, else the native one of the platform.

    On Linux the inotify observer is created with full events. Without them watchdog 7 reports
    a rename from a folder outside the inbox (an IN_MOVED_TO without its IN_MOVED_FROM) as a
    `FileCreatedEvent`, which would make the file wait for a close event that never comes.
    """
    if polling:
        return PollingObserver()
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()


def has_open_writer(path: str) -> bool | None:
    """Tell whether any process has the file open for writing, or None when it cannot be known.

    Linux only: a read lease (fcntl F_SETLEASE) is refused with EAGAIN while the file is open
    for writing anywhere, and is released at once. A lease needs the caller to own the file (or
    CAP_LEASE) and a file system that supports leases; otherwise it returns None.
    """
    if fcntl is None or not hasattr(fcntl, "F_SETLEASE"):
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as error:
        return True if error.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(descriptor)


def scan_inbox(inbox: Path, *, recursive: bool) -> Iterator[str]:
    """Yield the path of every regular, non-temporary file in the inbox.

    Symbolic links are yielded too, so that the tracker can report them; folders behind links
    are never entered.
    """
    stack = [os.fspath(inbox)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError as error:
            logger.error("cannot list folder %s: %s", folder, error)
            continue
        for entry in sorted(entries, key=lambda item: item.name):
            if is_temporary_name(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(entry.path)
                    continue
            except OSError:
                continue
            yield entry.path


@dataclass
class _Pending:
    signature: tuple[int, int, int] | None
    stable_since: float
    check_at: float
    awaiting_close: bool


@dataclass(frozen=True)
class Rejected:
    """A path that the tracker stopped following and that must not be read."""

    path: str
    reason: str


class SettleTracker:
    """Decide when a file is complete: unchanged size and mtime for `settle_seconds`.

    A settled file is then checked for an open writer (see `has_open_writer`). Without one it is
    ready, however it arrived. With one it waits, rechecked every `settle_seconds`, until the
    writer closes it. Where the check cannot tell, a file that was created or modified while
    the observer reports close-after-write (inotify on Linux) waits for its close event, and a
    file that arrived by rename or was found by a scan does not. A writer that keeps the file
    open without writing for `close_timeout_seconds` is taken as done, so a lost close event
    cannot hold a file back forever.

    Args:
        settle_seconds: Quiet time required before a file is ready.
        close_timeout_seconds: Quiet time after which an open writer or a missing close event
            is ignored.
        expects_close_events: True when the observer emits `FileClosedEvent`.
        clock: Monotonic time in seconds; tests pass a fake.
        lstat: `os.lstat` or a replacement for tests.
        writer_check: Returns whether a path has an open writer, or None when unknown. Defaults
            to `has_open_writer`.
    """

    def __init__(
        self,
        settle_seconds: float,
        *,
        close_timeout_seconds: float = 30.0,
        expects_close_events: bool = False,
        clock: Callable[[], float] = time.monotonic,
        lstat: Callable[[str], os.stat_result] = os.lstat,
        writer_check: Callable[[str], bool | None] = has_open_writer,
    ):
        self._settle = settle_seconds
        self._close_timeout = max(close_timeout_seconds, settle_seconds)
        self._expects_close = expects_close_events
        self._clock = clock
        self._lstat = lstat
        self._writer_check = writer_check
        self._recheck = max(settle_seconds, MIN_WRITER_RECHECK_SECONDS)
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: str) -> bool:
        return path in self._pending

    def observe(self, path: str, arrival: Arrival) -> None:
        """Start or continue following a path after an event or a scan found it.

        A rename is atomic, so a file that arrived by one needs no close event even when an
        earlier event for the same path asked for one.
        """
        now = self._clock()
        entry = self._pending.get(path)
        if entry is None:
            # NOTE: a scan-found file has no close event to wait for. Where the open-writer lease
            # check cannot tell (another user's file, NFS, non-Linux), a writer that pauses
            # longer than the settle time gets its file read half-written.
            entry = _Pending(signature=None, stable_since=now, check_at=now, awaiting_close=False)
            self._pending[path] = entry

        if arrival is Arrival.CHANGED and self._expects_close:
            entry.awaiting_close = True
            entry.check_at = now
        elif arrival in (Arrival.CLOSED, Arrival.MOVED_IN):
            entry.awaiting_close = False
            entry.check_at = now

    def forget(self, path: str) -> None:
        self._pending.pop(path, None)

    def next_check(self) -> float | None:
        """Return the clock time of the earliest pending check, or None when nothing is pending."""
        if not self._pending:
            return None
        return min(entry.check_at for entry in self._pending.values())

    def poll(self) -> tuple[list[str], list[Rejected]]:
        """Stat the files whose check is due; return the ready ones and the rejected ones.

        Ready and rejected paths are no longer followed. A path that vanished is dropped silently.
        """
        now = self._clock()
        ready: list[str] = []
        rejected: list[Rejected] = []
        for path, entry in list(self._pending.items()):
            if entry.check_at > now:
                continue
            try:
                info = self._lstat(path)
            except FileNotFoundError:
                del self._pending[path]
                continue
            except OSError as error:
                del self._pending[path]
                rejected.append(Rejected(path, f"cannot stat: {error.strerror}"))
                continue
            if stat.S_ISLNK(info.st_mode):
                del self._pending[path]
                rejected.append(Rejected(path, "symbolic link (links are not followed)"))
                continue
            if not stat.S_ISREG(info.st_mode):
                del self._pending[path]
                continue

            signature = (info.st_size, info.st_mtime_ns, info.st_ino)
            if signature != entry.signature:
                entry.signature = signature
                entry.stable_since = now
                entry.check_at = now + self._settle
                if self._settle > 0:
                    continue

            quiet = now - entry.stable_since
            if quiet < self._settle:
                entry.check_at = entry.stable_since + self._settle
                continue
            close_deadline = entry.stable_since + self._close_timeout
            if quiet < self._close_timeout:
                writer = self._writer_check(path)
                if writer:
                    entry.check_at = min(now + self._recheck, close_deadline)
                    continue
                if writer is None and entry.awaiting_close:
                    entry.check_at = close_deadline
                    continue
            del self._pending[path]
            ready.append(path)
        return ready, rejected
