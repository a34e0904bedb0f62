"""Decode dataset images into uint8 arrays with the shared loader, before TensorFlow starts.

Every file is decoded once per run with `vision.images.load_images`, the loader the daemon uses,
so training, evaluation and sorting see the same pixels. A file that does not decode is left
out with its reason, so an epoch never stops halfway on a bad file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from trainer.dataset import ImageRecord, SkippedFile
from vision.images import load_images

logger = logging.getLogger(__name__)

# Images decoded per call, which bounds the loader's temporary copy of the pixels.
DECODE_CHUNK = 256


@dataclass(frozen=True)
class DecodedImages:
    """Pixels and labels of the images that decoded, in record order, and the ones that did not."""

    pixels: np.ndarray
    labels: np.ndarray
    records: tuple[ImageRecord, ...]
    skipped: tuple[SkippedFile, ...]


def decode_records(records: tuple[ImageRecord, ...], size: tuple[int, int]) -> DecodedImages:
    """Decode `records` at `size` (height, width) into one uint8 array of shape (n, h, w, 3).

    Memory is n * h * w * 3 bytes: 3,068 images at 299x299 take about 0.8 GiB.
    """
    # NOTE: a split is held in memory whole; a dataset of tens of thousands of images at 299 px
    # would need a loader that decodes batch by batch from disk.
    height, width = size
    pixels = np.empty((len(records), height, width, 3), dtype=np.uint8)
    decoded: list[ImageRecord] = []
    skipped: list[SkippedFile] = []

    for start in range(0, len(records), DECODE_CHUNK):
        chunk = records[start:start + DECODE_CHUNK]
        batch, failures = load_images([os.fspath(record.path) for record in chunk], size)
        reasons = {failure.path: failure.reason for failure in failures}
        for record in chunk:
            reason = reasons.get(os.fspath(record.path))
            if reason is None:
                decoded.append(record)
            else:
                skipped.append(SkippedFile(record.relative_path, reason))
                # The run's report lists every skipped file once, so this is only a debug trace.
                logger.debug("skipping %s: %s", record.relative_path, reason)

        # Rows of `batch` follow `chunk` without the failed files.
        first = len(decoded) - len(batch)
        pixels[first:len(decoded)] = batch

    return DecodedImages(
        pixels=pixels[: len(decoded)],
        labels=np.array([record.label for record in decoded], dtype=np.int64),
        records=tuple(decoded),
        skipped=tuple(skipped),
    )
