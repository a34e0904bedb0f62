"""File checksums: what the registry records for an artifact and how it checks it later."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in chunks so large models need little memory."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def find_problem(path: str | os.PathLike[str], sha256: str, size: int) -> str | None:
    """Compare a file with its recorded size and sha256.

    Returns:
        None when the file matches, otherwise a sentence naming the file and what differs.
    """
    file = Path(path)
    if not file.is_file():
        return f"file {os.fspath(file)!r} is missing"

    actual_size = file.stat().st_size
    if actual_size != size:
        return f"file {os.fspath(file)!r} has {actual_size} bytes but {size} were registered"

    actual_sha256 = sha256_file(file)
    if actual_sha256 != sha256:
        return (
            f"file {os.fspath(file)!r} has sha256 {actual_sha256} but {sha256} was registered, "
            "so it changed after registration"
        )
    return None
