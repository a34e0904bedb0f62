"""Tiny real datasets for trainer tests: JPEG files written with Pillow.

Each class has its own base colour with per-image noise, so a tiny model can learn the classes
in one or two epochs while the files stay real, decodable photos-in-miniature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASS_COLOURS = {
    "blue": (30, 60, 220),
    "green": (40, 200, 60),
    "red": (220, 40, 40),
}


def write_jpeg(path: Path, colour: tuple[int, int, int], seed: int, size: int = 40) -> Path:
    """Write a size x size JPEG of `colour` with noise from `seed`."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


def make_dataset(
    root: Path,
    *,
    splits: dict[str, int] | None = None,
    classes: dict[str, tuple[int, int, int]] | None = None,
) -> Path:
    """Write `splits` (split folder -> images per class) of `classes` under `root`.

    An empty split name writes class folders directly under `root` (the flat layout).
    """
    splits = splits if splits is not None else {"train": 8, "validation": 3}
    classes = classes or CLASS_COLOURS
    seed = 0
    for split, count in splits.items():
        for class_name, colour in classes.items():
            for index in range(count):
                seed += 1
                folder = root / split / class_name if split else root / class_name
                write_jpeg(folder / f"{class_name}_{index:03d}.jpg", colour, seed)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Three colour classes: train/ with 8 and validation/ with 3 JPEGs per class."""
    return make_dataset(tmp_path / "data")
