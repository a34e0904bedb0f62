"""Pooled base features computed once and kept on disk, so heads train in seconds.

While the base is frozen and augmentation is off, every epoch would push the same images through
the same base. The cache stores the pooled features per split under
<home>/cache/features/<key>/, where the key hashes everything that changes them: the dataset
files, the backbone, the weights identity, the image size and the image preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.config import WEIGHTS_IMAGENET, WEIGHTS_NONE, TrainConfig
from trainer.dataset import DatasetScan, SkippedFile

logger = logging.getLogger(__name__)

# Bump when the stored layout changes, so old entries are no longer found.
CACHE_FORMAT = 1
META_FILE = "meta.json"


@dataclass(frozen=True)
class SplitFeatures:
    """Pooled features of one split, row i belonging to `relative_paths[i]`."""

    features: np.ndarray
    labels: np.ndarray
    relative_paths: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSet:
    """Features of every split and the files that could not be decoded."""

    splits: dict[str, SplitFeatures]
    skipped: tuple[SkippedFile, ...]
    from_cache: bool = False

    @property
    def feature_size(self) -> int:
        return int(next(iter(self.splits.values())).features.shape[1])


def weights_identity(config: TrainConfig) -> str | None:
    """Return what identifies the base's weights, or None when they cannot be reproduced.

    Random weights (`--weights none`) differ between runs, so their features are never stored.
    """
    if config.weights == WEIGHTS_NONE:
        return None
    if config.weights == WEIGHTS_IMAGENET:
        return WEIGHTS_IMAGENET
    digest = hashlib.sha256()
    with open(config.weights_file, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def cache_key(scan: DatasetScan, config: TrainConfig, preprocessing_id: str) -> str | None:
    """Return the cache folder name for this dataset and base, or None when not cacheable."""
    identity = weights_identity(config)
    if identity is None:
        return None
    parts = {
        "format": CACHE_FORMAT,
        "dataset": scan.fingerprint,
        "splits": {name: [r.relative_path for r in records] for name, records in scan.splits.items()},
        "backbone": config.backbone,
        "weights": identity,
        "image_size": list(config.resolved_image_size),
        "preprocessing": preprocessing_id,
    }
    encoded = json.dumps(parts, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:32]


def load_features(folder: Path) -> FeatureSet | None:
    """Read a cache entry, or return None when it is absent or unreadable."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        splits = {}
        for split in meta["splits"]:
            with np.load(folder / f"{split}.npz", allow_pickle=False) as data:
                splits[split] = SplitFeatures(
                    features=data["features"],
                    labels=data["labels"],
                    relative_paths=tuple(str(p) for p in data["relative_paths"]),
                )
        skipped = tuple(SkippedFile(item["path"], item["reason"]) for item in meta["skipped"])
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable feature cache %s: %s", folder, error)
        return None
    return FeatureSet(splits=splits, skipped=skipped, from_cache=True)


def save_features(folder: Path, feature_set: FeatureSet, description: dict) -> None:
    """Write a cache entry atomically: into a temporary folder, then renamed into place.

    When another process wrote the same entry first, its copy is kept and this one is dropped.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for split, values in feature_set.splits.items():
            np.savez(
                temporary / f"{split}.npz",
                features=values.features.astype(np.float32),
                labels=values.labels,
                relative_paths=np.array(values.relative_paths, dtype=str),
            )
        meta = {
            "format": CACHE_FORMAT,
            "splits": list(feature_set.splits),
            "skipped": [{"path": s.relative_path, "reason": s.reason} for s in feature_set.skipped],
            "description": description,
        }
        (temporary / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.rename(temporary, folder)
    except OSError:
        if not (folder / META_FILE).is_file():
            raise
        logger.info("feature cache %s was written by another run; keeping that copy", folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def extract_features(extractor, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """Run the frozen extractor over uint8 pixels and return float32 pooled features."""
    if len(pixels) == 0:
        return np.zeros((0, extractor.output_shape[-1]), dtype=np.float32)
    features = extractor.predict(pixels, batch_size=batch_size, verbose=0)
    return np.asarray(features, dtype=np.float32)
