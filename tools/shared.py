"""Locate the shared dataset and pretrained weights used by tests, benchmarks and the demo.

One setting finds both: the environment variable SORTBOX_SHARED, whose default is `../shared`
relative to the repository root. Nothing here is copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV = "SORTBOX_SHARED"
REQUIRE_ENV = "SORTBOX_REQUIRE_SHARED"

CLOTHING_DATASET = Path("datasets") / "clothing-dataset-small"
MOBILENET_V2_NO_TOP = Path("weights") / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"


def shared_root() -> Path:
    """Return the shared folder: $SORTBOX_SHARED, or ../shared beside the repository."""
    configured = os.environ.get(SHARED_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return (REPO_ROOT.parent / "shared").resolve()


def clothing_dataset() -> Path:
    """Return the clothing dataset folder (with `train/` and `validation/`)."""
    return shared_root() / CLOTHING_DATASET


def mobilenet_v2_weights() -> Path:
    """Return the ImageNet MobileNetV2 weights without the classifier top."""
    return shared_root() / MOBILENET_V2_NO_TOP


def missing_assets() -> list[Path]:
    """List the shared files and folders that are not there."""
    expected = [
        clothing_dataset() / "train",
        clothing_dataset() / "validation",
        mobilenet_v2_weights(),
    ]
    return [path for path in expected if not path.exists()]


def shared_required() -> bool:
    """True when a missing shared asset must fail instead of skip (CI sets this)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}
