"""Model loading and a pure inference function: a batch of decoded images in, predictions out.

Models are `.keras` files built from Keras layers only. The model contains its own input
preprocessing (Rescaling and the like) and returns one logit per class; `predict_batch` applies
the softmax. TensorFlow and Keras are imported inside the functions, so importing this module
stays cheap. `vision.runtimes` compiles the model for OpenVINO when it is installed, with
TensorFlow as the fallback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vision.errors import ModelLoadError
from vision.runtimes import RuntimeUnavailable, compile_runtime, requested_runtime, softmax_rows

logger = logging.getLogger(__name__)

MODEL_SUFFIX = ".keras"


@dataclass(frozen=True)
class Classification:
    """Prediction for one image: the top category, its probability and the `top_k` best pairs."""

    category: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model ready for `predict_batch`, with the facts checked at load time.

    `predict_logits` runs the model through the runtime named by `runtime` (`openvino` or
    `tensorflow`, see `vision.runtimes`). Its batch dimension is unknown, so batches of any size
    share a single trace.
    """

    path: Path
    keras_model: Any = field(repr=False)
    input_size: tuple[int, int]
    class_count: int
    outputs_probabilities: bool
    predict_logits: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    runtime: str = "tensorflow"


def load_model(path: str | os.PathLike[str], runtime: str | None = None) -> LoadedModel:
    """Load a `.keras` model in Keras safe mode, check its shapes and compile it for inference.

    Args:
        path: The `.keras` file.
        runtime: `auto`, `openvino` or `tensorflow` (see `vision.runtimes`). Defaults to
            $SORTBOX_INFERENCE_RUNTIME, or `auto` when that is unset.

    Raises:
        ModelLoadError: the file is missing, is not a `.keras` file or does not load. Also when
            the model does not take (batch, height, width, 3) images and return (batch, classes)
            scores, or when the runtime requested explicitly cannot serve it.
        ValueError: the runtime name is unknown.
    """
    model_path = Path(path)
    if not model_path.is_file():
        raise ModelLoadError(f"model file {str(model_path)!r} not found; check the artifact path")
    if model_path.suffix != MODEL_SUFFIX:
        raise ModelLoadError(
            f"model file {str(model_path)!r} is not a {MODEL_SUFFIX} file; save it with model.save()"
        )

    chosen_runtime = requested_runtime(runtime)

    import keras

    try:
        # Safe mode rejects Lambda layers and other stored Python code.
        keras_model = keras.models.load_model(model_path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many unrelated types for bad files
        raise ModelLoadError(
            f"cannot load model {str(model_path)!r}: {type(error).__name__}: {error}; "
            "retrain or re-register the model"
        ) from error

    input_size, class_count = _check_shapes(keras_model, model_path)
    outputs_probabilities = _ends_in_softmax(keras_model)
    try:
        compiled = compile_runtime(keras_model, input_size, outputs_probabilities, chosen_runtime)
    except RuntimeUnavailable as error:
        raise ModelLoadError(
            f"cannot serve model {str(model_path)!r} with the requested runtime: {error}; "
            "install it or choose runtime auto or tensorflow"
        ) from error

    logger.debug(
        "loaded %s: input %sx%s, %s classes, softmax inside: %s, runtime %s",
        model_path, input_size[0], input_size[1], class_count, outputs_probabilities, compiled.name,
    )
    return LoadedModel(
        path=model_path,
        keras_model=keras_model,
        input_size=input_size,
        class_count=class_count,
        outputs_probabilities=outputs_probabilities,
        predict_logits=compiled.predict_outputs,
        runtime=compiled.name,
    )


def check_model(path: str | os.PathLike[str], class_count: int) -> None:
    """Load a model and check that it returns one score per class.

    Raises:
        ModelLoadError: the model does not load, or its output size differs from `class_count`.
    """
    model = load_model(path)
    if model.class_count != class_count:
        raise ModelLoadError(
            f"model {str(model.path)!r} returns {model.class_count} class scores but "
            f"{class_count} class names are registered for it; register it with the class "
            "names it was trained on"
        )


def model_input_size(model: LoadedModel) -> tuple[int, int]:
    """Return the (height, width) that images must have for `predict_batch`."""
    return model.input_size


def predict_batch(
    model: LoadedModel,
    images: np.ndarray,
    class_names: Sequence[str],
    top_k: int = 3,
) -> list[Classification]:
    """Classify a batch of decoded images.

    Args:
        model: A model from `load_model`.
        images: uint8 array (N, height, width, 3), RGB 0-255, already at the model's input size
            (as `vision.images.load_images` returns it).
        class_names: Category name of each model output, in output order.
        top_k: How many (category, probability) pairs each result keeps, best first. Defaults
            to 3, and is cut to the number of classes.

    Returns:
        One Classification per image, in batch order. Ties keep the class order.

    Raises:
        ValueError: `images`, `class_names` or `top_k` do not fit the model.
    """
    _check_batch(model, images, class_names, top_k)
    if images.shape[0] == 0:
        return []

    scores = np.asarray(model.predict_logits(images), dtype=np.float64)
    probabilities = scores if model.outputs_probabilities else softmax_rows(scores)

    keep = min(top_k, len(class_names))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :keep]
    results = []
    for row, best in zip(probabilities, order):
        pairs = tuple((class_names[index], float(row[index])) for index in best)
        results.append(Classification(category=pairs[0][0], confidence=pairs[0][1], top_k=pairs))
    return results


def _check_batch(
    model: LoadedModel, images: np.ndarray, class_names: Sequence[str], top_k: int
) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        received = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"images must be a uint8 numpy array, got {received}")

    expected = (model.input_size[0], model.input_size[1], 3)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(
            f"images must have shape (N, {expected[0]}, {expected[1]}, 3) for model "
            f"{str(model.path)!r}, got {images.shape}; load them with size={model.input_size}"
        )

    if len(class_names) != model.class_count:
        raise ValueError(
            f"model {str(model.path)!r} returns {model.class_count} class scores, "
            f"got {len(class_names)} class names"
        )
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")


def _check_shapes(keras_model: Any, path: Path) -> tuple[tuple[int, int], int]:
    inputs = keras_model.inputs
    outputs = keras_model.outputs
    if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
        raise ModelLoadError(
            f"model {str(path)!r} must have one image input and one output; retrain it"
        )

    input_shape = tuple(inputs[0].shape)
    if len(input_shape) != 4 or input_shape[3] != 3 or None in input_shape[1:3]:
        raise ModelLoadError(
            f"model {str(path)!r} takes input of shape {input_shape}, expected "
            "(batch, height, width, 3) with a fixed height and width; retrain it"
        )

    output_shape = tuple(outputs[0].shape)
    if len(output_shape) != 2 or output_shape[1] is None or output_shape[1] < 1:
        raise ModelLoadError(
            f"model {str(path)!r} returns output of shape {output_shape}, expected "
            "(batch, classes); retrain it"
        )
    return (int(input_shape[1]), int(input_shape[2])), int(output_shape[1])


def _ends_in_softmax(keras_model: Any) -> bool:
    """Tell whether the last layer already applies a softmax, so it is not applied twice."""
    import keras

    last = keras_model.layers[-1] if keras_model.layers else None
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"
