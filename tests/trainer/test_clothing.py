"""Training on the real clothing dataset with the shared ImageNet MobileNetV2 weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import Registry
from trainer.config import TrainConfig
from trainer.run import train_and_register


@pytest.mark.shared
@pytest.mark.slow
def test_clothing_well_above_chance(clothing_dataset: Path, mobilenet_weights: Path, tmp_path: Path):
    # 160 px keeps feature extraction short; ten classes make chance 0.1.
    config = TrainConfig(
        clothing_dataset,
        backbone="mobilenet_v2",
        weights=str(mobilenet_weights),
        image_size=(160, 160),
        epochs=6,
        learning_rate=0.001,
        inner_size=100,
        dropout=0.2,
        seed=1,
        show_progress=False,
    )
    registry = Registry.open(home=tmp_path / "home")
    try:
        outcome = train_and_register(config, registry, progress=None)
    finally:
        registry.close()

    assert outcome.cache_status == "miss"
    assert outcome.split_counts == {"train": 3068, "validation": 341}
    assert outcome.skipped == ()
    assert outcome.evaluations["validation"].accuracy >= 0.6
