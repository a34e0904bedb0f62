"""load_model, predict_batch and check_model with tiny real Keras models saved as .keras files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.errors import ModelLoadError
from vision.images import load_images
from vision.inference import Classification, check_model, load_model, model_input_size, predict_batch

CLASS_NAMES = ("dress", "hat", "shoes")

# Keras 3.15 converts weights with np.array(x, copy=False) when saving, which NumPy 2 reports
# once per variable; the warning is about Keras, not sortbox.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def build_tiny_model(activation=None):
    """Input(32, 32, 3) -> Rescaling -> GlobalAveragePooling2D -> Dense(3), fixed weights."""
    import keras

    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1.0 / 255)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(scaled)
    dense = keras.layers.Dense(3, activation=activation)
    outputs = dense(pooled)
    model = keras.Model(inputs, outputs)
    # Each class responds to one color channel, so predictions are predictable.
    dense.set_weights([np.eye(3, dtype=np.float32) * 4.0, np.zeros(3, dtype=np.float32)])
    return model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    build_tiny_model().save(path)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return load_model(model_path)


def solid_batch(*colors: tuple[int, int, int]) -> np.ndarray:
    return np.stack([np.full((32, 32, 3), color, dtype=np.uint8) for color in colors])


def test_loaded_model_facts(model, model_path):
    assert model.path == model_path
    assert model.input_size == (32, 32)
    assert model_input_size(model) == (32, 32)
    assert model.class_count == 3
    assert model.outputs_probabilities is False


def test_predict_probabilities(model):
    results = predict_batch(model, solid_batch((255, 0, 0), (0, 0, 255)), CLASS_NAMES)

    assert len(results) == 2
    assert all(isinstance(result, Classification) for result in results)
    assert results[0].category == "dress"
    assert results[1].category == "shoes"
    for result in results:
        probabilities = [probability for _, probability in result.top_k]
        assert sum(probabilities) == pytest.approx(1.0)
        assert probabilities == sorted(probabilities, reverse=True)
        assert result.confidence == result.top_k[0][1]
        assert result.category == result.top_k[0][0]
        assert {name for name, _ in result.top_k} == set(CLASS_NAMES)


def test_predict_matches_softmax_of_model(model):
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    logits = model.keras_model.predict(images.astype(np.float32), verbose=0).astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    results = predict_batch(model, images, CLASS_NAMES)

    for row, result in enumerate(results):
        by_name = dict(result.top_k)
        for index, name in enumerate(CLASS_NAMES):
            assert by_name[name] == pytest.approx(expected[row, index], abs=1e-6)


def test_top_k_cut(model):
    (result,) = predict_batch(model, solid_batch((0, 255, 0)), CLASS_NAMES, top_k=1)
    (all_classes,) = predict_batch(model, solid_batch((0, 255, 0)), CLASS_NAMES, top_k=10)

    assert result.top_k == (("hat", result.confidence),)
    assert len(all_classes.top_k) == 3


def test_ties_keep_class_order(model):
    (result,) = predict_batch(model, solid_batch((100, 100, 100)), CLASS_NAMES)

    assert [name for name, _ in result.top_k] == list(CLASS_NAMES)
    assert result.confidence == pytest.approx(1 / 3)


def test_batch_sizes_agree(model):
    images = np.random.default_rng(5).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)

    together = predict_batch(model, images, CLASS_NAMES)
    one_by_one = [predict_batch(model, images[index : index + 1], CLASS_NAMES)[0] for index in range(7)]

    for joint, single in zip(together, one_by_one):
        assert joint.category == single.category
        assert joint.confidence == pytest.approx(single.confidence, abs=1e-6)


def test_empty_batch(model):
    assert predict_batch(model, np.zeros((0, 32, 32, 3), dtype=np.uint8), CLASS_NAMES) == []


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((1, 32, 32, 3), dtype=np.float32), "uint8"),
        (np.zeros((1, 16, 16, 3), dtype=np.uint8), r"\(N, 32, 32, 3\)"),
        (np.zeros((32, 32, 3), dtype=np.uint8), r"\(N, 32, 32, 3\)"),
        (np.zeros((1, 32, 32, 4), dtype=np.uint8), r"\(N, 32, 32, 3\)"),
    ],
    ids=["float", "wrong-size", "no-batch", "four-channels"],
)
def test_bad_images_rejected(model, images, message):
    with pytest.raises(ValueError, match=message):
        predict_batch(model, images, CLASS_NAMES)


def test_class_name_count_checked(model):
    with pytest.raises(ValueError, match="returns 3 class scores, got 2 class names"):
        predict_batch(model, solid_batch((1, 2, 3)), CLASS_NAMES[:2])


def test_top_k_at_least_one(model):
    with pytest.raises(ValueError, match="top_k"):
        predict_batch(model, solid_batch((1, 2, 3)), CLASS_NAMES, top_k=0)


def test_check_model_class_count(model_path):
    check_model(model_path, 3)

    with pytest.raises(ModelLoadError, match="returns 3 class scores but 4 class names"):
        check_model(model_path, 4)


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"this is not a zip archive")

    with pytest.raises(ModelLoadError) as caught:
        load_model(path)

    assert str(path) in str(caught.value)


def test_missing_model_file(tmp_path):
    path = tmp_path / "gone.keras"

    with pytest.raises(ModelLoadError, match="not found") as caught:
        load_model(path)

    assert str(path) in str(caught.value)


def test_wrong_suffix_rejected(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"x")

    with pytest.raises(ModelLoadError, match=r"not a \.keras file"):
        load_model(path)


def test_lambda_layer_rejected(tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    doubled = keras.layers.Lambda(lambda x: x * 2.0)(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(3)(doubled)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)

    with pytest.raises(ModelLoadError, match="lambda.keras"):
        load_model(path)


def test_softmax_output_not_applied_twice(tmp_path):
    path = tmp_path / "softmax.keras"
    build_tiny_model(activation="softmax").save(path)
    loaded = load_model(path)

    (result,) = predict_batch(loaded, solid_batch((255, 0, 0)), CLASS_NAMES)

    expected = np.exp([4.0, 0.0, 0.0]) / np.exp([4.0, 0.0, 0.0]).sum()
    assert loaded.outputs_probabilities is True
    assert result.confidence == pytest.approx(expected[0], abs=1e-6)


def test_output_shape_checked(tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    path = tmp_path / "feature-map.keras"
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs)).save(path)

    with pytest.raises(ModelLoadError, match=r"expected \(batch, classes\)"):
        load_model(path)


def test_decoded_files_classified(model, tmp_path):
    paths = []
    for name, color in [("red.jpg", (250, 5, 5)), ("blue.png", (5, 5, 250))]:
        path = tmp_path / name
        Image.new("RGB", (90, 60), color).save(path)
        paths.append(path)

    images, failures = load_images(paths, model.input_size)
    results = predict_batch(model, images, CLASS_NAMES)

    assert failures == []
    assert [result.category for result in results] == ["dress", "shoes"]


def test_nested_backbone_loads_safely(tmp_path):
    import keras

    # The trainer's models nest a keras.applications backbone after a Rescaling layer.
    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    backbone.trainable = False
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(scaled, training=False))
    path = tmp_path / "backbone.keras"
    keras.Model(inputs, keras.layers.Dense(3)(pooled)).save(path)

    loaded = load_model(path)
    results = predict_batch(loaded, solid_batch((10, 200, 30), (90, 90, 90)), CLASS_NAMES)

    assert loaded.input_size == (32, 32)
    assert len(results) == 2
    assert sum(probability for _, probability in results[0].top_k) == pytest.approx(1.0)
