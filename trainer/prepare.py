"""Get the training inputs of a run: cached features, freshly extracted features, or pixels.

Decoding happens before TensorFlow is imported, so a dataset whose classes lose every image to
decode failures stops before any weight is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.config import TrainConfig
from trainer.dataset import SPLIT_NAMES, VALIDATION, DatasetScan, ImageRecord, SkippedFile, fingerprint_of
from trainer.errors import DatasetError
from trainer.features import FeatureSet, SplitFeatures, cache_key, extract_features, load_features, save_features
from trainer.memory import check_decoded_memory
from trainer.pixels import DecodedImages, decode_records
from vision.images import PREPROCESSING_ID

logger = logging.getLogger(__name__)

CACHE_HIT, CACHE_MISS, CACHE_OFF = "hit", "miss", "off"


@dataclass
class PreparedData:
    """Inputs of a run. `features` is set when the head trains on cached features, `pixels`
    contains the decoded splits that a stage on pixels needs."""

    scan: DatasetScan
    features: FeatureSet | None = None
    pixels: dict[str, DecodedImages] = field(default_factory=dict)
    skipped: tuple[SkippedFile, ...] = ()
    cache_status: str = CACHE_OFF
    cache_folder: Path | None = None

    @property
    def used_records(self) -> list[ImageRecord]:
        skipped = {item.relative_path for item in self.skipped}
        return [
            record
            for records in self.scan.splits.values()
            for record in records
            if record.relative_path not in skipped
        ]

    @property
    def fingerprint(self) -> str:
        """Return the sha256 over the (relative path, content sha256) of the files used."""
        return fingerprint_of(self.used_records)

    def split_counts(self) -> dict[str, int]:
        skipped = {item.relative_path for item in self.skipped}
        return {
            split: sum(1 for r in records if r.relative_path not in skipped)
            for split, records in self.scan.splits.items()
        }


def decode_all(scan: DatasetScan, config: TrainConfig) -> dict[str, DecodedImages]:
    """Decode every split at the training size and check that each class keeps images in each."""
    size = config.resolved_image_size
    check_decoded_memory(scan, size)
    decoded = {split: decode_records(records, size) for split, records in scan.splits.items()}
    check_classes_kept(scan, {split: images.labels for split, images in decoded.items()})
    return decoded


def check_classes_kept(scan: DatasetScan, labels_by_split: dict[str, np.ndarray]) -> None:
    """Raise DatasetError when decode failures left a class without images in some split.

    A class without validation or test images would still count in macro F1 and in the
    confusion matrix, with nothing measured, so it is rejected like one without training images.
    """
    for split in SPLIT_NAMES:
        if split not in labels_by_split:
            continue
        present = set(int(label) for label in labels_by_split[split])
        for label, class_name in enumerate(scan.class_names):
            if label in present:
                continue
            folder = str(scan.class_folder(split, class_name))
            if scan.layout == "flat" and split == VALIDATION:
                raise DatasetError(
                    f"class {class_name!r} has no decodable validation images after "
                    f"--validation-split in {folder!r}: add decodable images to the folder"
                )
            raise DatasetError(
                f"class folder {folder!r} has no decodable {split} images: replace its broken "
                "files or remove the class"
            )


def prepare_pixels(scan: DatasetScan, config: TrainConfig) -> PreparedData:
    """Decode every split for a run that trains on pixels (augmentation, or the cache is off)."""
    decoded = decode_all(scan, config)
    skipped = tuple(item for images in decoded.values() for item in images.skipped)
    return PreparedData(scan=scan, pixels=decoded, skipped=_sorted(skipped))


def prepare_features(
    scan: DatasetScan, config: TrainConfig, cache_root: Path, make_extractor
) -> PreparedData:
    """Load the pooled features from the cache, or decode, extract and store them.

    Args:
        cache_root: Folder with one subfolder per cache key.
        make_extractor: Called without arguments when features must be computed; returns the
            Keras model from pixels to pooled features. It is the first point that loads
            TensorFlow.
    """
    key = cache_key(scan, config, PREPROCESSING_ID)
    folder = cache_root / key if key else None
    if folder is not None:
        cached = load_features(folder)
        if cached is not None:
            logger.info("feature cache hit: %s", folder)
            check_classes_kept(
                scan, {split: values.labels for split, values in cached.splits.items()}
            )
            return PreparedData(
                scan=scan,
                features=cached,
                skipped=cached.skipped,
                cache_status=CACHE_HIT,
                cache_folder=folder,
            )

    decoded = decode_all(scan, config)
    extractor = make_extractor()
    splits = {}
    for split, images in decoded.items():
        logger.info("extracting %s features of %s images", split, len(images.labels))
        splits[split] = SplitFeatures(
            features=extract_features(extractor, images.pixels, config.batch_size),
            labels=images.labels,
            relative_paths=tuple(record.relative_path for record in images.records),
        )
    skipped = _sorted(item for images in decoded.values() for item in images.skipped)
    feature_set = FeatureSet(splits=splits, skipped=skipped)

    if folder is not None:
        description = {
            "dataset_root": str(scan.root),
            "backbone": config.backbone,
            "weights": config.weights,
            "image_size": list(config.resolved_image_size),
            "preprocessing": PREPROCESSING_ID,
        }
        save_features(folder, feature_set, description)
    return PreparedData(
        scan=scan,
        features=feature_set,
        pixels=decoded,
        skipped=skipped,
        cache_status=CACHE_MISS if folder is not None else CACHE_OFF,
        cache_folder=folder,
    )


def _sorted(items) -> tuple[SkippedFile, ...]:
    return tuple(sorted(items, key=lambda item: item.relative_path))
