"""One daemon per inbox and per output folder, enforced with advisory file locks.

Each folder gets a hidden `.sortbox.lock` file (hidden names are never taken as input) locked with
`flock`. The kernel drops the lock when the process dies, even on SIGKILL, so a crash never leaves
a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from daemon.errors import InboxLockedError

LOCK_NAME = ".sortbox.lock"


class FolderLock:
    """An exclusive lock on a folder, held until `release()`."""

    def __init__(self, folder: Path, role: str):
        self.path = folder / LOCK_NAME
        self._role = role
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise InboxLockedError naming the process that holds it."""
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            holder = os.read(descriptor, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(descriptor)
            raise InboxLockedError(
                f"{self._role} {os.fsdecode(self.path.parent)!r} is in use by another sortbox "
                f"daemon (pid {holder}); stop it or choose another folder"
            ) from error
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

