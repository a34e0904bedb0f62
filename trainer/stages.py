"""The two training stages: the head on the frozen base, then the optional fine-tune.

Each stage restores the weights of its best epoch before it returns, so the model in memory is
always the one that the checkpoint on disk holds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TextIO

import numpy as np

from trainer.config import TrainConfig
from trainer.dataset import TRAIN, VALIDATION
from trainer.fit import StageResult, fit_stage, one_hot
from trainer.model import (
    build_full_model,
    build_head,
    compile_model,
    copy_head_weights,
    find_base,
    unfreeze_top,
)
from trainer.pixels import DecodedImages
from trainer.features import FeatureSet

logger = logging.getLogger(__name__)

HEAD_STAGE = "head"
FINE_TUNE_STAGE = "fine_tune"


def train_head_on_features(
    features: FeatureSet,
    config: TrainConfig,
    class_count: int,
    checkpoint: Path,
    progress: TextIO | None,
):
    """Train a head on cached pooled features; returns (head with best weights, stage result)."""
    train = features.splits[TRAIN]
    validation = features.splits[VALIDATION]
    seed_head(config)
    head = build_head(features.feature_size, config, class_count)
    compile_model(head, config.learning_rate, config.label_smoothing)

    result = fit_stage(
        head,
        (train.features, one_hot(train.labels, class_count)),
        (validation.features, one_hot(validation.labels, class_count)),
        name=HEAD_STAGE,
        epochs=config.epochs,
        batch_size=config.batch_size,
        checkpoint_path=checkpoint,
        early_stopping=config.early_stopping,
        progress=progress,
    )
    _restore_best(head, result)
    return head, result


def seed_head(config: TrainConfig) -> None:
    """Reseed Keras just before the head is built, when a seed is set.

    The head's initial weights and the batch order then depend only on the seed, so a sweep
    trial and a `sortbox train` run with the same options train the same head.
    """
    if config.seed is not None:
        import keras

        keras.utils.set_random_seed(config.seed)


def join_head(base, head, config: TrainConfig, class_count: int):
    """Put a head trained on features on top of the base, giving a model from raw pixels."""
    full = build_full_model(base, config, class_count, augment=False)
    copy_head_weights(head, full)
    return full


def export_model(trained, config: TrainConfig, class_count: int):
    """Return an uncompiled copy of a trained full model for the artifact.

    The copy shares the base's layers and gets the head's weights, but it has no optimizer
    state, which is larger than the model after a fine-tune, and no augmentation layers, which
    do nothing outside training.
    """
    base = find_base(trained)
    base.trainable = False
    exported = build_full_model(base, config, class_count, augment=False)
    copy_head_weights(trained, exported)
    return exported


def train_head_on_pixels(
    base,
    pixels: dict[str, DecodedImages],
    config: TrainConfig,
    class_count: int,
    checkpoint: Path,
    progress: TextIO | None,
):
    """Train the head through the frozen base on pixels, with augmentation when it is on."""
    seed_head(config)
    full = build_full_model(base, config, class_count, augment=True)
    compile_model(full, config.learning_rate, config.label_smoothing)
    result = _fit_on_pixels(
        full, pixels, config, class_count, HEAD_STAGE, config.epochs, checkpoint, None, progress
    )
    _restore_best(full, result)
    return full, result


def fine_tune(
    full,
    pixels: dict[str, DecodedImages],
    config: TrainConfig,
    class_count: int,
    unfreeze_from: int,
    head_best: float | None,
    checkpoint: Path,
    progress: TextIO | None,
) -> StageResult:
    """Unfreeze the top of the base and continue at the fine-tune learning rate.

    Only an epoch that beats `head_best` is kept; when none does, the model keeps the head
    stage's weights.
    """
    base = find_base(full)
    trainable = unfreeze_top(base, unfreeze_from)
    logger.info("fine-tuning %s of %s base layers", trainable, len(base.layers))
    compile_model(full, config.fine_tune_learning_rate, config.label_smoothing)

    weights_before = full.get_weights()
    result = _fit_on_pixels(
        full, pixels, config, class_count, FINE_TUNE_STAGE, config.fine_tune_epochs, checkpoint,
        head_best, progress,
    )
    if result.checkpoint is not None:
        _restore_best(full, result)
    else:
        full.set_weights(weights_before)

    base.trainable = False
    return result


def _fit_on_pixels(
    model, pixels, config, class_count, name, epochs, checkpoint, initial_best, progress
) -> StageResult:
    def inputs(images: DecodedImages) -> tuple[np.ndarray, np.ndarray]:
        return images.pixels, one_hot(images.labels, class_count)

    return fit_stage(
        model,
        inputs(pixels[TRAIN]),
        inputs(pixels[VALIDATION]),
        name=name,
        epochs=epochs,
        batch_size=config.batch_size,
        checkpoint_path=checkpoint,
        early_stopping=config.early_stopping,
        initial_best=initial_best,
        progress=progress,
    )


class LazyBase:
    """The run's base model, built on first use after seeding Keras so a seeded run repeats.

    Building it imports TensorFlow, so a run whose features come from the cache still validates
    everything before paying for that import.
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self._base = None

    def get(self):
        if self._base is None:
            import keras

            from trainer.model import build_base

            if self.config.seed is not None:
                keras.utils.set_random_seed(self.config.seed)
            self._base = build_base(self.config)
        return self._base

    def make_extractor(self):
        """Return the pixels-to-features model on this base."""
        from trainer.model import build_extractor

        return build_extractor(self.get(), self.config)


def _restore_best(model, result: StageResult) -> None:
    """Load the best epoch's weights from the stage checkpoint into `model`."""
    if result.checkpoint is None:
        return
    # Loading by layer path keeps each weight in place whatever the layers' trainable flags are.
    model.load_weights(str(result.checkpoint))
