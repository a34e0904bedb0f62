"""Destinations in the output folder and moves that never overwrite.

Layout: `OUTPUT/<category>/<name>`, `OUTPUT/_review/<category>/<name>` for low confidence and
`OUTPUT/_failed/<name>` for files that could not be classified. A name that is taken gets a
numbered suffix (`cat (1).jpg`). The daemon must be the only writer of the output folder, because
a destination is chosen before the prediction row is committed and filled only afterwards; the
lock file taken by the service enforces this between daemons.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable

from daemon.errors import UnsafeCategoryError

logger = logging.getLogger(__name__)

REVIEW_FOLDER = "_review"
FAILED_FOLDER = "_failed"
RESERVED_NAMES = frozenset({REVIEW_FOLDER, FAILED_FOLDER})

# Most file systems limit one name to 255 bytes.
NAME_MAX_BYTES = 255

# errno values of os.link that mean "no hard link here", so the move copies instead.
_NO_LINK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def check_category_name(name: str) -> None:
    """Reject a class name that could not be used as one folder name inside the output folder.

    Raises:
        UnsafeCategoryError: for an empty name, `.` or `..`, a path separator, a NUL byte, an
            absolute path, or one of the reserved folder names `_review` and `_failed`.
    """
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "it is empty"
    elif name in (".", ".."):
        problem = "it names the output folder or its parent"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        problem = "it contains a path separator"
    elif "\x00" in name:
        problem = "it contains a NUL character"
    elif os.path.isabs(name):
        problem = "it is an absolute path"
    elif name in RESERVED_NAMES:
        problem = "it is a folder name the daemon reserves"
    elif len(os.fsencode(name)) > NAME_MAX_BYTES:
        problem = f"it is longer than {NAME_MAX_BYTES} bytes"
    if problem is not None:
        raise UnsafeCategoryError(
            f"class name {name!r} cannot be an output folder because {problem}; "
            "retrain or register the model with safe class names"
        )


def check_class_names(class_names: Iterable[str]) -> None:
    """Check every class name of a model; see `check_category_name`."""
    for name in class_names:
        check_category_name(name)


def numbered_name(name: str, number: int) -> str:
    """Return `stem (number)suffix`, shortening the stem to keep the name under 255 bytes."""
    if number == 0:
        return name
    stem, suffix = os.path.splitext(name)
    marker = f" ({number})"
    while stem and len(os.fsencode(stem + marker + suffix)) > NAME_MAX_BYTES:
        stem = stem[:-1]
    return stem + marker + suffix


def partial_path(destination: Path) -> Path:
    """Return the hidden temporary path that a cross-file-system copy to `destination` uses.

    It is derived from the destination alone, so start-up reconciliation can remove a copy that a
    crash interrupted.
    """
    digest = hashlib.sha256(os.fsencode(destination.name)).hexdigest()[:20]
    return destination.parent / f".sortbox-{digest}.partial"


class DestinationPlanner:
    """Choose free destination names, remembering names chosen but not yet filled.

    Args:
        output: The output folder (absolute).
    """

    def __init__(self, output: Path):
        self.output = output
        self._reserved: set[Path] = set()

    def folder_for(self, category: str | None, *, review: bool = False, failed: bool = False) -> Path:
        if failed:
            return self.output / FAILED_FOLDER
        check_category_name(category)
        if review:
            return self.output / REVIEW_FOLDER / category
        return self.output / category

    def reserve(self, folder: Path, file_name: str) -> Path:
        """Create `folder` if needed and return a path in it that neither exists nor is reserved."""
        folder.mkdir(parents=True, exist_ok=True)
        number = 0
        while True:
            candidate = folder / numbered_name(file_name, number)
            if candidate not in self._reserved and not os.path.lexists(candidate):
                self._reserved.add(candidate)
                return candidate
            number += 1

    def release(self, destination: Path) -> None:
        self._reserved.discard(destination)


def file_sha256(path: str | os.PathLike) -> str:
    """Hash a file's content without following a symbolic link at its last component."""
    digest = hashlib.sha256()
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk so a completed rename survives a power loss."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def move_noreplace(source: Path, destination: Path) -> None:
    """Move a file to a destination that must not exist yet, never overwriting anything.

    On one file system this is a hard link followed by removing the source, so at every instant
    the file exists under at least one of the two names. Across file systems (or where hard links
    are not supported) the file is copied to a hidden partial file beside the destination,
    flushed, linked or renamed to the destination, and only then is the source removed.

    Raises:
        FileExistsError: the destination exists.
        FileNotFoundError: the source vanished.
        OSError: any other failure; the source is then still in place.
    """
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError as error:
        if error.errno not in _NO_LINK_ERRNOS:
            raise
        _copy_noreplace(source, destination)
    os.unlink(source)


def _copy_noreplace(source: Path, destination: Path) -> None:
    partial = partial_path(destination)
    with open(source, "rb") as reader:
        # A partial file is only ever written by this function, so a leftover is safe to replace.
        with open(partial, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
    shutil.copystat(source, partial)

    try:
        os.link(partial, destination)
    except OSError as error:
        if error.errno not in _NO_LINK_ERRNOS:
            os.unlink(partial)
            raise
        # NOTE: without hard links the existence check and the rename are two steps, so a
        # file created in between by another program would be replaced.
        if os.path.lexists(destination):
            os.unlink(partial)
            raise FileExistsError(errno.EEXIST, "destination exists", os.fspath(destination))
        os.rename(partial, destination)
    else:
        os.unlink(partial)
    sync_folder(destination.parent)
