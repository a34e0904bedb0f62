"""Step 1 of the batch protocol, on the decode threads: hash a file and decode its pixels."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from daemon.mover import file_sha256
from vision.errors import ImageDecodeError
from vision.images import load_image


@dataclass
class PreparedFile:
    """A file after hashing and decoding; `error` is the reason it cannot be classified."""

    path: str
    size: tuple[int, int]
    sha256: str | None = None
    pixels: np.ndarray | None = None
    error: str | None = None
    vanished: bool = False
    unreadable: str | None = None
    decode_ms: float = 0.0


def prepare_file(path: str, size: tuple[int, int], max_pixels: int) -> PreparedFile:
    """Hash and decode one file, recording a bad, unreadable or vanished file instead of raising."""
    started = time.perf_counter()
    prepared = PreparedFile(path=path, size=size)

    try:
        prepared.sha256 = file_sha256(path)
    except FileNotFoundError:
        prepared.vanished = True
        return prepared
    except OSError as error:
        # ELOOP means the name became a symbolic link; EACCES a file we may not read.
        prepared.unreadable = error.strerror or str(error)
        return prepared

    try:
        prepared.pixels = load_image(path, size, max_pixels=max_pixels)
    except FileNotFoundError:
        prepared.vanished = True
    except ImageDecodeError as error:
        prepared.error = error.reason

    prepared.decode_ms = (time.perf_counter() - started) * 1000
    return prepared
