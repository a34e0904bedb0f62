"""The inbox's lock and observer, renewed when the inbox folder is deleted and created again.

Deleting the inbox (`rm -rf inbox`) deletes its lock file and ends the observer's watch, so the
daemon would see no new file and a second daemon could lock the new folder. `WatchedInbox.check()`
notices a missing or replaced folder by its device and inode numbers. It logs an error when the
folder goes missing, and again at most once every `MISSING_LOG_SECONDS` while it stays missing.
When a folder exists at the path again, it locks that folder and starts a new observer on it.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from daemon.intake import make_observer
from daemon.locks import FolderLock

logger = logging.getLogger(__name__)

# Interval of the error logged while the inbox stays missing.
MISSING_LOG_SECONDS = 60.0


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """Return the folder's (device, inode) numbers, or None when it is missing or not a folder."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    return info.st_dev, info.st_ino


class WatchedInbox:
    """The lock and the observer of one inbox path, re-created for a new folder at that path.

    Args:
        inbox: The inbox path.
        handler: Event handler scheduled on every observer.
        polling: Use watchdog's polling observer.
        recursive: Watch subfolders too.
        clock: Monotonic time in seconds.
    """

    def __init__(
        self,
        inbox: Path,
        handler: FileSystemEventHandler,
        *,
        polling: bool,
        recursive: bool,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._inbox = inbox
        self._handler = handler
        self._polling = polling
        self._recursive = recursive
        self._clock = clock
        self._lock: FolderLock | None = None
        self._observer: BaseObserver | None = None
        self._identity: tuple[int, int] | None = None
        self._next_missing_log = 0.0
        # Clock time at which the inbox was found missing; None while it exists.
        self.missing_since: float | None = None

    def lock(self) -> None:
        """Lock the inbox folder.

        Raises:
            InboxLockedError: another daemon holds the inbox.
        """
        lock = FolderLock(self._inbox, "inbox")
        lock.acquire()
        self._lock = lock
        self._identity = folder_identity(self._inbox)

    def start(self) -> None:
        """Start an observer on the locked inbox."""
        observer = make_observer(polling=self._polling)
        observer.schedule(self._handler, os.fspath(self._inbox), recursive=self._recursive)
        observer.start()
        self._observer = observer

    def check(self) -> bool:
        """Notice a deleted or replaced inbox folder, and take over a new one.

        Returns:
            True when a new folder at the inbox path was locked and is watched, so it needs a
            full scan.

        Raises:
            InboxLockedError: another daemon locked the new folder first.
        """
        identity = folder_identity(self._inbox)
        if identity is not None and identity == self._identity:
            return False

        now = self._clock()
        if identity is None:
            self._report_missing(now)
            return False

        # A folder is at the inbox path again, or the folder was replaced between two checks.
        self.stop_observer()
        self._release_lock()
        try:
            self.lock()
        except FileNotFoundError:
            self._report_missing(now)  # deleted again before the lock file could be created
            return False
        self.start()
        if self.missing_since is None:
            logger.warning("inbox %s was replaced by a new folder; watching the new one", self._inbox)
        else:
            logger.warning(
                "inbox %s exists again after %.0f s; locked it and watching it again",
                self._inbox,
                now - self.missing_since,
            )
        self.missing_since = None
        return True

    def stop_observer(self) -> None:
        """Stop and join the observer; the lock stays held."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

    def close(self) -> None:
        """Stop and join the observer, then release the lock."""
        self.stop_observer()
        self._release_lock()

    def _report_missing(self, now: float) -> None:
        self._identity = None
        if self.missing_since is None:
            self.missing_since = now
            self._next_missing_log = now + MISSING_LOG_SECONDS
            self.stop_observer()
            self._release_lock()
            logger.error(
                "inbox %s was deleted or is no longer a folder; no file is taken until a folder "
                "is created at that path again",
                self._inbox,
            )
        elif now >= self._next_missing_log:
            self._next_missing_log = now + MISSING_LOG_SECONDS
            logger.error("inbox %s is still missing after %.0f s", self._inbox, now - self.missing_since)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
