"""Build the Keras models: the pretrained base, the feature extractor, the head and the full model.

Every model takes raw RGB pixels in [0, 255]. Each backbone's own preprocessing is made of
built-in layers inside the model, so an artifact loads with `keras.models.load_model` in safe
mode without any sortbox code. Keras is imported inside the functions, never at module level.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

from trainer.config import WEIGHTS_IMAGENET, WEIGHTS_NONE, Augmentation, TrainConfig, UnfreezeSpec
from trainer.errors import ConfigError, WeightsError

logger = logging.getLogger(__name__)

# Keras application constructor of each backbone name.
APPLICATIONS = {
    "xception": "Xception",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
}

# ImageNet channel means in BGR order, used by ResNet50's "caffe" preprocessing.
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)

POOLING_LAYER = "pooling"
INNER_LAYER = "inner"
DROPOUT_LAYER = "dropout"
LOGITS_LAYER = "logits"


def build_base(config: TrainConfig):
    """Create the backbone without its top, with the weights that `config.weights` names.

    Raises:
        WeightsError: ImageNet weights cannot be downloaded, or a weights file does not fit.
    """
    import keras

    constructor = getattr(keras.applications, APPLICATIONS[config.backbone])
    height, width = config.resolved_image_size
    if config.weights == WEIGHTS_NONE:
        weights = None
    elif config.weights == WEIGHTS_IMAGENET:
        weights = WEIGHTS_IMAGENET
    else:
        weights = str(config.weights_file)

    try:
        # Keras warns once per nested container that a foreign weights file lacks, and the
        # WeightsError below reports the mismatch in one line instead.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Skipping nested container", category=UserWarning
            )
            return constructor(include_top=False, weights=weights, input_shape=(height, width, 3))
    except Exception as error:
        # Keras 3.15's download wraps URL and HTTP errors in a plain Exception, while weights
        # that do not fit the model raise ValueError.
        if weights == WEIGHTS_IMAGENET and not isinstance(error, ValueError):
            raise WeightsError(
                f"cannot download ImageNet weights for {config.backbone} ({error}): pass a local "
                "no-top weights file with --weights PATH"
            ) from error
        if weights == WEIGHTS_IMAGENET:
            source = "the ImageNet weights do not fit"
        else:
            source = f"weights file {weights!r} does not fit"
        raise WeightsError(
            f"{source} {config.backbone} at {height}x{width} "
            f"({summarize_load_error(error)}): pass a no-top .weights.h5 file saved from "
            f"{config.backbone}"
        ) from error


def summarize_load_error(error: Exception, max_length: int = 200) -> str:
    """Return the first sentences of a Keras weight-loading error, without its object list.

    Keras 3.15 lists every layer that did not load, which for a whole backbone is over a
    hundred objects.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    summary = re.sub(r"\s*Example error message for object .*$", "", lines[0])
    if summary != lines[0] and len(lines) > 1 and not lines[1].startswith("List of objects"):
        summary = f"{summary} First: {lines[1]}"
    if len(summary) > max_length:
        summary = summary[: max_length - 3].rstrip() + "..."
    return summary


