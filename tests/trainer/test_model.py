"""Model building on tiny real Keras models: joining a cached-feature head, preprocessing, unfreezing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.config import TrainConfig, UnfreezeSpec
from trainer.errors import ConfigError


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def tiny_config(tmp_path: Path, **changes) -> TrainConfig:
    values = dict(backbone="resnet50", weights="none", image_size=(32, 32), inner_size=8, dropout=0.5)
    values.update(changes)
    return TrainConfig(tmp_path, **values)


@pytest.mark.slow
def test_joined_model_matches_head_on_features(keras, tmp_path: Path):
    from trainer.features import extract_features
    from trainer.model import build_base, build_extractor, build_head
    from trainer.stages import join_head

    keras.utils.set_random_seed(7)
    config = tiny_config(tmp_path)
    base = build_base(config)
    pixels = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    features = extract_features(build_extractor(base, config), pixels, batch_size=4)
    head = build_head(features.shape[1], config, class_count=3)

    joined = join_head(base, head, config, class_count=3)
    path = tmp_path / "model.keras"
    joined.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)

    expected = head.predict(features, verbose=0)
    assert np.abs(joined.predict(pixels, verbose=0) - expected).max() < 1e-4
    assert np.abs(loaded.predict(pixels, verbose=0) - expected).max() < 1e-4


def test_caffe_preprocessing_matches_keras(keras):
    from trainer.model import preprocessing_layers

    pixels = np.random.default_rng(1).integers(0, 256, (2, 5, 5, 3)).astype("float32")
    (layer,) = preprocessing_layers("resnet50")

    ours = np.asarray(layer(pixels))
    reference = keras.applications.resnet50.preprocess_input(pixels.copy())

    assert np.abs(ours - reference).max() < 1e-4


def test_rescaling_preprocessing_range(keras):
    from trainer.model import preprocessing_layers

    (layer,) = preprocessing_layers("mobilenet_v2")
    values = np.asarray(layer(np.array([[0.0, 127.5, 255.0]])))

    assert values[0].tolist() == pytest.approx([-1.0, 0.0, 1.0])


def test_unfreeze_keeps_batchnorm_frozen(keras, tmp_path: Path):
    from trainer.model import build_base, unfreeze_start, unfreeze_top

    base = build_base(tiny_config(tmp_path))
    start = unfreeze_start(base, UnfreezeSpec(fraction=0.1))

    count = unfreeze_top(base, start)

    assert count > 0
    assert start == int(len(base.layers) * 0.9)
    for index, layer in enumerate(base.layers):
        if isinstance(layer, keras.layers.BatchNormalization):
            assert not layer.trainable, layer.name
        elif index < start:
            assert not layer.trainable, layer.name


def test_unfreeze_unknown_layer(keras, tmp_path: Path):
    from trainer.model import build_base, unfreeze_start

    base = build_base(tiny_config(tmp_path))

    with pytest.raises(ConfigError, match="'no_such_layer' is not in"):
        unfreeze_start(base, UnfreezeSpec(layer="no_such_layer"))


def test_augmentation_layers_per_flag(keras):
    from trainer.config import Augmentation
    from trainer.model import augmentation_layers

    layers = augmentation_layers(
        Augmentation(rotation=0.1, shift=0.1, shear=0.1, zoom=0.1, horizontal_flip=True,
                     vertical_flip=True, brightness=0.2, contrast=0.2)
    )

    names = [layer.name for layer in layers]
    assert names == ["rotation", "shift", "shear", "zoom", "flip", "brightness", "contrast"]
    assert layers[4].mode == "horizontal_and_vertical"


@pytest.mark.slow
@pytest.mark.parametrize("backbone, side", [("xception", 71), ("efficientnet_b0", 32), ("resnet50", 32), ("mobilenet_v2", 32)])
def test_every_backbone_loads_in_safe_mode(keras, tmp_path: Path, backbone: str, side: int):
    from trainer.model import build_base, build_full_model

    config = tiny_config(tmp_path, backbone=backbone, image_size=(side, side))
    model = build_full_model(build_base(config), config, class_count=4, augment=False)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.models.load_model(path, safe_mode=True)
    pixels = np.random.default_rng(2).integers(0, 256, (2, side, side, 3), dtype=np.uint8)

    assert loaded.output_shape == (None, 4)
    assert np.abs(loaded.predict(pixels, verbose=0) - model.predict(pixels, verbose=0)).max() < 1e-4


def test_weights_of_other_backbone_rejected(keras, tmp_path: Path):
    import warnings

    from trainer.errors import WeightsError
    from trainer.model import build_base

    mobilenet = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet.weights.h5"
    mobilenet.save_weights(path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsError) as raised:
            build_base(tiny_config(tmp_path, weights=str(path)))

    message = str(raised.value)
    assert f"weights file {str(path)!r} does not fit resnet50 at 32x32" in message
    assert "could not be loaded" in message
    assert "pass a no-top .weights.h5 file saved from resnet50" in message
    assert "\n" not in message
    assert "List of objects" not in message
    assert len(message) < 450
    assert not [w for w in caught if "Skipping nested container" in str(w.message)]


def test_load_error_summary_keeps_first_sentences():
    from trainer.model import summarize_load_error

    error = ValueError(
        "A total of 106 objects could not be loaded. Example error message for object "
        "<Conv2D name=conv1_conv, built=True>:\n\nLayer 'conv1_conv' expected 2 variables, but "
        "received 1 variables during loading.\n\nList of objects that could not be loaded:\n"
        "[<Conv2D name=conv1_conv, built=True>, <BatchNormalization name=conv1_bn, built=True>]"
    )

    summary = summarize_load_error(error)

    assert summary.startswith("A total of 106 objects could not be loaded. First: Layer 'conv1_conv'")
    assert "conv1_bn" not in summary
    assert summarize_load_error(ValueError("x" * 500)).endswith("...")
