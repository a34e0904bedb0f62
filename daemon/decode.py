"""Step 1 of the batch protocol: batches of files hashed and decoded on the decode threads."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

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


@dataclass
class DecodingBatch:
    """A batch submitted to the decode threads, one future of a PreparedFile per path."""

    paths: list[str]
    size: tuple[int, int]
    futures: list[Future]

    def done(self) -> bool:
        return all(future.done() for future in self.futures)


def submit_batch(
    decoder: ThreadPoolExecutor,
    paths: list[str],
    size: tuple[int, int],
    max_pixels: int,
    on_done: Callable[[], None],
) -> DecodingBatch:
    """Submit one `prepare_file` job per path; `on_done` runs on a decode thread after each file."""
    futures = [decoder.submit(prepare_file, path, size, max_pixels) for path in paths]
    for future in futures:
        future.add_done_callback(lambda _: on_done())
    return DecodingBatch(paths, size, futures)