def preprocessing_layers(backbone: str) -> list:
    """Return the built-in layers that turn [0, 255] RGB into what `backbone` expects."""
    import keras

    if backbone in ("xception", "mobilenet_v2"):
        return [keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocessing")]
    if backbone == "efficientnet_b0":
        # Keras' EfficientNet rescales and normalizes inside the application itself.
        return []
    if backbone == "resnet50":
        return [_caffe_preprocessing()]
    raise ConfigError(f"unknown backbone {backbone!r}")


def _caffe_preprocessing():
    """RGB to BGR and ImageNet mean subtraction as one frozen 1x1 convolution.

    The kernel is a channel permutation, so each output is one input value times 1.0 plus the
    bias, which float32 computes exactly like `keras.applications.resnet50.preprocess_input`.
    """
    import keras
    import numpy as np

    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for output_channel, input_channel in enumerate((2, 1, 0)):
        kernel[0, 0, input_channel, output_channel] = 1.0
    bias = -np.array(CAFFE_BGR_MEANS, dtype="float32")
    layer = keras.layers.Conv2D(3, 1, use_bias=True, trainable=False, name="preprocessing")
    layer.build((None, None, None, 3))
    layer.set_weights([kernel, bias])
    return layer


def augmentation_layers(augmentation: Augmentation) -> list:
    """Return the random layers that `augmentation` turns on; they act only while training."""
    import keras

    layers = []
    if augmentation.rotation:
        layers.append(keras.layers.RandomRotation(augmentation.rotation, name="rotation"))
    if augmentation.shift:
        layers.append(
            keras.layers.RandomTranslation(augmentation.shift, augmentation.shift, name="shift")
        )
    if augmentation.shear:
        layers.append(
            keras.layers.RandomShear(
                x_factor=augmentation.shear, y_factor=augmentation.shear, name="shear"
            )
        )
    if augmentation.zoom:
        layers.append(keras.layers.RandomZoom(augmentation.zoom, name="zoom"))
    flip = _flip_mode(augmentation)
    if flip:
        layers.append(keras.layers.RandomFlip(flip, name="flip"))
    if augmentation.brightness:
        layers.append(
            keras.layers.RandomBrightness(
                augmentation.brightness, value_range=(0, 255), name="brightness"
            )
        )
    if augmentation.contrast:
        layers.append(
            keras.layers.RandomContrast(augmentation.contrast, value_range=(0, 255), name="contrast")
        )
    return layers


def _flip_mode(augmentation: Augmentation) -> str | None:
    if augmentation.horizontal_flip and augmentation.vertical_flip:
        return "horizontal_and_vertical"
    if augmentation.horizontal_flip:
        return "horizontal"
    if augmentation.vertical_flip:
        return "vertical"
    return None


def build_extractor(base, config: TrainConfig):
    """Wrap the frozen base into a model from raw pixels to pooled features."""
    import keras

    height, width = config.resolved_image_size
    inputs = keras.Input((height, width, 3), name="pixels")
    x = inputs
    for layer in preprocessing_layers(config.backbone):
        x = layer(x)
    base.trainable = False
    x = base(x, training=False)
    outputs = keras.layers.GlobalAveragePooling2D(name=POOLING_LAYER)(x)
    return keras.Model(inputs, outputs, name="feature_extractor")


def _head_layers(config: TrainConfig, class_count: int) -> list:
    import keras

    layers = []
    if config.inner_size:
        layers.append(keras.layers.Dense(config.inner_size, activation="relu", name=INNER_LAYER))
    if config.dropout:
        layers.append(keras.layers.Dropout(config.dropout, name=DROPOUT_LAYER))
    layers.append(keras.layers.Dense(class_count, name=LOGITS_LAYER))
    return layers


def build_head(feature_size: int, config: TrainConfig, class_count: int):
    """Build the head alone, trained on cached pooled features."""
    import keras

    inputs = keras.Input((feature_size,), name="features")
    x = inputs
    for layer in _head_layers(config, class_count):
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def build_full_model(base, config: TrainConfig, class_count: int, *, augment: bool):
    """Build pixels -> [augmentation] -> preprocessing -> frozen base -> pooling -> head."""
    import keras

    height, width = config.resolved_image_size
    inputs = keras.Input((height, width, 3), name="pixels")
    x = inputs
    if augment:
        for layer in augmentation_layers(config.augmentation):
            x = layer(x)
    for layer in preprocessing_layers(config.backbone):
        x = layer(x)
    base.trainable = False
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=POOLING_LAYER)(x)
    for layer in _head_layers(config, class_count):
        x = layer(x)
    return keras.Model(inputs, x, name=f"sortbox_{config.backbone}")


def copy_head_weights(head, full_model) -> None:
    """Copy the trained dense layers of `head` into the same-named layers of `full_model`."""
    for name in (INNER_LAYER, LOGITS_LAYER):
        try:
            source = head.get_layer(name)
        except ValueError:
            continue
        full_model.get_layer(name).set_weights(source.get_weights())


def compile_model(model, learning_rate: float, label_smoothing: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=label_smoothing
        ),
        metrics=["accuracy"],
    )


def unfreeze_start(base, spec: UnfreezeSpec) -> int:
    """Return the index of the first base layer that the fine-tune stage trains.

    Raises:
        ConfigError: `spec.layer` is not a layer of the base.
    """
    layers = base.layers
    if spec.layer is not None:
        names = [layer.name for layer in layers]
        if spec.layer not in names:
            raise ConfigError(
                f"--unfreeze layer {spec.layer!r} is not in {base.name}: pass a fraction such as "
                f"0.2 or one of its layer names, such as {names[len(names) // 2]!r}"
            )
        return names.index(spec.layer)
    return int(len(layers) * (1 - spec.fraction))


def unfreeze_top(base, start: int) -> int:
    """Make base layers from `start` on trainable, keeping BatchNormalization frozen.

    The base stays called with training=False, so batch normalization also keeps its moving
    statistics. Returns the number of layers made trainable.
    """
    import keras

    base.trainable = True
    count = 0
    for index, layer in enumerate(base.layers):
        trainable = index >= start and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += int(trainable)
    return count


def find_base(full_model):
    """Return the nested backbone model of a full model built by `build_full_model`."""
    import keras

    for layer in full_model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ConfigError(f"model {full_model.name!r} has no nested base model")


def load_model(path: Path):
    import keras

    return keras.models.load_model(path, safe_mode=True)
