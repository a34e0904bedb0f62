"""Check before decoding that the decoded dataset fits in the memory the machine has free.

Every split is decoded into one uint8 array (see trainer.pixels), so the pixels of a run take
images * height * width * 3 bytes, and they are all allocated before the first epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from trainer.dataset import DatasetScan
from trainer.errors import ConfigError

logger = logging.getLogger(__name__)

# Share of the available memory that the decoded pixels may take. The rest is left for
# TensorFlow, the model, the float32 copy of each batch and the extracted features.
# NOTE: the half is an estimate, not a measured bound; the peak also grows with --batch-size.
PIXEL_MEMORY_SHARE = 0.5


def decoded_bytes(scan: DatasetScan, size: tuple[int, int]) -> int:
    """Return the bytes that the decoded pixels of every split of `scan` take at `size`."""
    height, width = size
    images = sum(len(records) for records in scan.splits.values())
    return images * height * width * 3


def available_memory() -> int | None:
    """Return the bytes of memory available to new allocations, or None when unknown.

    Reads MemAvailable from /proc/meminfo on Linux, which counts reclaimable page cache, and
    falls back to the free physical pages that os.sysconf reports elsewhere.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_decoded_memory(
    scan: DatasetScan,
    size: tuple[int, int],
    available: Callable[[], int | None] | None = None,
) -> None:
    """Raise ConfigError when the decoded splits would take more than their share of memory.

    Args:
        scan: The scanned dataset; every split of it is decoded.
        size: (height, width) of the decoded images.
        available: Returns the available bytes, or None when unknown, which skips the check.
            Defaults to `available_memory`.
    """
    needed = decoded_bytes(scan, size)
    free = (available or available_memory)()
    if free is None:
        logger.debug("available memory unknown; decoding %s bytes unchecked", needed)
        return

    limit = int(free * PIXEL_MEMORY_SHARE)
    if needed > limit:
        height, width = size
        images = sum(len(records) for records in scan.splits.values())
        raise ConfigError(
            f"image size {height}x{width} needs {_gib(needed)} GiB for the decoded pixels of "
            f"{images} images, more than half of the {_gib(free)} GiB of available memory: pass "
            "a smaller --image-size or use fewer images"
        )


def _gib(count: int) -> str:
    return f"{count / 2**30:.2f}"
